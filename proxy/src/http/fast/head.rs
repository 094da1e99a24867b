//! Request and response heads parsed with `httparse` (the parser hyper itself uses) into
//! positions in the connection's buffer, with what forwarding needs to know decided in the
//! same pass: framing, keep-alive, hop-by-hop headers to drop, and whether the request is one
//! the fast path takes at all.

use std::mem::MaybeUninit;

/// Most headers a message may have (hyper's limit too: beyond it, hyper answers 431).
const MAX_HEADERS: usize = 100;
/// Request bodies up to this size are read whole before forwarding (so that a request can be
/// tried again on a fresh connection); larger ones take the full path, which streams them.
pub const MAX_BODY: u64 = 64 * 1024;
/// Longer paths take the full path (hyper answers 414 past its limit).
const MAX_PATH: usize = 8 * 1024;

/// A range of the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HeaderPos {
    pub name: Span,
    pub value: Span,
    /// Not forwarded (hop-by-hop).
    pub drop: bool,
}

/// A response head that is not valid HTTP/1.1 (or not one the proxy relays).
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidResponse;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    Complete,
    /// Not something this parser accepts; the full path (hyper) answers it.
    Invalid,
}

/// A request head, reused from one request of a connection to the next.
#[derive(Debug, Default)]
pub struct ReqHead {
    /// Bytes of the head, up to and including the empty line.
    pub len: usize,
    pub method: Span,
    /// The request target (origin form: path and query).
    pub path: Span,
    pub headers: Vec<HeaderPos>,
    /// The `Host` header's value.
    pub host: Span,
    pub content_length: u64,
    /// The client asked to close after this request.
    pub close: bool,
    /// Some header must not be forwarded, so the head is rewritten rather than sent as is.
    pub strip: bool,
    pub is_head: bool,
    /// Why the full path must serve this request, if it must.
    pub full: Option<&'static str>,
    /// `istio_request_bytes`' share of the head, counted as the full path counts it.
    pub metric_bytes: u64,
    /// The client sent `x-forwarded-client-cert`, which an inbound side must replace.
    pub client_cert_header: bool,
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The tokens of a `Connection` header: (close, keep-alive, anything else).
fn connection_tokens(v: &[u8]) -> (bool, bool, bool) {
    // Nearly always one of these, as clients and servers write them.
    if eq(v, "keep-alive") {
        return (false, true, false);
    }
    if eq(v, "close") {
        return (true, false, false);
    }
    let (mut close, mut keep, mut other) = (false, false, false);
    for t in v.split(|&b| b == b',') {
        let t = t.trim_ascii();
        if eq(t, "close") {
            close = true;
        } else if eq(t, "keep-alive") {
            keep = true;
        } else if !t.is_empty() {
            other = true;
        }
    }
    (close, keep, other)
}

/// RFC 3986's path and query characters (percent-encoded bytes stay encoded).
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

impl ReqHead {
    /// Parses the head at the start of `buf`.
    pub fn parse(&mut self, buf: &[u8]) -> Parsed {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            buf,
            &mut storage,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            Err(_) => return Parsed::Invalid,
        };
        let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
            return Parsed::Invalid;
        };
        self.len = len;
        self.method = Span::of(buf, method.as_bytes());
        self.path = Span::of(buf, path.as_bytes());
        self.headers.clear();
        self.host = Span::default();
        self.content_length = 0;
        self.close = false;
        self.strip = false;
        self.is_head = method == "HEAD";
        self.full = None;
        self.client_cert_header = false;
        self.metric_bytes = path.len() as u64;
        let full = |why: &'static str, f: &mut Option<&'static str>| {
            f.get_or_insert(why);
        };
        if version != 1 {
            full("HTTP/1.0", &mut self.full);
        }
        if !path.starts_with('/') || path.len() > MAX_PATH {
            full("request target not in origin form", &mut self.full);
        } else if !path.bytes().all(plain_target_byte) {
            // Rare bytes hyper may refuse (400) or that need care: its call.
            full("unusual request target", &mut self.full);
        }
        if method == "CONNECT" {
            full("CONNECT", &mut self.full);
        }
        let mut hosts = 0;
        let mut lengths = 0;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value;
            self.metric_bytes += (name.len() + value.len() + 4) as u64;
            let mut drop = false;
            match name.len() {
                4 if eq(name, "host") => {
                    hosts += 1;
                    self.host = Span::of(buf, value);
                }
                14 if eq(name, "content-length") => {
                    lengths += 1;
                    match parse_length(value) {
                        Some(n) if n <= MAX_BODY => self.content_length = n,
                        Some(_) => full("large request body", &mut self.full),
                        None => full("invalid content-length", &mut self.full),
                    }
                }
                10 if eq(name, "connection") => {
                    drop = true;
                    let (close, _, other) = connection_tokens(value);
                    self.close |= close;
                    if other {
                        full("connection options", &mut self.full);
                    }
                }
                10 if eq(name, "keep-alive") => drop = true,
                16 if eq(name, "proxy-connection") => drop = true,
                2 if eq(name, "te") => drop = !eq(value.trim_ascii(), "trailers"),
                17 if eq(name, "transfer-encoding") => full("chunked request", &mut self.full),
                7 if eq(name, "upgrade") => full("upgrade", &mut self.full),
                6 if eq(name, "expect") => full("expect", &mut self.full),
                12 if eq(name, "content-type") && value.starts_with(b"application/grpc") => {
                    full("gRPC", &mut self.full);
                }
                23 if eq(name, "x-forwarded-client-cert") => self.client_cert_header = true,
                _ => {}
            }
            self.strip |= drop;
            self.headers.push(HeaderPos {
                name: Span::of(buf, name),
                value: Span::of(buf, value),
                drop,
            });
        }
        self.metric_bytes += self.content_length;
        if hosts != 1 {
            full("no single Host", &mut self.full);
        }
        if lengths > 1 {
            full("several content-length", &mut self.full);
        }
        Parsed::Complete
    }

    /// The method, as text.
    pub fn method_str<'a>(&self, buf: &'a [u8]) -> &'a str {
        ascii(self.method.get(buf))
    }

    /// The request target, as text.
    pub fn path_str<'a>(&self, buf: &'a [u8]) -> &'a str {
        ascii(self.path.get(buf))
    }

    /// Writes the head to send upstream: the client's, less its hop-by-hop headers.
    pub fn write_upstream(&self, buf: &[u8], out: &mut Vec<u8>) {
        // The request line is HTTP/1.1's already (others take the full path).
        copy_kept(buf, self.len, &self.headers, true, out);
        out.extend_from_slice(b"\r\n");
    }

    /// The headers as an `http::HeaderMap`, for filters and header matches (which need one).
    pub fn header_map(&self, buf: &[u8]) -> http::HeaderMap {
        header_map(buf, &self.headers)
    }
}

