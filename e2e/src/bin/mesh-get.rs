//! A client for the mesh tests, run inside a pod's network namespace: `mesh-get URL COUNT
//! [HOST] [PAUSE_MS]` sends COUNT GETs over one keep-alive connection (a new one after a close
//! or error) and prints, as JSON, how many answers had each body and each status, and how many
//! requests failed without an answer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn one(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: &str,
    path: &str,
    host: &str,
) -> Result<(u16, String), String> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        *conn = Some(BufReader::new(stream));
    }
    let reader = conn.as_mut().ok_or("no connection")?;
    write!(
        reader.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("read: {e}"))?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status:?}"))?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0u8; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("body: {e}"))?;
    if close {
        *conn = None;
    }
    Ok((code, String::from_utf8_lossy(&body).trim().to_owned()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_default();
    let count: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1);
    let rest = url.strip_prefix("http://").unwrap_or(&url);
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = args.get(3).cloned().unwrap_or_else(|| addr.to_owned());
    let pause = Duration::from_millis(args.get(4).and_then(|p| p.parse().ok()).unwrap_or(0));
    let mut bodies: BTreeMap<String, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut conn = None;
    for _ in 0..count {
        match one(&mut conn, addr, path, &host) {
            Ok((code, body)) => {
                *statuses.entry(code).or_default() += 1;
                if code == 200 {
                    *bodies.entry(body).or_default() += 1;
                }
            }
            Err(e) => {
                conn = None;
                failures.push(e);
            }
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    let statuses: BTreeMap<String, usize> = statuses
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    println!(
        "{}",
        serde_json::json!({"bodies": bodies, "statuses": statuses, "failures": failures.len(), "errors": failures.iter().take(5).collect::<Vec<_>>()})
    );
}
