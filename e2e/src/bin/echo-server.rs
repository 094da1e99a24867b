//! The application of an emulated pod: an HTTP/1.1 server that answers every request with its
//! name (`ECHO_NAME`), so a test can tell which endpoint served it. `ECHO_FAIL_EVERY=N` makes
//! every Nth request a 503, for retry tests. Listens on `ECHO_ADDR` (default 0.0.0.0:8080).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn serve(stream: TcpStream, name: &str, fail_every: u64, count: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower == "connection: close" {
                close = true;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
        let (status, text) = if fail_every > 0 && n.is_multiple_of(fail_every) {
            (
                "503 Service Unavailable",
                format!("{name} failed request {n}\n"),
            )
        } else {
            ("200 OK", format!("{name}\n"))
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let name = std::env::var("ECHO_NAME").unwrap_or_else(|_| "echo".to_owned());
    let addr = std::env::var("ECHO_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
    let fail_every: u64 = std::env::var("ECHO_FAIL_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let listener = TcpListener::bind(&addr)?;
    let count = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming().flatten() {
        let name = name.clone();
        let count = count.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &name, fail_every, &count);
        });
    }
    Ok(())
}
