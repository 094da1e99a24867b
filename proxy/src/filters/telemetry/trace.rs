//! Trace context in request headers: W3C `traceparent` / `tracestate` and B3 (`x-b3-*`, or
//! the single `b3` header), read from the request and written for the next hop.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static B3: HeaderName = HeaderName::from_static("b3");
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// The context a request arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: u128,
    /// The caller's span: the parent of ours.
    pub span_id: u64,
    /// `None`: the caller left the decision to us.
    pub sampled: Option<bool>,
}

/// The low `N * 4` bits of `v` as `N` lower-case hex digits: ids written on every request
/// without the formatter's growing buffer.
pub fn hex<const N: usize>(v: u128) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    let mut v = v;
    for d in out.iter_mut().rev() {
        *d = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
    out
}

/// [`hex`] as a `String`.
pub fn hex_string<const N: usize>(v: u128) -> String {
    hex::<N>(v).iter().map(|&b| char::from(b)).collect()
}

fn hex_u128(s: &str) -> Option<u128> {
    // B3 allows 64-bit trace ids (16 hex digits).
    if (s.len() != 32 && s.len() != 16) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

fn hex_u64(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

fn text<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `00-<trace id>-<parent id>-<flags>` (W3C Trace Context, version 00).
pub fn parse_traceparent(v: &str) -> Option<Incoming> {
    let mut parts = v.split('-');
    let version = parts.next()?;
    if version.len() != 2 || version == "ff" {
        return None;
    }
    let trace_id = hex_u128(parts.next().filter(|t| t.len() == 32)?)?;
    let span_id = hex_u64(parts.next()?)?;
    let flags = u8::from_str_radix(parts.next()?.get(..2)?, 16).ok()?;
    Some(Incoming {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
    })
}

fn parse_b3_single(v: &str) -> Option<Incoming> {
    let mut parts = v.split('-');
    let trace_id = hex_u128(parts.next()?)?;
    let span_id = hex_u64(parts.next()?)?;
    let sampled = match parts.next() {
        Some("1") | Some("d") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
    Some(Incoming {
        trace_id,
        span_id,
        sampled,
    })
}

/// The incoming context: `traceparent` first, then B3; `None` when there is none (or it is
/// malformed, which starts a new trace, as Envoy does).
pub fn extract(h: &HeaderMap) -> Option<Incoming> {
    if let Some(tp) = text(h, &TRACEPARENT).and_then(parse_traceparent) {
        return Some(tp);
    }
    if let Some(b3) = text(h, &B3).and_then(parse_b3_single) {
        return Some(b3);
    }
    let trace_id = text(h, &B3_TRACE_ID).and_then(hex_u128)?;
    let span_id = text(h, &B3_SPAN_ID).and_then(hex_u64)?;
    let sampled = if text(h, &B3_FLAGS) == Some("1") {
        Some(true)
    } else {
        match text(h, &B3_SAMPLED) {
            Some("1") | Some("true") => Some(true),
            Some("0") | Some("false") => Some(false),
            _ => None,
        }
    };
    Some(Incoming {
        trace_id,
        span_id,
        sampled,
    })
}

/// Our span in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_id: Option<u64>,
    pub sampled: bool,
}

fn value(b: Vec<u8>) -> HeaderValue {
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::try_from(b).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Writes our span as the context of the next hop, in both W3C and B3 forms, so that apps
/// and tracers of either kind follow it. `tracestate` is passed on as it came.
pub fn inject(h: &mut HeaderMap, s: &SpanContext) {
    let sampled = if s.sampled { "01" } else { "00" };
    h.insert(
        TRACEPARENT.clone(),
        value(
            [
                &b"00-"[..],
                &hex::<32>(s.trace_id),
                b"-",
                &hex::<16>(u128::from(s.span_id)),
                b"-",
                sampled.as_bytes(),
            ]
            .concat(),
        ),
    );
    h.remove(&B3);
    h.insert(B3_TRACE_ID.clone(), value(hex::<32>(s.trace_id).to_vec()));
    h.insert(
        B3_SPAN_ID.clone(),
        value(hex::<16>(u128::from(s.span_id)).to_vec()),
    );
    match s.parent_id {
        Some(p) => {
            h.insert(
                B3_PARENT_SPAN_ID.clone(),
                value(hex::<16>(u128::from(p)).to_vec()),
            );
        }
        None => {
            h.remove(&B3_PARENT_SPAN_ID);
        }
    }
    h.insert(
        B3_SAMPLED.clone(),
        HeaderValue::from_static(if s.sampled { "1" } else { "0" }),
    );
    h.remove(&B3_FLAGS);
}

/// A random non-zero id.
pub fn new_span_id() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

pub fn new_trace_id() -> u128 {
    (u128::from(new_span_id()) << 64) | u128::from(fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_zero_padded_lower_case() {
        assert_eq!(&hex::<16>(0xab), b"00000000000000ab");
        assert_eq!(
            hex_string::<32>(0x4bf92f3577b34da6a3ce929d0e0e4736),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex_string::<4>(0x12345), "2345");
    }

    #[test]
    fn reads_w3c_and_b3() {
        let tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.span_id, 0x00f067aa0ba902b7);
        assert_eq!(tp.sampled, Some(true));
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        let mut h = HeaderMap::new();
        h.insert(&B3_TRACE_ID, HeaderValue::from_static("463ac35c9f6413ad"));
        h.insert(&B3_SPAN_ID, HeaderValue::from_static("a2fb4a1d1a96d312"));
        h.insert(&B3_SAMPLED, HeaderValue::from_static("0"));
        let b = extract(&h).expect("b3");
        assert_eq!(b.trace_id, 0x463ac35c9f6413ad);
        assert_eq!(b.sampled, Some(false));
        let mut h = HeaderMap::new();
        h.insert(
            &B3,
            HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        );
        assert_eq!(extract(&h).map(|i| i.span_id), Some(0xe457b5a2e4d86bd1));
    }

    #[test]
    fn writes_both_forms() {
        let mut h = HeaderMap::new();
        let s = SpanContext {
            trace_id: 1,
            span_id: 2,
            parent_id: Some(3),
            sampled: true,
        };
        inject(&mut h, &s);
        assert_eq!(
            h[&TRACEPARENT],
            "00-00000000000000000000000000000001-0000000000000002-01"
        );
        assert_eq!(h[&B3_PARENT_SPAN_ID], "0000000000000003");
        assert_eq!(extract(&h).map(|i| (i.trace_id, i.span_id)), Some((1, 2)));
    }
}
