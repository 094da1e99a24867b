//! Answers the proxy makes itself: errors (with Envoy's wording and response flags), direct
//! responses, redirects, CORS preflights, and their gRPC forms.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::http::body::RespBody;
use crate::metrics::ResponseFlags;

/// The gRPC status Envoy gives a locally generated HTTP status.
pub fn grpc_status_for(status: u16) -> u8 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// A local answer; for a gRPC request, a trailers-only gRPC response carrying the status.
pub fn reply(status: u16, body: &'static str, grpc: bool) -> Response<RespBody> {
    if grpc {
        return grpc_reply(u32::from(grpc_status_for(status)), body);
    }
    let mut r = Response::new(RespBody::full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// A trailers-only gRPC answer.
pub fn grpc_reply(code: u32, message: &str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    r
}

/// The body Envoy writes for a locally failed request, by flag.
pub fn error_text(flags: ResponseFlags) -> &'static str {
    if flags.contains(ResponseFlags::UPSTREAM_OVERFLOW) {
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    } else if flags.contains(ResponseFlags::NO_HEALTHY_UPSTREAM) {
        "no healthy upstream"
    } else if flags.contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT) {
        "upstream request timeout"
    } else if flags.contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE) {
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    } else if flags.contains(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION) {
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    } else if flags.contains(ResponseFlags::NO_CLUSTER_FOUND) {
        "cluster not found"
    } else if flags.contains(ResponseFlags::NO_ROUTE) {
        ""
    } else if flags.contains(ResponseFlags::FAULT_INJECTED) {
        "fault filter abort"
    } else {
        ""
    }
}

pub fn direct(status: u16, body: Bytes) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r
}

pub fn redirect(code: u16, location: &str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
