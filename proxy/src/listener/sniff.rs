//! Protocol detection: read the first bytes (within a timeout) and decide between HTTP/1.x,
//! HTTP/2 with prior knowledge, and opaque TCP.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Http1,
    Http2,
    Tcp,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What `prefix` shows so far; `None`: need more bytes.
pub fn classify(prefix: &[u8]) -> Option<Detected> {
    if prefix.is_empty() {
        return None;
    }
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Some(Detected::Http2)
        } else {
            None
        };
    }
    // HTTP/1.x: a method token (upper-case letters) then a space.
    for (i, &b) in prefix.iter().enumerate() {
        match b {
            b'A'..=b'Z' | b'-' if i < 16 => continue,
            b' ' if i > 0 => return Some(Detected::Http1),
            _ => return Some(Detected::Tcp),
        }
    }
    if prefix.len() >= 16 {
        Some(Detected::Tcp)
    } else {
        None
    }
}

/// Peeks at the first bytes (leaving them in the socket for the protocol that reads them)
/// until the protocol is known or `timeout` passes (then: TCP, as for server-first protocols).
/// Peeking rather than reading keeps the stream unwrapped for the fast path.
pub async fn detect(stream: &TcpStream, timeout: Duration) -> io::Result<Detected> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Ok(Detected::Tcp),
            Ok(Ok(0)) => return Ok(Detected::Tcp),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
        };
        if let Some(d) = classify(&buf[..n]) {
            return Ok(d);
        }
        // Too few bytes to tell. The socket stays readable while they sit there, so wait a
        // little for more instead of spinning (rare: clients send a request line at once).
        if tokio::time::Instant::now() >= deadline {
            return Ok(Detected::Tcp);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Detected::Http2)
        );
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Some(Detected::Tcp));
        assert_eq!(classify(b"hello world"), Some(Detected::Tcp));
        assert_eq!(classify(b"get / HTTP/1.1"), Some(Detected::Tcp));
    }
}
