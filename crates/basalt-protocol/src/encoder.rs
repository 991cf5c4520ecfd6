//! The output side of the codec: an [`Encoder`] collects an encoded message as a list of parts
//! (owned bytes, shared bytes, and regions of files), and a [`Frame`] is what it produces.
//!
//! A response's record sets are never copied while encoding: a large in-memory record set is
//! kept as its own shared part, and a record set that is still in a segment file
//! ([`Records::File`]) becomes a [`Chunk::File`] that the connection writer sends straight from
//! the file (with `sendfile` on plaintext connections). This module only describes where the
//! bytes are; it never reads a file.
//!
//! Invariants:
//! - `ENC-1`: the parts of a frame, concatenated, are exactly the bytes a single contiguous
//!   encoding would have produced; the size prefix counts every part, file regions included.
//! - `ENC-2`: small record sets (below [`INLINE_RECORDS_MAX`]) are copied inline, so a frame of
//!   many tiny partitions stays a few large writes instead of many small ones.

use std::fmt;
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::EncodeError;
use crate::frame::SIZE_PREFIX_LEN;

/// Record sets at least this large are kept as their own part instead of being copied.
pub const INLINE_RECORDS_MAX: usize = 4096;

/// `len` bytes of `file` starting at `position`: whole record batches a fetch sends as they are
/// on disk. The file stays open (and its bytes readable) for as long as the region is held.
#[derive(Clone)]
pub struct FileRegion {
    /// The open segment file.
    pub file: Arc<File>,
    /// Byte position of the first batch.
    pub position: u64,
    /// Number of bytes.
    pub len: usize,
}

impl fmt::Debug for FileRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRegion")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Eq for FileRegion {}

impl PartialEq for FileRegion {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
            && self.position == other.position
            && self.len == other.len
    }
}

/// A record set in a response: bytes in memory, or a region of a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Records {
    /// Record batches in memory (every decoded response holds this).
    Memory(Bytes),
    /// Record batches still in a file; the connection writer sends them from there.
    File(FileRegion),
}

impl Records {
    /// Number of bytes.
    pub fn len(&self) -> usize {
        match self {
            Records::Memory(b) => b.len(),
            Records::File(r) => r.len,
        }
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in memory.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Records::Memory(b) => Some(b),
            Records::File(_) => None,
        }
    }
}

impl Default for Records {
    fn default() -> Self {
        Records::Memory(Bytes::new())
    }
}

impl From<Bytes> for Records {
    fn from(bytes: Bytes) -> Self {
        Records::Memory(bytes)
    }
}

/// One part of an encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes in memory.
    Memory(Bytes),
    /// A region of a file.
    File(FileRegion),
}

