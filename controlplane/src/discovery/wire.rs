//! `AggregatedDiscovery/DeltaStream` on the wire, served without tonic's generated server so
//! that a response costs a proxy no copy of its resources.
//!
//! A [`DeltaResponse`] is encoded in two parts: the resources and removals of a delta, encoded
//! once in the [`Generation`](super::generation::Generation) and shared by every proxy the
//! delta goes to, and a few bytes of its own (type, generation, nonce). Protobuf decodes the
//! concatenation of two encodings of a message as their merge, so the proxy reads one ordinary
//! `DeltaResponse`. Each response leaves as two HTTP/2 data chunks, the shared one by
//! reference: nothing is copied per proxy, and no stream keeps an encoding buffer the size of
//! its largest response (tonic's encoder would, per stream, for the stream's life).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use http_body::Frame;
use mesh_xds::discovery::{DeltaRequest, DeltaResponse, Resource};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codec::{BufferSettings, Streaming};
use tonic::server::NamedService;
use tonic::Status;

use super::server::DiscoveryService;

pub const SERVICE: &str = "mesh.discovery.v1.AggregatedDiscovery";
const DELTA_STREAM: &str = "/mesh.discovery.v1.AggregatedDiscovery/DeltaStream";
/// gRPC's own limit on what a client may send us (tonic's default).
const MAX_REQUEST: usize = 4 << 20;
/// What a stream's request decoder starts with (it grows for a larger request): a proxy's
/// requests are ACKs of a few dozen bytes, except the first on a reconnect; tonic's default of
/// 8 KiB per stream is 16 MB for 2,000 proxies.
const REQUEST_BUFFER: usize = 512;

/// The `resources` and `removed_resources` of a response, encoded.
pub fn encode_changes(resources: Vec<Resource>, removed: Vec<String>) -> Bytes {
    Bytes::from(
        DeltaResponse {
            resources,
            removed_resources: removed,
            ..DeltaResponse::default()
        }
        .encode_to_vec(),
    )
}

/// One response, ready to send: the gRPC frame header with this proxy's fields, then the
/// shared changes.
#[derive(Debug, Clone)]
pub struct Encoded {
    head: Bytes,
    changes: Bytes,
}

impl Encoded {
    pub fn response(
        type_url: &str,
        system_version: String,
        nonce: String,
        complete: bool,
        changes: Bytes,
    ) -> Encoded {
        let own = DeltaResponse {
            type_url: type_url.to_owned(),
            system_version,
            nonce,
            complete,
            ..DeltaResponse::default()
        };
        let length = own.encoded_len() + changes.len();
        let mut head = BytesMut::with_capacity(5 + own.encoded_len());
        // Uncompressed, then the message length (big-endian), as gRPC frames messages.
        head.put_u8(0);
        head.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
        head.extend_from_slice(&own.encode_to_vec());
        Encoded {
            head: head.freeze(),
            changes,
        }
    }

    /// The message as one buffer (without the frame header), as a client decodes it.
    pub fn message(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.head.len() + self.changes.len());
        all.extend_from_slice(&self.head[5..]);
        all.extend_from_slice(&self.changes);
        all.freeze()
    }
}

/// The response body of one stream: each [`Encoded`] the stream's task sends, then the OK
/// status once it is done.
struct Responses {
    rx: mpsc::Receiver<Box<Encoded>>,
    next: Option<Bytes>,
    done: bool,
}

impl http_body::Body for Responses {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(changes) = self.next.take() {
            return Poll::Ready(Some(Ok(Frame::data(changes))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(encoded)) => {
                if !encoded.changes.is_empty() {
                    self.next = Some(encoded.changes);
                }
                Poll::Ready(Some(Ok(Frame::data(encoded.head))))
            }
            Poll::Ready(None) => {
                self.done = true;
                let mut trailers = http::HeaderMap::new();
                trailers.insert(Status::GRPC_STATUS, http::HeaderValue::from_static("0"));
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The gRPC service, for `tonic::transport::Server::add_routes`/`add_service`.
#[derive(Clone)]
pub struct DeltaStreamServer {
    service: Arc<DiscoveryService>,
}

impl DeltaStreamServer {
    pub fn new(service: DiscoveryService) -> DeltaStreamServer {
        DeltaStreamServer {
            service: Arc::new(service),
        }
    }
}

impl NamedService for DeltaStreamServer {
    const NAME: &'static str = SERVICE;
}

fn grpc_response(body: Responses) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

impl tower_service::Service<http::Request<tonic::body::Body>> for DeltaStreamServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.service.clone();
        Box::pin(async move {
            if request.uri().path() != DELTA_STREAM {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let (parts, body) = request.into_parts();
            let decoder = tonic_prost::ProstDecoder::<DeltaRequest>::new(BufferSettings::new(
                REQUEST_BUFFER,
                REQUEST_BUFFER,
            ));
            let inbound = Streaming::new_request(decoder, body, None, Some(MAX_REQUEST));
            let request = tonic::Request::from_http(http::Request::from_parts(parts, inbound));
            Ok(match service.open(request).await {
                Ok(rx) => grpc_response(Responses {
                    rx,
                    next: None,
                    done: false,
                }),
                Err(status) => status.into_http(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_parts_decode_as_one_response() {
        let changes = encode_changes(
            vec![Resource {
                name: "shop/reviews".into(),
                version: "v7".into(),
                body: Bytes::from_static(b"{}"),
            }],
            vec!["shop/ratings".into()],
        );
        let encoded = Encoded::response(
            "mesh.v1/VirtualService",
            "12".into(),
            "3-4".into(),
            true,
            changes,
        );
        let length = u32::from_be_bytes([
            encoded.head[1],
            encoded.head[2],
            encoded.head[3],
            encoded.head[4],
        ]);
        let message = encoded.message();
        assert_eq!(encoded.head[0], 0, "not compressed");
        assert_eq!(length as usize, message.len());
        let decoded = DeltaResponse::decode(message).expect("decodes");
        assert_eq!(decoded.type_url, "mesh.v1/VirtualService");
        assert_eq!(decoded.system_version, "12");
        assert_eq!(decoded.nonce, "3-4");
        assert!(decoded.complete);
        assert_eq!(decoded.resources.len(), 1);
        assert_eq!(decoded.resources[0].name, "shop/reviews");
        assert_eq!(decoded.resources[0].version, "v7");
        assert_eq!(&decoded.resources[0].body[..], b"{}");
        assert_eq!(decoded.removed_resources, ["shop/ratings"]);
    }
}
