//! Decompression of fetched record batches (gzip, snappy, lz4, zstd), so `consume` can read what
//! Java clients, librdkafka and kcat produce with compression on.
//!
//! Invariant: no batch inflates to more than [`MAX_DECOMPRESSED_BYTES`]; a batch that would is an
//! error, not an allocation. [`uncompressed_batch`] rebuilds a batch whose records are stored
//! plainly (same header, compression bits cleared, length fixed) so `decode_records` reads it.

use std::io::Read;

use basalt_record::{BATCH_HEADER_SIZE, BatchHeader, Compression};
use bytes::{BufMut, Bytes, BytesMut};

use super::Error;

/// The most bytes one batch may decompress to.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// The xerial snappy framing magic Java clients write.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Magic, version and compatible-version fields.
const XERIAL_HEADER_LEN: usize = 16;

/// Returns `batch` (one whole batch, header first) with its records decompressed, or the batch
/// itself if it is not compressed.
pub fn uncompressed_batch(batch: &Bytes, header: &BatchHeader) -> Result<Bytes, Error> {
    let codec = header.compression();
    if codec == Compression::None {
        return Ok(batch.clone());
    }
    let payload = batch
        .get(BATCH_HEADER_SIZE..header.total_size())
        .ok_or("batch shorter than its header says")?;
    let records = decompress(codec, payload, MAX_DECOMPRESSED_BYTES)?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE + records.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_SIZE]);
    let length = i32::try_from(BATCH_HEADER_SIZE - 12 + records.len())?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = header.attributes & !0x07;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out.put_slice(&records);
    Ok(out.freeze())
}

/// Decompresses `data` compressed with `codec`, failing past `limit` output bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let name = format!("{codec:?}").to_lowercase();
    let result = match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Snappy => snappy(data, limit),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => zstd::stream::read::Decoder::with_buffer(data)
            .map_err(Error::from)
            .and_then(|d| read_bounded(d, limit)),
    };
    result.map_err(|e| format!("cannot decompress a {name} batch: {e}").into())
}

fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(format!("it inflates to more than {limit} bytes").into());
    }
    Ok(out)
}

/// Raw snappy (librdkafka) or xerial-framed snappy (Java clients).
fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    if !data.starts_with(XERIAL_MAGIC) {
        return snappy_block(data, limit);
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or("truncated xerial header")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_at_checked(4)
            .ok_or("truncated xerial block length")?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (block, tail) = tail.split_at_checked(len).ok_or("truncated xerial block")?;
        out.extend(snappy_block(block, limit - out.len())?);
        rest = tail;
    }
    Ok(out)
}

fn snappy_block(block: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let len = snap::raw::decompress_len(block)?;
    if len > limit {
        return Err(format!("it inflates to more than {limit} bytes").into());
    }
    Ok(snap::raw::Decoder::new().decompress_vec(block)?)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use basalt_record::{BatchBuilder, decode_records};

    use super::*;

    const TEXT: &[u8] = b"hello hello hello hello hello world";

    fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
        match codec {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = compress(codec, TEXT);
            assert_eq!(decompress(codec, &packed, 1024).unwrap(), TEXT, "{codec:?}");
            assert!(decompress(codec, &packed, 10).is_err(), "{codec:?} bound");
        }
    }

    #[test]
    fn xerial_snappy_is_unframed() {
        let block = snap::raw::Encoder::new().compress_vec(TEXT).unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for _ in 0..2 {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let out = decompress(Compression::Snappy, &framed, 1024).unwrap();
        assert_eq!(out, [TEXT, TEXT].concat());
    }

    #[test]
    fn compressed_batches_decode_after_rebuilding() {
        let mut b = BatchBuilder::new(5);
        b.push(1, Some(b"k"), Some(b"v1"), &[]);
        b.push(2, None, Some(b"v2"), &[]);
        let plain = b.build();
        let records = &plain[BATCH_HEADER_SIZE..];
        let mut batch = plain[..BATCH_HEADER_SIZE].to_vec();
        batch.extend(compress(Compression::Zstd, records));
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        batch[22] |= 4;
        let batch = Bytes::from(batch);
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.compression(), Compression::Zstd);
        let rebuilt = uncompressed_batch(&batch, &header).unwrap();
        let decoded = decode_records(&rebuilt).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].offset, 6);
        assert_eq!(decoded[1].value.as_deref(), Some(&b"v2"[..]));
    }
}
