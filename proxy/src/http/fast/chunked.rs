//! Finds the end of a chunked message body without decoding it: the fast path forwards the
//! chunked bytes as they are (trailers included) and only needs to know where the message
//! ends and how many data bytes it carried (for `istio_response_bytes`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk-size digits; this many seen so far.
    Size(u8),
    /// After the size: chunk extensions, until the line ends.
    Ext,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    FinalLf,
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    /// Data bytes seen so far (the decoded body length).
    pub data: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size(0),
            size: 0,
            data: 0,
        }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `bytes`, the next bytes of the body; returns how many of them belong to the
    /// message (fewer than all only once it is done).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Invalid> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(n) = self.state {
                // Data is skipped over, not scanned.
                let take = n.min((bytes.len() - i) as u64);
                i += take as usize;
                self.data += take;
                self.state = match n - take {
                    0 => State::DataCr,
                    left => State::Data(left),
                };
                continue;
            }
            let b = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data(_) => unreachable!("handled above"),
                State::Size(digits) => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 15 hex digits are more than any body; more would overflow.
                        if digits >= 15 {
                            return Err(Invalid);
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + d;
                        State::Size(digits + 1)
                    }
                    _ if digits == 0 => return Err(Invalid),
                    b';' | b' ' | b'\t' => State::Ext,
                    b'\r' => State::SizeLf,
                    b'\n' => self.size_line_end(),
                    _ => return Err(Invalid),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => self.size_line_end(),
                    _ => State::Ext,
                },
                State::SizeLf => match b {
                    b'\n' => self.size_line_end(),
                    _ => return Err(Invalid),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(Invalid),
                },
                State::DataLf => match b {
                    b'\n' => State::Size(0),
                    _ => return Err(Invalid),
                },
                State::TrailerStart => match b {
                    b'\r' => State::FinalLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\n' => State::TrailerStart,
                    _ => State::TrailerLine,
                },
                State::FinalLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(Invalid),
                },
            };
            i += 1;
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    fn size_line_end(&mut self) -> State {
        let size = std::mem::take(&mut self.size);
        match size {
            0 => State::TrailerStart,
            n => State::Data(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: &[u8]) -> (usize, u64, bool) {
        let mut c = Chunked::default();
        let n = c.feed(body).expect("valid");
        (n, c.data, c.is_done())
    }

    #[test]
    fn finds_the_end_and_counts_data() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        assert_eq!(whole(body), (body.len() - 4, 11, true));
        // Trailers are part of the message.
        let body = b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx: y\r\n\r\n";
        assert_eq!(whole(body), (body.len(), 3, true));
        // Upper-case hex.
        assert_eq!(whole(b"A\r\n0123456789\r\n0\r\n\r\n").1, 10);
    }

    #[test]
    fn byte_by_byte_is_the_same_as_at_once() {
        let body = b"5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nt: 1\r\n\r\n";
        let mut c = Chunked::default();
        for (i, b) in body.iter().enumerate() {
            assert!(!c.is_done(), "done early at {i}");
            assert_eq!(c.feed(std::slice::from_ref(b)), Ok(1));
        }
        assert!(c.is_done());
        assert_eq!(c.data, 31);
        assert_eq!(c.feed(b"more"), Ok(0));
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\rX",
            b"ffffffffffffffff\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(Chunked::default().feed(bad), Err(Invalid), "{bad:?}");
        }
    }
}