impl Chunk {
    /// Number of bytes.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Memory(b) => b.len(),
            Chunk::File(r) => r.len,
        }
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete size-prefixed frame, as parts to be written in order (`ENC-1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    chunks: Vec<Chunk>,
}

impl Frame {
    /// The parts, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Total bytes, size prefix included.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    /// True when the frame has no bytes (never true for a finished frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one contiguous buffer, when no part is a file region (copying only when
    /// there is more than one part).
    pub fn into_bytes(self) -> Option<Bytes> {
        if let [Chunk::Memory(b)] = self.chunks.as_slice() {
            return Some(b.clone());
        }
        let mut out = BytesMut::with_capacity(self.len());
        for chunk in &self.chunks {
            match chunk {
                Chunk::Memory(b) => out.extend_from_slice(b),
                Chunk::File(_) => return None,
            }
        }
        Some(out.freeze())
    }
}

impl From<Bytes> for Frame {
    /// A frame already encoded in one buffer, size prefix included.
    fn from(bytes: Bytes) -> Self {
        Frame {
            chunks: vec![Chunk::Memory(bytes)],
        }
    }
}

/// Where generated `encode` functions write. It dereferences to the [`BytesMut`] that fixed
/// fields are written into; record sets go through [`Encoder::put_records`].
#[derive(Debug, Default)]
pub struct Encoder {
    current: BytesMut,
    /// Parts finished before `current`; the first owned part keeps its mutability so the size
    /// prefix can be written at the end.
    head: Option<BytesMut>,
    parts: Vec<Chunk>,
    /// Copy every record set inline (for tagged-field scratch buffers, which must be contiguous).
    inline_only: bool,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `capacity` bytes before the first record set.
    pub fn with_capacity(capacity: usize) -> Self {
        Encoder {
            current: BytesMut::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// An encoder that keeps everything in one buffer: record sets are copied, and file regions
    /// are refused. Used for tagged fields, whose length is written before their bytes.
    pub fn contiguous() -> Self {
        Encoder {
            inline_only: true,
            ..Self::default()
        }
    }

    /// Writes a record set's bytes (the length prefix is the caller's): small ones are copied,
    /// large ones and file regions become their own part (`ENC-2`).
    pub fn put_records(
        &mut self,
        records: &Records,
        field: &'static str,
    ) -> Result<(), EncodeError> {
        match records {
            Records::Memory(b) if self.inline_only || b.len() < INLINE_RECORDS_MAX => {
                self.current.put_slice(b);
            }
            Records::Memory(b) => {
                self.cut();
                self.parts.push(Chunk::Memory(b.clone()));
            }
            Records::File(_) if self.inline_only => {
                return Err(EncodeError::FileRecordsNotContiguous { field });
            }
            Records::File(r) => {
                self.cut();
                self.parts.push(Chunk::File(r.clone()));
            }
        }
        Ok(())
    }

    /// Ends the current owned part.
    fn cut(&mut self) {
        let done = self.current.split();
        if self.head.is_none() && self.parts.is_empty() {
            self.head = Some(done);
        } else if !done.is_empty() {
            self.parts.push(Chunk::Memory(done.freeze()));
        }
    }

    /// Total bytes written so far.
    pub fn total_len(&self) -> usize {
        self.head.as_ref().map_or(0, BytesMut::len)
            + self.parts.iter().map(Chunk::len).sum::<usize>()
            + self.current.len()
    }

    /// The encoded bytes as one buffer, copying when record sets were kept apart; `None` when a
    /// part is a file region.
    pub fn into_bytes(self) -> Option<Bytes> {
        self.into_frame_parts().into_bytes()
    }

    /// The parts written, in order (for callers that send or read them themselves).
    pub fn into_chunks(self) -> Vec<Chunk> {
        self.into_frame_parts().chunks
    }

    fn into_frame_parts(mut self) -> Frame {
        let mut chunks = Vec::with_capacity(self.parts.len() + 2);
        match self.head.take() {
            None => {
                return Frame {
                    chunks: vec![Chunk::Memory(self.current.freeze())],
                };
            }
            Some(head) => chunks.push(Chunk::Memory(head.freeze())),
        }
        chunks.append(&mut self.parts);
        if !self.current.is_empty() {
            chunks.push(Chunk::Memory(self.current.freeze()));
        }
        Frame { chunks }
    }

    /// Finishes a frame whose first [`SIZE_PREFIX_LEN`] bytes were reserved for the size
    /// prefix: writes the size of everything after it (`ENC-1`).
    pub fn finish_frame(mut self) -> Result<Frame, EncodeError> {
        let length = self.total_len();
        let body = length
            .checked_sub(SIZE_PREFIX_LEN)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or(EncodeError::TooLong {
                field: "frame",
                length,
            })?;
        let first = self.head.as_mut().unwrap_or(&mut self.current);
        match first.get_mut(..SIZE_PREFIX_LEN) {
            Some(prefix) => prefix.copy_from_slice(&body.to_be_bytes()),
            None => {
                return Err(EncodeError::TooLong {
                    field: "frame",
                    length,
                });
            }
        }
        Ok(self.into_frame_parts())
    }
}

impl Deref for Encoder {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.current
    }
}

impl DerefMut for Encoder {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(len: usize) -> FileRegion {
        let file = tempfile_like();
        FileRegion {
            file: Arc::new(file),
            position: 7,
            len,
        }
    }

    /// Any open file will do: the encoder never reads it.
    fn tempfile_like() -> File {
        File::open("/dev/null").unwrap()
    }

    #[test]
    fn small_records_are_copied_inline() {
        let mut e = Encoder::new();
        e.put_slice(&[0; 4]);
        e.put_records(&Records::Memory(Bytes::from_static(b"abc")), "f")
            .unwrap();
        let frame = e.finish_frame().unwrap();
        assert_eq!(frame.chunks().len(), 1);
        assert_eq!(
            frame.into_bytes().unwrap().as_ref(),
            &[0, 0, 0, 3, b'a', b'b', b'c']
        );
    }

    #[test]
    fn large_records_and_files_are_separate_parts_counted_in_the_size() {
        let big = Bytes::from(vec![9u8; INLINE_RECORDS_MAX]);
        let mut e = Encoder::new();
        e.put_slice(&[0; 4]);
        e.put_u8(1);
        e.put_records(&Records::Memory(big.clone()), "f").unwrap();
        e.put_u8(2);
        e.put_records(&Records::File(region(100)), "f").unwrap();
        e.put_u8(3);
        let frame = e.finish_frame().unwrap();
        let lens: Vec<usize> = frame.chunks().iter().map(Chunk::len).collect();
        assert_eq!(lens, vec![5, INLINE_RECORDS_MAX, 1, 100, 1]);
        let Chunk::Memory(head) = &frame.chunks()[0] else {
            panic!("head is in memory")
        };
        let size = i32::from_be_bytes(head[..4].try_into().unwrap());
        assert_eq!(size as usize, 1 + INLINE_RECORDS_MAX + 1 + 100 + 1);
        assert!(matches!(&frame.chunks()[1], Chunk::Memory(b) if b == &big));
        assert_eq!(frame.into_bytes(), None);
    }

    #[test]
    fn contiguous_encoders_copy_and_refuse_files() {
        let mut e = Encoder::contiguous();
        e.put_records(&Records::Memory(Bytes::from(vec![1u8; 10_000])), "f")
            .unwrap();
        assert_eq!(e.len(), 10_000);
        assert_eq!(
            e.put_records(&Records::File(region(1)), "f"),
            Err(EncodeError::FileRecordsNotContiguous { field: "f" })
        );
    }
}
