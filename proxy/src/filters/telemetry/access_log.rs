//! Access logs on stdout, one line per request, in Istio's default text format or as JSON with
//! Istio's default JSON keys. Lines go through a queue to a writer thread, so a slow stdout
//! never stalls a request; a full queue drops lines, counted.

use std::io::Write;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;

/// Every field of one line; `None` prints `-`.
#[derive(Debug, Default)]
pub struct Entry {
    /// Unix milliseconds.
    pub start_ms: u64,
    pub method: String,
    pub path: String,
    pub protocol: &'static str,
    pub response_code: u16,
    pub response_flags: String,
    pub response_code_details: Option<&'static str>,
    pub upstream_transport_failure_reason: Option<String>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: u64,
    pub x_forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<String>,
    pub upstream_cluster: Option<String>,
    pub downstream_local_address: Addr,
    pub downstream_remote_address: Addr,
    pub requested_server_name: Option<String>,
    pub route_name: Option<String>,
    pub downstream_peer_uri_san: Option<String>,
    pub upstream_peer_uri_san: Option<String>,
    pub trace_id: Option<String>,
}

/// A socket address kept as one, not as text: written straight into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub std::net::SocketAddr);

impl Default for Addr {
    fn default() -> Addr {
        Addr(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `2024-06-01T12:34:56.789Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let mut s = String::with_capacity(24);
    push_rfc3339_ms(&mut s, unix_ms);
    s
}

/// Zero-padded decimal digits, without the formatter (this runs for every access log line).
fn push_digits(out: &mut String, v: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = v.unsigned_abs();
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len() - width);
    out.extend(buf[start..].iter().map(|&b| char::from(b)));
}

/// [`rfc3339_ms`] appended to `out`.
pub fn push_rfc3339_ms(out: &mut String, unix_ms: u64) {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let rem = rem as i64;
    for (v, width, sep) in [
        (y, 4, '-'),
        (m, 2, '-'),
        (d, 2, 'T'),
        (rem / 3600, 2, ':'),
        ((rem % 3600) / 60, 2, ':'),
        (rem % 60, 2, '.'),
        (ms as i64, 3, 'Z'),
    ] {
        push_digits(out, v, width);
        out.push(sep);
    }
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl Entry {
    /// Istio's default text format (`meshConfig.accessLogFormat` unset).
    pub fn text(&self) -> String {
        use std::fmt::Write;
        // Sized for a typical line, so that writing it does not grow the string step by step.
        let mut s = String::with_capacity(320 + self.path.len());
        s.push('[');
        push_rfc3339_ms(&mut s, self.start_ms);
        let _ = writeln!(
            s,
            "] \"{} {} {}\" {} {} {} - \"{}\" {} {} {} - \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} - {} {} {} {}",
            self.method,
            self.path,
            self.protocol,
            self.response_code,
            self.response_flags,
            self.response_code_details.unwrap_or("via_upstream"),
            dash(&self.upstream_transport_failure_reason),
            self.bytes_received,
            self.bytes_sent,
            self.duration_ms,
            dash(&self.x_forwarded_for),
            dash(&self.user_agent),
            dash(&self.request_id),
            dash(&self.authority),
            dash(&self.upstream_host),
            dash(&self.upstream_cluster),
            self.downstream_local_address,
            self.downstream_remote_address,
            dash(&self.requested_server_name),
            dash(&self.route_name),
        );
        s
    }

    /// Istio's default JSON keys, plus the peers' identities and the trace id.
    pub fn json(&self) -> String {
        let v = serde_json::json!({
            "start_time": rfc3339_ms(self.start_ms),
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "response_code": self.response_code,
            "response_flags": self.response_flags,
            "response_code_details": self.response_code_details.unwrap_or("via_upstream"),
            "connection_termination_details": null,
            "upstream_transport_failure_reason": self.upstream_transport_failure_reason,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "duration": self.duration_ms,
            "upstream_service_time": null,
            "x_forwarded_for": self.x_forwarded_for,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "authority": self.authority,
            "upstream_host": self.upstream_host,
            "upstream_cluster": self.upstream_cluster,
            "upstream_local_address": null,
            "downstream_local_address": self.downstream_local_address.to_string(),
            "downstream_remote_address": self.downstream_remote_address.to_string(),
            "requested_server_name": self.requested_server_name,
            "route_name": self.route_name,
            "downstream_peer_uri_san": self.downstream_peer_uri_san,
            "upstream_peer_uri_san": self.upstream_peer_uri_san,
            "trace_id": self.trace_id,
        });
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

/// The process's stdout writer; its thread starts with the first line.
pub struct Writer {
    queue: Mutex<Option<SyncSender<String>>>,
    metrics: Arc<Metrics>,
}

impl Writer {
    pub fn new(metrics: Arc<Metrics>) -> Writer {
        Writer {
            queue: Mutex::new(None),
            metrics,
        }
    }

    /// Queues a line; never waits.
    pub fn write(&self, line: String) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_none() {
            *q = start();
        }
        let Some(tx) = q.as_ref() else {
            Metrics::inc(&self.metrics.security.access_logs_dropped);
            return;
        };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => Metrics::inc(&self.metrics.security.access_logs_dropped),
            Err(TrySendError::Disconnected(_)) => {
                *q = None;
                Metrics::inc(&self.metrics.security.access_logs_dropped);
            }
        }
    }
}

/// How long lines gather before they are written (the most a line waits).
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

fn start() -> Option<SyncSender<String>> {
    let (tx, rx) = mpsc::sync_channel::<String>(16 * 1024);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                // Write what is queued in one go, then flush before waiting again.
                while let Ok(more) = rx.try_recv() {
                    let _ = out.write_all(more.as_bytes());
                }
                let _ = out.flush();
                // Lines sent while this thread sleeps wake nobody: under load the request
                // path then never pays for a wake-up (measured: a futex wake per line cost
                // the worker more than formatting the line), and lines go out in batches.
                std::thread::sleep(BATCH_INTERVAL);
            }
        })
        .map_err(|e| tracing::error!("access log thread: {e}"))
        .ok()?;
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_717_245_296_789), "2024-06-01T12:34:56.789Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
