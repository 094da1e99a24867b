//! The two body types the proxy passes around, as enums rather than boxed trait objects so that
//! a request costs no extra allocation: [`ReqBody`] goes upstream, [`RespBody`] downstream and
//! carries what must happen when the response ends (metrics, returning the upstream connection,
//! releasing load-balancer counters).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::cluster::pool::PooledConn;
use crate::cluster::RequestGuard;
use crate::metrics::{LabelSet, Metrics, RequestRecord, ResponseFlags};

pin_project_lite::pin_project! {
    #[project = KindProj]
    pub enum Kind {
        Empty,
        Full { data: Option<Bytes> },
        Streaming { #[pin] body: Incoming },
    }
}

impl Kind {
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            KindProj::Empty => Poll::Ready(None),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Streaming { body } => body.poll_frame(cx),
        }
    }
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Empty => true,
            Kind::Full { data } => data.is_none(),
            Kind::Streaming { body } => body.is_end_stream(),
        }
    }
    fn size_hint(&self) -> SizeHint {
        match self {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Streaming { body } => body.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body on its way upstream.
    pub struct ReqBody {
        #[pin]
        kind: Kind,
    }
}

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody { kind: Kind::Empty }
    }
    pub fn full(b: Bytes) -> Self {
        if b.is_empty() {
            return Self::empty();
        }
        ReqBody {
            kind: Kind::Full { data: Some(b) },
        }
    }
    pub fn streaming(body: Incoming) -> Self {
        ReqBody {
            kind: Kind::Streaming { body },
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.project().kind.poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

/// What runs with the finished record of a request (access log line, span).
pub type OnDone = Box<dyn FnOnce(&RequestRecord) + Send>;

/// Metrics of one request, recorded when its response ends (or is abandoned).
pub struct Meter {
    pub metrics: Arc<Metrics>,
    pub labels: Arc<LabelSet>,
    pub start: Instant,
    pub record: RequestRecord,
    /// Telemetry that wants the finished record (access log, span); `None` when off.
    pub done: Option<OnDone>,
}

impl Meter {
    fn finish(mut self, extra: ResponseFlags) {
        self.record.flags.insert(extra);
        self.record.duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        self.metrics.record_request(&self.labels, &self.record);
        if let Some(done) = self.done.take() {
            done(&self.record);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client.
    pub struct RespBody {
        #[pin]
        kind: Kind,
        // Returned to the pool once the body has been read to its end.
        pooled: Option<PooledConn>,
        meter: Option<Meter>,
        guard: Option<RequestGuard>,
        done: bool,
    }

    impl PinnedDrop for RespBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                if this.kind.is_end_stream() {
                    // Nothing was left to send (hyper need not poll an empty body).
                    if let Some(m) = this.meter.take() {
                        m.finish(ResponseFlags::NONE);
                    }
                    if let Some(p) = this.pooled.take() {
                        p.release();
                    }
                } else {
                    // The client went away before the end: not a clean end.
                    if let Some(m) = this.meter.take() {
                        m.finish(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
                    }
                    if let Some(p) = this.pooled.take() {
                        p.discard();
                    }
                }
            }
        }
    }
}

impl RespBody {
    pub fn empty() -> Self {
        Self::from_kind(Kind::Empty)
    }
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            return Self::empty();
        }
        Self::from_kind(Kind::Full { data: Some(b) })
    }
    pub fn streaming(body: Incoming) -> Self {
        Self::from_kind(Kind::Streaming { body })
    }
    fn from_kind(kind: Kind) -> Self {
        RespBody {
            kind,
            pooled: None,
            meter: None,
            guard: None,
            done: false,
        }
    }
    pub fn with_pooled(mut self, p: PooledConn) -> Self {
        self.pooled = Some(p);
        self
    }
    pub fn with_guard(mut self, g: RequestGuard) -> Self {
        self.guard = Some(g);
        self
    }
    pub fn set_meter(&mut self, m: Meter) {
        self.meter = Some(m);
    }
    pub fn meter_mut(&mut self) -> Option<&mut Meter> {
        self.meter.as_mut()
    }
    /// Whether a meter is attached already.
    pub fn has_meter(&self) -> bool {
        self.meter.is_some()
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let frame = ready!(this.kind.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(m) = this.meter.as_mut() {
                    if let Some(d) = f.data_ref() {
                        m.record.response_bytes += d.len() as u64;
                    } else if let Some(t) = f.trailers_ref() {
                        if let Some(s) = grpc_status(t) {
                            m.record.grpc_status = Some(s);
                        }
                    }
                }
                if !this.kind.is_end_stream() {
                    return Poll::Ready(frame);
                }
            }
            Some(Err(_)) => {
                *this.done = true;
                if let Some(m) = this.meter.take() {
                    m.finish(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                }
                if let Some(p) = this.pooled.take() {
                    p.discard();
                }
                this.guard.take();
                return Poll::Ready(frame);
            }
            None => {}
        }
        *this.done = true;
        if let Some(m) = this.meter.take() {
            m.finish(ResponseFlags::NONE);
        }
        if let Some(p) = this.pooled.take() {
            p.release();
        }
        this.guard.take();
        Poll::Ready(frame)
    }
    fn is_end_stream(&self) -> bool {
        self.done || (self.kind.is_end_stream() && self.meter.is_none() && self.pooled.is_none())
    }
    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

/// The `grpc-status` of a header or trailer block.
pub fn grpc_status(h: &http::HeaderMap) -> Option<u8> {
    h.get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u8>().ok())
}
