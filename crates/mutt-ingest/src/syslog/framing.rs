//! RFC 6587 framing for syslog over TCP and TLS: octet counting (`LEN SP MSG`) when a frame
//! starts with a digit, otherwise one message per line (LF, or NUL as some senders use).

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// Why a connection's stream cannot be framed; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit")]
    Oversize(usize),
    #[error("malformed octet count")]
    BadLength,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The `reason` label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Oversize(_) => "oversize",
            FrameError::BadLength => "bad_frame",
            FrameError::Io(_) => "io",
        }
    }
}

/// Decodes frames of at most `max` bytes.
#[derive(Clone, Debug)]
pub struct SyslogCodec {
    max: usize,
}

impl SyslogCodec {
    pub fn new(max: usize) -> Self {
        Self { max: max.max(1) }
    }

    fn octet_counted(&self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        // At most 10 digits, then a space.
        let digits = src.iter().take(11).take_while(|b| b.is_ascii_digit()).count();
        if digits == src.len() && digits < 11 {
            return Ok(None);
        }
        if digits > 10 || src.get(digits) != Some(&b' ') {
            return Err(FrameError::BadLength);
        }
        let len: usize =
            std::str::from_utf8(&src[..digits]).ok().and_then(|s| s.parse().ok()).ok_or(FrameError::BadLength)?;
        if len > self.max {
            return Err(FrameError::Oversize(len));
        }
        if src.len() < digits + 1 + len {
            src.reserve(digits + 1 + len - src.len());
            return Ok(None);
        }
        src.advance(digits + 1);
        Ok(Some(src.split_to(len)))
    }

    fn delimited(&self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match src.iter().position(|b| *b == b'\n' || *b == 0) {
            Some(at) if at > self.max => Err(FrameError::Oversize(at)),
            Some(at) => {
                let mut frame = src.split_to(at + 1);
                frame.truncate(at);
                Ok(Some(frame))
            }
            None if src.len() > self.max => Err(FrameError::Oversize(src.len())),
            None => Ok(None),
        }
    }
}

impl Decoder for SyslogCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        loop {
            // Separators between frames (a trailing LF after a counted frame, CRs, NULs).
            let skip = src.iter().take_while(|b| matches!(b, b'\n' | b'\r' | 0)).count();
            src.advance(skip);
            let Some(first) = src.first() else { return Ok(None) };
            let frame = if first.is_ascii_digit() { self.octet_counted(src)? } else { self.delimited(src)? };
            match frame {
                Some(f) if f.iter().all(|b| b.is_ascii_whitespace()) => continue,
                other => return Ok(other),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            // An unterminated last line is still a message; a cut counted frame is not.
            None if !src.is_empty() && !src[0].is_ascii_digit() => Ok(Some(src.split_to(src.len()))),
            None => {
                src.clear();
                Ok(None)
            }
        }
    }
}
