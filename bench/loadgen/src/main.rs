//! `mesh-loadgen --addr 127.0.0.1:8080 --host bench --connections 16 --rate 2000 --seconds 10`
//!
//! Sends GET requests over keep-alive HTTP/1.1 connections at a fixed total rate and prints
//! latency percentiles as JSON. Open loop: every request has a scheduled start time and its
//! latency counts from then, so a slow server's queueing shows up in the figures (no
//! coordinated omission). Written here because Debian's wrk is closed-loop only and wrk2 is not
//! packaged.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    connections: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:8080".parse().unwrap(),
        host: "localhost".into(),
        path: "/".into(),
        connections: 16,
        rate: 2000.0,
        seconds: 10.0,
        warmup: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v}: {e}");
        match k.as_str() {
            "--addr" => a.addr = v.parse().map_err(|e| bad(&e))?,
            "--host" => a.host = v,
            "--path" => a.path = v,
            "--connections" => a.connections = v.parse().map_err(|e| bad(&e))?,
            "--rate" => a.rate = v.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = v.parse().map_err(|e| bad(&e))?,
            "--warmup" => a.warmup = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

/// Reads one response (Content-Length framed) off `s`, keeping extra bytes in `buf`.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct ConnResult {
    latencies_us: Vec<u32>,
    errors: u64,
    non_200: u64,
}

async fn connection(a: std::sync::Arc<Args>, idx: usize, start: Instant, measure_from: Instant, end: Instant) -> ConnResult {
    let interval = Duration::from_secs_f64(a.connections as f64 / a.rate);
    let offset = interval.mul_f64(idx as f64 / a.connections as f64);
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", a.path, a.host).into_bytes();
    let mut r = ConnResult { latencies_us: Vec::new(), errors: 0, non_200: 0 };
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut k: u32 = 0;
    loop {
        let due = start + offset + interval * k;
        k += 1;
        if due >= end {
            return r;
        }
        // Latency counts from the scheduled start when the connection was still busy then (the
        // server is behind); otherwise from the moment the request goes out, so that the
        // timer's own lateness (tokio's timer ticks in milliseconds) is not counted.
        let begin = if Instant::now() >= due {
            due
        } else {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        };
        if stream.is_none() {
            match TcpStream::connect(a.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    buf.clear();
                }
                Err(_) => {
                    r.errors += 1;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let ok = match s.write_all(&request).await {
            Ok(()) => read_response(s, &mut buf).await,
            Err(e) => Err(e),
        };
        let latency = begin.elapsed();
        match ok {
            Ok(status) => {
                if due >= measure_from {
                    r.latencies_us.push(latency.as_micros().min(u32::MAX as u128) as u32);
                    if status != 200 {
                        r.non_200 += 1;
                    }
                }
            }
            Err(_) => {
                r.errors += 1;
                stream = None;
            }
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (lat, errors, non_200, measured) = rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(50);
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let end = measure_from + Duration::from_secs_f64(args.seconds);
        let mut tasks = Vec::new();
        for i in 0..args.connections {
            tasks.push(tokio::spawn(connection(args.clone(), i, start, measure_from, end)));
        }
        let mut lat = Vec::new();
        let (mut errors, mut non_200) = (0, 0);
        for t in tasks {
            if let Ok(r) = t.await {
                lat.extend(r.latencies_us);
                errors += r.errors;
                non_200 += r.non_200;
            }
        }
        (lat, errors, non_200, args.seconds)
    });
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (lat.len() - 1) as f64).round() as usize;
        lat[i] as f64 / 1000.0
    };
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"non_200\": {}, \"rps\": {:.1}, \"p50_ms\": {:.3}, \"p90_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}}}",
        lat.len(),
        errors,
        non_200,
        lat.len() as f64 / measured,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0)
    );
}
