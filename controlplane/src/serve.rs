//! `meshd serve`: loads the CA and the injection settings, then serves the webhooks, keeps their
//! configurations' CA bundle, and answers readiness, until stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::info;

use crate::debug::{self, Readiness};
use crate::inject_config::{self, Files};
use crate::metrics::Metrics;
use crate::webhook::server::{self, FailurePolicies};
use crate::webhook_configs::{self, Hook};
use crate::{ca, serving_cert};

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
    let ca = Arc::new(ca);
    let names = serving_cert::dns_names(&settings.service, &settings.namespace);
    let (resolver, tls) =
        serving_cert::start(&ca, &names).context("issuing the webhook certificate")?;
    tokio::spawn(serving_cert::renew(ca.clone(), names.clone(), resolver));

    let readiness = Arc::new(Readiness::default());
    let policies = Arc::new(FailurePolicies::default());
    let webhook_listener = bind(settings.webhook_addr, "the webhooks").await?;
    let debug_listener = bind(settings.debug_addr, "the debug page").await?;
    let monitoring_listener = bind(settings.monitoring_addr, "metrics").await?;

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
            ca.root_pem().to_owned(),
            policies.clone(),
            synced.clone(),
        ));
    }

    let debug_state = debug::State {
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
        tls,
        server::State {
            inject,
            policies,
            metrics,
        },
    )
    .await;
    Ok(())
}
