//! `meshd serve`: loads the CA and the injection settings, then serves the webhooks, keeps their
//! configurations' CA bundle, and answers readiness, until stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use mesh_xds::ca::istio_certificate_service_server::IstioCertificateServiceServer;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info};

use crate::ca::{self, rotation, CaHandle};
use crate::debug::{self, Readiness};
use crate::discovery;
use crate::discovery::hub::Hub;
use crate::discovery::model::MeshSettings;
use crate::discovery::problems::Reporter;
use crate::discovery::server::DiscoveryService;
use crate::inject_config::{self, Files};
use crate::metrics::Metrics;
use crate::token_review::TokenReviewer;
use crate::webhook::server::{self, FailurePolicies};
use crate::webhook_configs::{self, Hook};
use crate::workload_ca::CertificateService;
use crate::{grpc, serving_cert, trust_bundle};
use mesh_proxy_config::{AccessLog, AccessLogEncoding, AccessLogMode, MtlsMode, Tracing, Zipkin};

/// How often the mounted injection settings are re-read.
const SETTINGS_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub namespace: String,
    pub revision: String,
    /// meshd's Service, whose DNS names the serving certificate carries.
    pub service: String,
    pub trust_domain: String,
    pub injector_webhook: String,
    pub validator_webhook: String,
    pub inject_dir: PathBuf,
    pub mesh_config: PathBuf,
    pub webhook_addr: SocketAddr,
    pub debug_addr: SocketAddr,
    pub monitoring_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub grpc_tls_addr: SocketAddr,
    pub ca_refresh: Duration,
    /// This meshd's name in proxy-status (its pod name).
    pub instance: String,
    pub cluster_domain: String,
    pub root_rotation: rotation::Policy,
}

/// What discovery needs of the mesh config, read again for every build: a changed ConfigMap
/// takes effect with the next push. A file that is missing or does not parse gives defaults.
fn mesh_settings(path: &std::path::Path, domain: &str, default_root: &str) -> MeshSettings {
    let mesh: serde_json::Value = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml_ng::from_str(&text).ok())
        .unwrap_or_default();
    let text = |key: &str| mesh[key].as_str().filter(|v| !v.is_empty());
    let mut settings = MeshSettings::new(domain, text("rootNamespace").unwrap_or(default_root));
    settings.registry_only = mesh["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY";
    if let Some(td) = text("trustDomain") {
        settings.trust_domain = td.to_owned();
    }
    if text("defaultMtlsMode") == Some("STRICT") {
        settings.default_mtls = MtlsMode::Strict;
    }
    // Istio's own defaults where a field is absent: tracing on at 1%, no access log.
    if mesh["enableTracing"].as_bool() != Some(false) {
        settings.tracing = Some(Tracing {
            sampling: mesh["traceSampling"]
                .as_f64()
                .or_else(|| mesh["defaultConfig"]["tracing"]["sampling"].as_f64()),
            zipkin: text("tracingCollector")
                .or_else(|| mesh["defaultConfig"]["tracing"]["zipkin"]["address"].as_str())
                .map(|address| Zipkin {
                    address: address.to_owned(),
                }),
            ..Tracing::default()
        });
    }
    if text("accessLogFile").is_some() {
        settings.access_log = Some(AccessLog {
            mode: AccessLogMode::On,
            encoding: if text("accessLogEncoding") == Some("JSON") {
                AccessLogEncoding::Json
            } else {
                AccessLogEncoding::Text
            },
        });
    }
    settings
}

/// The plain TCP connections accepted on `listener`, as tonic takes them.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for {what}; is another meshd running? pass another address"
        )
    })
}

