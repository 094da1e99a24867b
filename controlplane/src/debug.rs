//! Plain HTTP for people and probes: `/ready` (the readiness probe), `/metrics`, and `/` — the
//! page `meshctl dashboard controlz` opens — with what this meshd is serving.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::debug;

use crate::discovery::hub::Hub;
use crate::discovery::watch::Store;
use crate::inject_config::Current;
use crate::metrics::Metrics;

/// What must hold before meshd reports ready.
#[derive(Default)]
pub struct Readiness {
    pub webhook_serving: AtomicBool,
    pub inject_bundle: Arc<AtomicBool>,
    pub validate_bundle: Arc<AtomicBool>,
    /// The first configuration has been built from a full listing of every kind.
    pub discovery_synced: Arc<AtomicBool>,
    /// Set by the readiness check: the watches that are failing (the API server is away).
    pub store: Option<Store>,
}

impl Readiness {
    /// Empty when ready, else what is still missing.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.webhook_serving.load(Ordering::Relaxed) {
            missing.push("the webhook server is not listening yet");
        }
        if !self.inject_bundle.load(Ordering::Relaxed) {
            missing.push("the injection webhook configuration does not hold the CA bundle yet");
        }
        if !self.validate_bundle.load(Ordering::Relaxed) {
            missing.push("the validation webhook configuration does not hold the CA bundle yet");
        }
        if !self.discovery_synced.load(Ordering::Relaxed) {
            missing.push("the mesh has not been listed from the API server yet");
        }
        if self
            .store
            .as_ref()
            .is_some_and(|s| !s.failing_kinds().is_empty())
        {
            missing.push(
                "the API server cannot be watched; proxies keep the last known configuration",
            );
        }
        missing
    }
}

#[derive(Clone)]
pub struct State {
    pub readiness: Arc<Readiness>,
    pub metrics: Metrics,
    pub inject: Current,
    /// Facts shown on the page: version, revision, namespace, webhook names.
    pub about: serde_json::Value,
    pub hub: Arc<Hub>,
}

pub async fn serve(listener: TcpListener, state: State) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&req, &state)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "debug connection");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".to_owned(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/ready" => {
            let missing = state.readiness.missing();
            if missing.is_empty() {
                reply(StatusCode::OK, "ready\n".to_owned(), "text/plain")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", missing.join("; ")),
                    "text/plain",
                )
            }
        }
        "/metrics" => reply(
            StatusCode::OK,
            state.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/debug/injection" => {
            let config = state.inject.get();
            let body = json!({
                "values": config.values,
                "policy": config.policy,
                "proxyConfig": config.proxy_config,
            });
            reply(
                StatusCode::OK,
                serde_json::to_string_pretty(&body).unwrap_or_default(),
                "application/json",
            )
        }
        "/debug/syncz" => {
            let proxies = state.hub.connected();
            let body = json!({
                "instance": state.hub.instance,
                "version": env!("CARGO_PKG_VERSION"),
                "generation": state.hub.current().number,
                "proxies": proxies.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            });
            reply(
                StatusCode::OK,
                serde_json::to_string_pretty(&body).unwrap_or_default(),
                "application/json",
            )
        }
        "/debug/config_problems" => {
            let generation = state.hub.current();
            let problems: Vec<_> = generation
                .model
                .problems
                .iter()
                .map(|p| {
                    json!({"kind": format!("{:?}", p.kind), "namespace": p.namespace, "name": p.name,
                           "skipped": p.skipped, "message": p.message})
                })
                .collect();
            reply(
                StatusCode::OK,
                serde_json::to_string_pretty(&problems).unwrap_or_default(),
                "application/json",
            )
        }
        "/" => reply(StatusCode::OK, page(state), "text/html; charset=utf-8"),
        _ => reply(
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
    }
}

fn page(state: &State) -> String {
    let missing = state.readiness.missing();
    let status = if missing.is_empty() {
        "ready".to_owned()
    } else {
        format!("not ready: {}", missing.join("; "))
    };
    let about = serde_json::to_string_pretty(&state.about).unwrap_or_default();
    format!(
        "<!doctype html><title>meshd</title><h1>meshd</h1><p>{}</p><pre>{}</pre>\
         <ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/debug/injection\">/debug/injection</a> (the injection settings in force)</li><li><a href=\"/debug/syncz\">/debug/syncz</a> (connected proxies and their sync state)</li><li><a href=\"/debug/config_problems\">/debug/config_problems</a></li><li><a href=\"/ready\">/ready</a></li></ul>",
        escape(&status),
        escape(&about)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn reply(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
