//! Cutting a TCP byte stream into SIP messages by Content-Length (RFC 3261 §18.3).
//! Sans-IO: push bytes as they arrive, then take frames until `None`.

use crate::sip::codec::MAX_MESSAGE_SIZE;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message (head and body), ready for `codec::decode`.
    Message(Vec<u8>),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); answer with a single CRLF pong.
    Ping,
}

/// The stream cannot be framed any more; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no end of headers within {max} bytes", max = MAX_MESSAGE_SIZE)]
    HeadTooLarge,
    /// `head` is kept so a 400 can be addressed before closing.
    #[error("Content-Length `{value}` is not a number")]
    BadContentLength { value: String, head: Vec<u8> },
    /// The message would exceed the cap; `head` is kept so a 513 can be addressed.
    #[error("message of {len} bytes exceeds the cap")]
    TooLarge { len: usize, head: Vec<u8> },
}

#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Where to resume looking for the end of the head.
    scanned: usize,
    /// End of the current message's head once found.
    head_end: Option<usize>,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection. Call [`Self::next_frame`] until `Ok(None)` after.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. After an error the
    /// framer is unusable (framing is lost): close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.consume(4);
                return Ok(Some(Frame::Ping));
            }
            // §7.5: stray CRLFs between messages are ignored.
            if self.buf.len() >= 3 && self.buf.starts_with(b"\r\n") && self.buf[2] != b'\r' {
                self.consume(2);
                continue;
            }
            if self.buf.starts_with(b"\n") {
                self.consume(1);
                continue;
            }
            break;
        }
        if self.buf.is_empty() || self.buf.starts_with(b"\r") && self.buf.len() < 4 {
            return Ok(None);
        }
        let from = self.scanned.saturating_sub(3);
        let found = self.head_end.or_else(|| find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i + 4));
        let Some(end) = found else {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(FrameError::HeadTooLarge);
            }
            return Ok(None);
        };
        let content_length = content_length(&self.buf[..end])
            .map_err(|value| FrameError::BadContentLength { value, head: self.buf[..end].to_vec() })?;
        let total = end + content_length;
        if total > MAX_MESSAGE_SIZE {
            return Err(FrameError::TooLarge { len: total, head: self.buf[..end].to_vec() });
        }
        if self.buf.len() < total {
            self.head_end = Some(end); // the head is known; just wait for the body
            return Ok(None);
        }
        let msg = self.buf[..total].to_vec();
        self.consume(total);
        Ok(Some(Frame::Message(msg)))
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.scanned = 0;
        self.head_end = None;
    }
}

/// Content-Length from a head (full or compact `l` name); missing means 0.
fn content_length(head: &[u8]) -> Result<usize, String> {
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = line[colon + 1..].trim_ascii();
            let text = String::from_utf8_lossy(v).into_owned();
            if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
                return Err(text);
            }
            return text.parse().map_err(|_| text.clone());
        }
    }
    Ok(0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";
    const B: &[u8] = b"OPTIONS sip:b@x SIP/2.0\r\nl: 0\r\n\r\n";

    fn drain(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = vec![];
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(fr);
        }
        out
    }

    #[test]
    fn split_at_every_offset() {
        let mut stream = A.to_vec();
        stream.extend_from_slice(B);
        for cut in 0..=stream.len() {
            let mut f = StreamFramer::new();
            f.push(&stream[..cut]);
            let mut frames = drain(&mut f);
            f.push(&stream[cut..]);
            frames.extend(drain(&mut f));
            assert_eq!(frames, vec![Frame::Message(A.to_vec()), Frame::Message(B.to_vec())], "cut at {cut}");
            assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut f = StreamFramer::new();
        let mut frames = vec![];
        for b in A.iter().chain(B) {
            f.push(&[*b]);
            frames.extend(drain(&mut f));
        }
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = StreamFramer::new();
        f.push(&[A, B].concat());
        assert_eq!(drain(&mut f), vec![Frame::Message(A.to_vec()), Frame::Message(B.to_vec())]);
    }

    #[test]
    fn crlf_keepalives() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(drain(&mut f), vec![Frame::Ping]);
        f.push(b"\r\n");
        f.push(B);
        assert_eq!(drain(&mut f), vec![Frame::Message(B.to_vec())]);
        f.push(&[b"\r\n\r\n".as_slice(), A].concat());
        assert_eq!(drain(&mut f), vec![Frame::Ping, Frame::Message(A.to_vec())]);
    }

    #[test]
    fn oversize_and_bad_length_are_fatal() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@x SIP/2.0\r\nContent-Length: 70000\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FrameError::TooLarge { len, .. }) if len > MAX_MESSAGE_SIZE));
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@x SIP/2.0\r\nContent-Length: -3\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FrameError::BadContentLength { .. })));
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_frame(), Err(FrameError::HeadTooLarge));
    }
}