pub fn header_map(buf: &[u8], headers: &[HeaderPos]) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    // One copy of the head that every value points into, rather than a copy per value.
    let end = headers.iter().map(|h| h.value.end).max().unwrap_or(0) as usize;
    let shared = bytes::Bytes::copy_from_slice(&buf[..end.min(buf.len())]);
    for h in headers {
        let name = h.name.get(buf);
        let value = shared.slice(h.value.start as usize..h.value.end as usize);
        let (Some(n), Ok(v)) = (
            known_name(name).or_else(|| http::HeaderName::from_bytes(name).ok()),
            http::HeaderValue::from_maybe_shared(value),
        ) else {
            continue;
        };
        map.append(n, v);
    }
    map
}

/// Header names the mesh itself sends on every request, which `http` has no constants for
/// (it would copy each into an allocation of its own): kept once, cloned without copying.
fn known_name(name: &[u8]) -> Option<http::HeaderName> {
    static KNOWN: std::sync::OnceLock<Vec<http::HeaderName>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        [
            "x-request-id",
            "traceparent",
            "tracestate",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-forwarded-client-cert",
            "x-forwarded-proto",
            "x-envoy-attempt-count",
            "x-envoy-peer-metadata",
            "x-envoy-peer-metadata-id",
        ]
        .into_iter()
        .map(http::HeaderName::from_static)
        .collect()
    });
    known
        .iter()
        .find(|k| {
            k.as_str().len() == name.len() && k.as_str().as_bytes().eq_ignore_ascii_case(name)
        })
        .cloned()
}

