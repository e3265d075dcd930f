//! A bound on each multipart part's header block. multer buffers a part's headers until
//! their blank line with no limit of its own; this adapter watches the body as it streams
//! past and stops it as soon as one header block grows past the bound.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use memchr::memmem;

/// Far above any real part's headers (name, filename, content type: well under 1 KiB).
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// The error a stream ends with when a header block is too large.
#[derive(Debug)]
pub struct PartHeaderTooLarge;

impl std::fmt::Display for PartHeaderTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a part's headers exceed {MAX_PART_HEADER_BYTES} bytes")
    }
}

impl std::error::Error for PartHeaderTooLarge {}

/// Where the scan is: between delimiters, or inside a header block that began at an
/// absolute offset of the body.
struct Scan {
    delimiter: Vec<u8>,
    /// The last bytes seen, kept so a pattern split across chunks is still found.
    tail: Vec<u8>,
    /// Absolute offset of `tail[0]` (the body is virtually preceded by CRLF, so the
    /// first delimiter needs no special case: offsets start at -2).
    offset: i64,
    header_start: Option<i64>,
}

impl Scan {
    fn new(boundary: &str) -> Self {
        Self {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            tail: b"\r\n".to_vec(),
            offset: -2,
            header_start: None,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), PartHeaderTooLarge> {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            match self.header_start {
                Some(start) => match memmem::find(&buf[pos..], b"\r\n\r\n") {
                    Some(i) => {
                        if self.offset + (pos + i) as i64 - start > MAX_PART_HEADER_BYTES as i64 {
                            return Err(PartHeaderTooLarge);
                        }
                        self.header_start = None;
                        pos += i + 4;
                    }
                    None => {
                        if self.offset + buf.len() as i64 - start > MAX_PART_HEADER_BYTES as i64 {
                            return Err(PartHeaderTooLarge);
                        }
                        self.keep_tail(buf, 3);
                        return Ok(());
                    }
                },
                None => match memmem::find(&buf[pos..], &self.delimiter) {
                    Some(i) => {
                        pos += i + self.delimiter.len();
                        self.header_start = Some(self.offset + pos as i64);
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        self.keep_tail(buf, keep);
                        return Ok(());
                    }
                },
            }
        }
    }

    fn keep_tail(&mut self, buf: Vec<u8>, keep: usize) {
        let from = buf.len().saturating_sub(keep);
        self.offset += from as i64;
        self.tail = buf[from..].to_vec();
    }
}

/// `inner`, ending with [`PartHeaderTooLarge`] when a part's header block is too large.
pub struct Bounded<S> {
    inner: S,
    scan: Scan,
    failed: bool,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, boundary: &str) -> Self {
        Self {
            inner,
            scan: Scan::new(boundary),
            failed: false,
        }
    }
}

impl<S, E> Stream for Bounded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.scan.feed(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(e) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(Box::new(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(body: &[u8], piece: usize) -> Result<(), PartHeaderTooLarge> {
        let mut scan = Scan::new("b");
        body.chunks(piece).try_for_each(|c| scan.feed(c))
    }

    #[test]
    fn ordinary_headers_pass_however_the_body_is_cut() {
        let body = b"--b\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--b--\r\n";
        for piece in [1, 2, 3, 7, body.len()] {
            assert!(scan_in_pieces(body, piece).is_ok(), "pieces of {piece}");
        }
    }

    #[test]
    fn a_header_block_past_the_bound_is_stopped_even_without_its_end() {
        let mut body = b"--b\r\ncontent-disposition: form-data; name=\"a\"\r\nx-pad: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_PART_HEADER_BYTES));
        for piece in [1, 1000, body.len()] {
            assert!(scan_in_pieces(&body, piece).is_err(), "pieces of {piece}");
        }
    }
}
