//! The sending half of a connection: writes each response [`Frame`] part by part.
//!
//! In-memory parts are written as they are. A file part (record batches still in a segment
//! file) is sent two ways:
//! - on a plaintext TCP connection, with `sendfile(2)`: the kernel moves the bytes from the page
//!   cache to the socket and they never pass through user space ([`SocketWriter`]);
//! - on TLS, which must encrypt in user space, with one positioned read into a buffer the
//!   connection reuses for every response ([`CopyWriter`]).
//!
//! Invariants:
//! - `WR-1`: the bytes sent for a frame are its parts in order, each exactly once; a file part
//!   that ends early (the file is shorter than the region) is an error that closes the
//!   connection, never a short frame followed by the next response.
//! - `WR-2`: [`CopyWriter`]'s buffer is allocated once per connection and grows to at most
//!   [`COPY_BUFFER_BYTES`].

use std::io;
use std::os::unix::fs::FileExt;

use basalt_protocol::{Chunk, FileRegion, Frame};
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

/// Largest piece of a file region that [`CopyWriter`] reads at once.
pub const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// Where a connection's responses go.
pub(crate) trait FrameWriter: Send + 'static {
    /// Writes every part of `frame`, in order, and flushes.
    fn write_frame(&mut self, frame: &Frame) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the sending side.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// A plaintext TCP connection: file parts go out with `sendfile`.
pub(crate) struct SocketWriter {
    half: OwnedWriteHalf,
}

impl SocketWriter {
    pub(crate) fn new(half: OwnedWriteHalf) -> Self {
        SocketWriter { half }
    }

    async fn send_region(&mut self, region: &FileRegion) -> io::Result<()> {
        let stream = self.half.as_ref();
        let mut offset = region.position;
        let end = region.position + region.len as u64;
        while offset < end {
            let want = (end - offset).min(isize::MAX as u64) as usize;
            stream.writable().await?;
            let sent = stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, &*region.file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Err(short_region(region, offset)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl FrameWriter for SocketWriter {
    async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        for chunk in frame.chunks() {
            match chunk {
                Chunk::Memory(bytes) => self.half.write_all(bytes).await?,
                Chunk::File(region) => self.send_region(region).await?,
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        let _ = self.half.shutdown().await;
    }
}

/// Any other stream (TLS): file parts are read into one reused buffer, then written.
pub(crate) struct CopyWriter<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> CopyWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CopyWriter {
            inner,
            buf: Vec::new(),
        }
    }

    async fn copy_region(&mut self, region: &FileRegion) -> io::Result<()> {
        let mut offset = region.position;
        let end = region.position + region.len as u64;
        while offset < end {
            let piece = ((end - offset) as usize).min(COPY_BUFFER_BYTES);
            if self.buf.len() < piece {
                self.buf.resize(piece, 0);
            }
            let buf = &mut self.buf[..piece];
            // Page-cache reads of at most COPY_BUFFER_BYTES; the fetch path reads segment
            // headers the same way on this thread.
            region.file.read_exact_at(buf, offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    short_region(region, offset)
                } else {
                    e
                }
            })?;
            self.inner.write_all(buf).await?;
            offset += piece as u64;
        }
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> FrameWriter for CopyWriter<W> {
    async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        for chunk in frame.chunks() {
            match chunk {
                Chunk::Memory(bytes) => self.inner.write_all(bytes).await?,
                Chunk::File(region) => self.copy_region(region).await?,
            }
        }
        self.inner.flush().await
    }

    async fn shutdown(&mut self) {
        let _ = self.inner.shutdown().await;
    }
}

fn short_region(region: &FileRegion, at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "segment file ended at byte {at}, inside a region of {} bytes from {}",
            region.len, region.position
        ),
    )
}