pub fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// A response head, reused from one exchange to the next.
#[derive(Debug)]
pub struct RespHead {
    pub len: usize,
    pub status: u16,
    pub reason: Span,
    pub headers: Vec<HeaderPos>,
    pub framing: Framing,
    /// The upstream connection may carry another request after this response.
    pub reusable: bool,
    /// Some header is not forwarded; the head is rewritten.
    pub strip: bool,
    /// HTTP/1.0 upstream: the status line is rewritten to HTTP/1.1.
    pub old_version: bool,
    /// `istio_response_bytes`' share of the head.
    pub metric_bytes: u64,
    /// Header names a `Connection` header listed (dropped as hop-by-hop).
    named: Vec<Span>,
}

impl Default for RespHead {
    fn default() -> Self {
        RespHead {
            len: 0,
            status: 0,
            reason: Span::default(),
            headers: Vec::new(),
            framing: Framing::None,
            reusable: false,
            strip: false,
            old_version: false,
            metric_bytes: 0,
            named: Vec::new(),
        }
    }
}

impl RespHead {
    /// Parses a response head at the start of `buf`, the answer to a request that was a HEAD
    /// request if `head_request`. `Err`: not a valid response.
    pub fn parse(&mut self, buf: &[u8], head_request: bool) -> Result<bool, InvalidResponse> {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut storage,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(_) => return Err(InvalidResponse),
        };
        let (Some(version), Some(status)) = (resp.version, resp.code) else {
            return Err(InvalidResponse);
        };
        self.len = len;
        self.status = status;
        self.reason = Span::of(buf, resp.reason.unwrap_or("").as_bytes());
        self.headers.clear();
        self.named.clear();
        self.strip = false;
        self.old_version = version != 1;
        self.metric_bytes = 0;
        let mut keep = version == 1;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut encoded = false;
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value;
            let mut drop = false;
            match name.len() {
                10 if eq(name, "connection") => {
                    drop = true;
                    let (close, _, other) = connection_tokens(value);
                    keep &= !close;
                    if other {
                        for t in value.split(|&b| b == b',') {
                            let t = t.trim_ascii();
                            if !eq(t, "close") && !eq(t, "keep-alive") && !t.is_empty() {
                                self.named.push(Span::of(buf, t));
                            }
                        }
                    }
                }
                10 if eq(name, "keep-alive") => drop = true,
                16 if eq(name, "proxy-connection") => drop = true,
                7 if eq(name, "upgrade") => drop = true,
                14 if eq(name, "content-length") => {
                    let n = parse_length(value).ok_or(InvalidResponse)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(InvalidResponse);
                    }
                    length = Some(n);
                }
                17 if eq(name, "transfer-encoding") => {
                    encoded = true;
                    chunked = value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|last| eq(last.trim_ascii(), "chunked"));
                }
                _ => {}
            }
            self.strip |= drop;
            self.headers.push(HeaderPos {
                name: Span::of(buf, name),
                value: Span::of(buf, value),
                drop,
            });
        }
        if !self.named.is_empty() {
            for h in self.headers.iter_mut() {
                let name = h.name.get(buf);
                if self.named.iter().any(|t| eq(name, as_str(t.get(buf)))) {
                    h.drop = true;
                    self.strip = true;
                }
            }
        }
        self.framing = if head_request || status == 204 || status == 304 || status < 200 {
            Framing::None
        } else if encoded {
            // A content-length beside transfer-encoding is dropped (RFC 9112 §6.3).
            if length.is_some() {
                for h in self.headers.iter_mut() {
                    if eq(h.name.get(buf), "content-length") {
                        h.drop = true;
                        self.strip = true;
                    }
                }
            }
            if chunked {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else {
            match length {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
        for h in self.headers.iter().filter(|h| !h.drop) {
            let name = h.name.get(buf);
            // The full path counts the head after hop-by-hop headers (transfer-encoding too)
            // are gone.
            if !eq(name, "transfer-encoding") {
                self.metric_bytes += (name.len() + h.value.len() + 4) as u64;
            }
        }
        self.reusable = keep && self.framing != Framing::Close;
        Ok(true)
    }

    /// Writes the head for the client: HTTP/1.1, hop-by-hop headers dropped, and
    /// `Connection: close` when the client connection ends after it.
    pub fn write_client(&self, buf: &[u8], close: bool, out: &mut Vec<u8>) {
        if !self.strip && !close && !self.old_version {
            out.extend_from_slice(&buf[..self.len]);
            return;
        }
        if self.old_version {
            out.extend_from_slice(b"HTTP/1.1 ");
            push_status(out, self.status);
            out.push(b' ');
            out.extend_from_slice(self.reason.get(buf));
            out.extend_from_slice(b"\r\n");
            copy_kept(buf, self.len, &self.headers, false, out);
        } else {
            copy_kept(buf, self.len, &self.headers, true, out);
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The head for the client with the first `body` bytes behind it, as slices of `buf` (the
    /// lines kept, `connection: close` if `close`) to write at once without copying them.
    /// Returns how many of `slices` it used, or `None` when it needs more than there are or
    /// the status line must be rewritten (then [`RespHead::write_client`] copies).
    pub fn client_slices<'a>(
        &self,
        buf: &'a [u8],
        close: bool,
        body: usize,
        slices: &mut [std::io::IoSlice<'a>],
    ) -> Option<usize> {
        let whole = &buf[..self.len + body];
        if !self.strip && !close && !self.old_version {
            *slices.first_mut()? = std::io::IoSlice::new(whole);
            return Some(1);
        }
        if self.old_version {
            return None;
        }
        let end = empty_line(buf, self.len);
        let mut n = 0;
        let mut push = |s: &'a [u8]| -> Option<()> {
            if !s.is_empty() {
                *slices.get_mut(n)? = std::io::IoSlice::new(s);
                n += 1;
            }
            Some(())
        };
        let mut run = 0;
        for h in self.headers.iter().filter(|h| h.drop) {
            push(&buf[run..h.name.start as usize])?;
            run = line_end(buf, h.value.end as usize);
        }
        push(&buf[run..end])?;
        if close {
            push(b"connection: close\r\n")?;
        }
        push(&whole[end..])?;
        Some(n)
    }

    /// The forwarded headers as `http::response::Parts`, for the filter chain.
    pub fn parts(&self, buf: &[u8]) -> http::response::Parts {
        let kept: Vec<HeaderPos> = self.headers.iter().filter(|h| !h.drop).copied().collect();
        let mut r = http::Response::new(());
        *r.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *r.headers_mut() = header_map(buf, &kept);
        r.into_parts().0
    }
}

/// Copies a head's first line (if `first_line`) and the headers not dropped, without the final
/// empty line: the lines as they came, in runs between the dropped ones.
fn copy_kept(buf: &[u8], len: usize, headers: &[HeaderPos], first_line: bool, out: &mut Vec<u8>) {
    let end = empty_line(buf, len);
    let first = headers.first().map_or(end, |h| h.name.start as usize);
    if first_line {
        out.extend_from_slice(&buf[..first]);
    }
    let mut run = first;
    for h in headers.iter().filter(|h| h.drop) {
        out.extend_from_slice(&buf[run..h.name.start as usize]);
        run = line_end(buf, h.value.end as usize);
    }
    if run < end {
        out.extend_from_slice(&buf[run..end]);
    }
}

/// Where the empty line that ends a head of `len` bytes starts, whichever line ending it used.
fn empty_line(buf: &[u8], len: usize) -> usize {
    if buf[..len].ends_with(b"\r\n\r\n") {
        len - 2
    } else {
        len - 1
    }
}

/// The start of the line after the one `from` is in.
fn line_end(buf: &[u8], from: usize) -> usize {
    buf[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |i| from + i + 1)
}

/// Text known to be ASCII (a method token, a target of [`plain_target_byte`]s), without a
/// second validation; anything else is empty.
fn ascii(b: &[u8]) -> &str {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(b) }
    } else {
        ""
    }
}

fn as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

pub fn push_status(out: &mut Vec<u8>, status: u16) {
    let s = status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

/// Writes a head from `Parts` (filters changed it, or it is a local answer); the framing
/// headers are the caller's.
pub fn write_parts(out: &mut Vec<u8>, parts: &http::response::Parts, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, parts.status.as_u16());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in &parts.headers {
        write_header(out, n.as_str().as_bytes(), v.as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(bytes: &[u8]) -> (Parsed, ReqHead) {
        let mut h = ReqHead::default();
        let p = h.parse(bytes);
        (p, h)
    }

    #[test]
    fn the_header_map_has_every_header_as_sent() {
        let bytes = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: 1-2\r\ntraceparent: 00-ab\r\nX-Mine: v\r\nx-mine: w\r\n\r\n";
        let (_, h) = req(bytes);
        let m = h.header_map(bytes);
        assert_eq!(m.len(), 5);
        assert_eq!(m["host"], "a");
        assert_eq!(m["x-request-id"], "1-2");
        assert_eq!(m["traceparent"], "00-ab");
        let mine: Vec<_> = m.get_all("x-mine").iter().collect();
        assert_eq!(mine, ["v", "w"]);
    }

    #[test]
    fn a_plain_request_is_forwarded_as_it_came() {
        let b = b"GET /a?b=1 HTTP/1.1\r\nHost: svc:80\r\nUser-Agent: t\r\n\r\nNEXT";
        let (p, h) = req(b);
        assert_eq!(p, Parsed::Complete);
        assert_eq!(h.len, b.len() - 4);
        assert_eq!(h.path.get(b), b"/a?b=1");
        assert_eq!(h.host.get(b), b"svc:80");
        assert_eq!(h.full, None);
        assert!(!h.strip && !h.close);
        // Path, then name + value + 4 per header, as the full path counts.
        assert_eq!(h.metric_bytes, 6 + (4 + 6 + 4) + (10 + 1 + 4));
        let mut out = Vec::new();
        h.write_upstream(b, &mut out);
        assert_eq!(&out[..], &b[..h.len]);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_close_is_seen() {
        let b = b"POST / HTTP/1.1\r\nHost: s\r\nConnection: keep-alive, close\r\nKeep-Alive: 5\r\nTE: gzip\r\nContent-Length: 3\r\n\r\nabc";
        let (p, h) = req(b);
        assert_eq!(p, Parsed::Complete);
        assert!(h.close && h.strip);
        assert_eq!(h.content_length, 3);
        let mut out = Vec::new();
        h.write_upstream(b, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\n\r\n"
        );
        let (_, h) = req(b"GET / HTTP/1.1\r\nHost: s\r\nTE: trailers\r\n\r\n");
        assert!(!h.strip, "TE: trailers is forwarded");
    }

    #[test]
    fn what_takes_the_full_path() {
        let cases: [(&[u8], &str); 13] = [
            (b"GET /a{b} HTTP/1.1\r\nHost: s\r\n\r\n", "unusual"),
            (b"GET / HTTP/1.0\r\nHost: s\r\n\r\n", "HTTP/1.0"),
            (b"GET http://s/ HTTP/1.1\r\nHost: s\r\n\r\n", "origin form"),
            (b"CONNECT s:443 HTTP/1.1\r\nHost: s\r\n\r\n", "origin form"),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked",
            ),
            (
                b"GET /ws HTTP/1.1\r\nHost: s\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
                "upgrade",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                "expect",
            ),
            (b"GET / HTTP/1.1\r\n\r\n", "Host"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Host"),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "several",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: x\r\n\r\n",
                "invalid content-length",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 70000\r\n\r\n",
                "large",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: s\r\nContent-Type: application/grpc-web\r\n\r\n",
                "gRPC",
            ),
        ];
        for (bytes, why) in cases {
            let (p, h) = req(bytes);
            assert_eq!(p, Parsed::Complete, "{}", String::from_utf8_lossy(bytes));
            let got = h
                .full
                .unwrap_or_else(|| panic!("fast: {}", String::from_utf8_lossy(bytes)));
            assert!(
                got.contains(why),
                "{got} for {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert_eq!(req(b"GET / HTTP/1.1\r\nHost: s\r\n").0, Parsed::Partial);
        assert_eq!(
            req(b"GET / HTTP/1.1 extra\r\nHost: s\r\n\r\n").0,
            Parsed::Invalid
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").0,
            Parsed::Invalid
        );
        let many: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
        let b = format!("GET / HTTP/1.1\r\nHost: s\r\n{many}\r\n");
        assert_eq!(req(b.as_bytes()).0, Parsed::Invalid);
    }

    fn resp(bytes: &[u8], head_request: bool) -> RespHead {
        let mut r = RespHead::default();
        assert_eq!(r.parse(bytes, head_request), Ok(true));
        r
    }

    #[test]
    fn response_framing_and_reuse() {
        let b = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        let r = resp(b, false);
        assert_eq!(r.framing, Framing::Length(5));
        assert!(r.reusable && r.strip);
        let mut out = Vec::new();
        r.write_client(b, false, &mut out);
        assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(r.metric_bytes, 14 + 1 + 4);

        let r = resp(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::Chunked);
        assert!(r.reusable && !r.strip);
        assert_eq!(r.metric_bytes, 0);

        let r = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(r.framing, Framing::None, "HEAD");
        let r = resp(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::None);

        let r = resp(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.reusable && r.old_version);
        let b =
            b"HTTP/1.1 200 OK\r\nConnection: close, x-secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n";
        let r = resp(b, false);
        assert_eq!(r.framing, Framing::Close);
        assert!(!r.reusable);
        let mut out = Vec::new();
        r.write_client(b, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nX-Kept: 2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn client_heads_as_slices_are_the_copied_heads() {
        let cases: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\nKeep-Alive: 5\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ];
        for b in cases {
            let r = resp(b, false);
            let body = b.len() - r.len;
            for close in [false, true] {
                let mut copied = Vec::new();
                r.write_client(b, close, &mut copied);
                copied.extend_from_slice(&b[r.len..]);
                let mut slices = [std::io::IoSlice::new(&[]); 8];
                let n = r.client_slices(b, close, body, &mut slices).expect("fits");
                let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                assert_eq!(
                    String::from_utf8_lossy(&joined),
                    String::from_utf8_lossy(&copied)
                );
            }
        }
        // Too many pieces for the slices given, or a status line to rewrite: copied instead.
        let b = b"HTTP/1.1 200 OK\r\nConnection: a, b\r\nA: 1\r\nX: 1\r\nB: 2\r\n\r\n";
        let r = resp(b, false);
        let mut two = [std::io::IoSlice::new(&[]); 2];
        assert_eq!(r.client_slices(b, false, 0, &mut two), None);
        let b = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut eight = [std::io::IoSlice::new(&[]); 8];
        assert_eq!(resp(b, false).client_slices(b, false, 0, &mut eight), None);
    }

    #[test]
    fn invalid_responses() {
        let mut r = RespHead::default();
        assert!(r
            .parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            )
            .is_err());
        assert!(r
            .parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false)
            .is_err());
        assert!(r.parse(b"garbage\r\n\r\n", false).is_err());
        assert_eq!(r.parse(b"HTTP/1.1 200 OK\r\n", false), Ok(false));
    }
}
