//! Prometheus text exposition (version 0.0.4) of the Istio metrics.

use std::fmt::Write;

use super::{lock, Histogram, Metrics};

fn histogram<const N: usize>(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64; N],
    h: &Histogram<N>,
) {
    let mut cumulative = 0;
    for (b, c) in bounds.iter().zip(h.counts.iter()) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

pub(super) fn prometheus(m: &Metrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    {
        let requests = lock(&m.requests);
        let mut rows: Vec<(String, &super::RequestSeries)> = requests
            .iter()
            .map(|(k, s)| {
                let mut l = String::with_capacity(s.labels.text.len() + 96);
                l.push_str(&s.labels.text);
                let _ = write!(
                    l,
                    ",request_protocol=\"{}\",response_code=\"{}\",grpc_response_status=\"",
                    k.protocol.as_str(),
                    k.code
                );
                if let Some(g) = k.grpc {
                    let _ = write!(l, "{g}");
                }
                l.push_str("\",response_flags=\"");
                k.flags.write_to(&mut l);
                l.push('"');
                (l, s)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str("# HELP istio_requests_total Requests, by peers and response.\n");
        out.push_str("# TYPE istio_requests_total counter\n");
        for (l, s) in &rows {
            let _ = writeln!(out, "istio_requests_total{{{l}}} {}", s.total);
        }
        out.push_str(
            "# HELP istio_request_duration_milliseconds Time from request start to response end.\n",
        );
        out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
        for (l, s) in &rows {
            histogram(
                &mut out,
                "istio_request_duration_milliseconds",
                l,
                &super::DURATION_BUCKETS_MS,
                &s.duration,
            );
        }
        out.push_str("# HELP istio_request_bytes Request sizes (headers and body).\n");
        out.push_str("# TYPE istio_request_bytes histogram\n");
        for (l, s) in &rows {
            histogram(
                &mut out,
                "istio_request_bytes",
                l,
                &super::BYTES_BUCKETS,
                &s.request_bytes,
            );
        }
        out.push_str("# HELP istio_response_bytes Response sizes (headers and body).\n");
        out.push_str("# TYPE istio_response_bytes histogram\n");
        for (l, s) in &rows {
            histogram(
                &mut out,
                "istio_response_bytes",
                l,
                &super::BYTES_BUCKETS,
                &s.response_bytes,
            );
        }
    }
    let tcp = lock(&m.tcp);
    let mut rows: Vec<(String, &super::TcpSeries)> = tcp
        .iter()
        .map(|(k, s)| {
            let mut l = String::with_capacity(s.labels.text.len() + 32);
            l.push_str(&s.labels.text);
            l.push_str(",response_flags=\"");
            k.flags.write_to(&mut l);
            l.push('"');
            (l, s)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    type Pick = fn(&super::TcpSeries) -> u64;
    let families: [(&str, &str, Pick); 4] = [
        (
            "istio_tcp_connections_opened_total",
            "TCP connections opened.",
            |s| s.opened,
        ),
        (
            "istio_tcp_connections_closed_total",
            "TCP connections closed.",
            |s| s.closed,
        ),
        (
            "istio_tcp_sent_bytes_total",
            "Bytes sent to the client on TCP connections.",
            |s| s.sent,
        ),
        (
            "istio_tcp_received_bytes_total",
            "Bytes received from the client on TCP connections.",
            |s| s.received,
        ),
    ];
    for (name, help, pick) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (l, s) in &rows {
            let _ = writeln!(out, "{name}{{{l}}} {}", pick(s));
        }
    }
    m.security.render(&mut out);
    out
}