pub async fn run(client: Client, settings: Settings) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let inject = inject_config::load_and_follow(
        Files {
            inject_dir: settings.inject_dir.clone(),
            mesh_config: settings.mesh_config.clone(),
        },
        SETTINGS_POLL,
    )
    .context("loading the injection settings")?;

    let ca = ca::load_or_create(&client, &settings.namespace, &settings.trust_domain)
        .await
        .with_context(|| format!("loading the mesh CA in namespace {}", settings.namespace))?;
    let names = serving_cert::dns_names(&settings.service, &settings.namespace);
    let resolver = serving_cert::start(&ca, &names).context("issuing meshd's certificate")?;
    let webhook_tls = serving_cert::server_config(resolver.clone(), &[b"http/1.1"])?;
    let grpc_tls = serving_cert::server_config(resolver.clone(), &[b"h2"])?;
    let ca = CaHandle::new(ca);
    tokio::spawn(ca::secret::maintain(
        client.clone(),
        settings.namespace.clone(),
        settings.trust_domain.clone(),
        settings.root_rotation,
        ca.clone(),
        settings.ca_refresh,
    ));
    tokio::spawn(serving_cert::renew(ca.clone(), names.clone(), resolver));

    let store = discovery::watch::start(client.clone());
    let watched = store.clone();
    let watch_metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            watch_metrics.watch_failing(watched.failing_kinds().len());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let hub = Hub::new(settings.instance.clone());
    let readiness = Arc::new(Readiness {
        store: Some(store.clone()),
        ..Readiness::default()
    });
    let reporter = Reporter::new(Some(client.clone()));
    let mesh_file = settings.mesh_config.clone();
    let domain = settings.cluster_domain.clone();
    let default_root = settings.namespace.clone();
    let problem_metrics = metrics.clone();
    tokio::spawn(discovery::watch::push_loop(
        store,
        hub.clone(),
        move || mesh_settings(&mesh_file, &domain, &default_root),
        move |model| {
            problem_metrics.config_problems(model.problems.len());
            reporter.report(&model.problems);
        },
        readiness.discovery_synced.clone(),
    ));
    let policies = Arc::new(FailurePolicies::default());
    let webhook_listener = bind(settings.webhook_addr, "the webhooks").await?;
    let debug_listener = bind(settings.debug_addr, "the debug page").await?;
    let monitoring_listener = bind(settings.monitoring_addr, "metrics").await?;
    let grpc_listener = bind(settings.grpc_addr, "gRPC").await?;
    let grpc_tls_listener = bind(settings.grpc_tls_addr, "gRPC over TLS").await?;

    let certificates = CertificateService {
        ca: ca.clone(),
        reviewer: Arc::new(TokenReviewer::new(client.clone())),
        trust_domain: settings.trust_domain.clone(),
        metrics: metrics.clone(),
    };
    let discovery = DiscoveryService {
        hub: hub.clone(),
        metrics: metrics.clone(),
        reviewer: Some(Arc::new(TokenReviewer::new(client.clone()))),
    };
    let grpc = tonic::service::Routes::new(IstioCertificateServiceServer::new(certificates))
        .add_service(discovery.server());
    let plain_routes = grpc.clone();
    tokio::spawn(async move {
        let incoming = tokio_stream_of(grpc_listener);
        if let Err(e) = tonic::transport::Server::builder()
            .add_routes(plain_routes)
            .serve_with_incoming(incoming)
            .await
        {
            error!(error = %e, "the plain-text gRPC server stopped");
        }
    });
    tokio::spawn(async move {
        let incoming = grpc::tls_incoming(grpc_tls_listener, grpc_tls);
        if let Err(e) = tonic::transport::Server::builder()
            .add_routes(grpc)
            .serve_with_incoming(incoming)
            .await
        {
            error!(error = %e, "the gRPC server over TLS stopped");
        }
    });
    tokio::spawn(trust_bundle::publish(client.clone(), ca.clone()));

    for (hook, name, synced) in [
        (
            Hook::Inject,
            &settings.injector_webhook,
            &readiness.inject_bundle,
        ),
        (
            Hook::Validate,
            &settings.validator_webhook,
            &readiness.validate_bundle,
        ),
    ] {
        tokio::spawn(webhook_configs::keep(
            client.clone(),
            hook,
            name.clone(),
            ca.clone(),
            policies.clone(),
            synced.clone(),
        ));
    }

    let debug_state = debug::State {
        hub: hub.clone(),
        readiness: readiness.clone(),
        metrics: metrics.clone(),
        inject: inject.clone(),
        about: json!({
            "version": env!("CARGO_PKG_VERSION"),
            "namespace": settings.namespace,
            "revision": settings.revision,
            "service": settings.service,
            "certificateNames": names,
            "webhooks": {"injection": settings.injector_webhook, "validation": settings.validator_webhook},
        }),
    };
    tokio::spawn(debug::serve(debug_listener, debug_state.clone()));
    tokio::spawn(debug::serve(monitoring_listener, debug_state));
    info!(addr = %settings.webhook_addr, names = ?names, "serving /inject and /validate");
    readiness.webhook_serving.store(true, Ordering::Relaxed);
    server::serve(
        webhook_listener,
        webhook_tls,
        server::State {
            inject,
            policies,
            metrics,
        },
    )
    .await;
    Ok(())
}
