//! The HTTPS server the API server calls: `POST /inject`, `POST /validate`, `GET /healthz`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::admission::{self, DecodeError};
use super::{inject, validate};
use crate::inject_config::Current;
use crate::metrics::Metrics;

/// An AdmissionReview larger than this is refused: the API server caps objects at 3 MiB, and
/// a review carries at most the object and its old version.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What each webhook does when a review cannot be decoded, as its configuration's
/// `failurePolicy` says: `Ignore` lets the object through (with a warning), `Fail` refuses it.
/// meshd learns the policies from the live webhook configurations.
#[derive(Debug)]
pub struct FailurePolicies {
    pub inject_ignores: AtomicBool,
    pub validate_ignores: AtomicBool,
}

impl Default for FailurePolicies {
    /// As the renderer writes them: injection fails closed, validation open.
    fn default() -> Self {
        FailurePolicies {
            inject_ignores: AtomicBool::new(false),
            validate_ignores: AtomicBool::new(true),
        }
    }
}

#[derive(Clone)]
pub struct State {
    pub inject: Current,
    pub policies: Arc<FailurePolicies>,
    pub metrics: Metrics,
}

/// Serves TLS connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, state: State) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "accept");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "connection");
            }
        });
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::POST, "/inject" | "/validate") => {}
        (_, "/inject" | "/validate") => return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n"),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the review (at most {MAX_BODY} bytes): {e}\n"),
            )
        }
    };
    let is_inject = path == "/inject";
    let response = match admission::decode(&body) {
        Ok(request) if is_inject => {
            let response = inject::review(&request, &state.inject.get());
            state.metrics.injection(&response);
            response
        }
        Ok(request) => {
            let response = validate::review(&request);
            state.metrics.validation(&response);
            response
        }
        Err(DecodeError { uid: None, reason }) => {
            // Without a uid there is nothing to answer: the API server applies the webhook's
            // failure policy to the error.
            warn!(%path, %reason, "undecodable admission review");
            return text(StatusCode::BAD_REQUEST, &format!("{reason}\n"));
        }
        Err(DecodeError {
            uid: Some(uid),
            reason,
        }) => {
            warn!(%path, %reason, "undecodable admission review");
            let ignores = if is_inject {
                &state.policies.inject_ignores
            } else {
                &state.policies.validate_ignores
            };
            let what = if is_inject { "injection" } else { "validation" };
            if ignores.load(Ordering::Relaxed) {
                let mut response = admission::Response::allow(&uid);
                response
                    .warnings
                    .push(format!("meshd skipped {what}: {reason}"));
                response
            } else {
                admission::Response::deny(
                    &uid,
                    format!("meshd cannot read the request for {what}: {reason}"),
                )
            }
        }
    };
    let mut reply = Response::new(Full::new(Bytes::from(response.encode())));
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}
