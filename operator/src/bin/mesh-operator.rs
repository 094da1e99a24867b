//! `mesh-operator`: keeps the cluster equal to every MeshInstall.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mesh_operator::controller::leader::{default_identity, LeaseConfig};
use mesh_operator::controller::metrics::Metrics;
use mesh_operator::controller::{run, ControllerConfig, RunConfig, FIELD_MANAGER};
use tokio::sync::watch;
use tracing::info;

#[derive(Debug, Parser)]
#[command(name = "mesh-operator", version = mesh_operator::VERSION, about = "Keeps the cluster equal to every MeshInstall")]
struct Args {
    /// Kubeconfig file; without it the in-cluster config, then $KUBECONFIG / ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-system")]
    namespace: String,

    /// Reconcile only MeshInstalls in this namespace (all namespaces when not given).
    #[arg(long)]
    watch_namespace: Option<String>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:19090")]
    metrics_addr: SocketAddr,

    /// Take part in leader election so that only one replica reconciles.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,

    /// Field manager of the server-side applies.
    #[arg(long, default_value = FIELD_MANAGER)]
    field_manager: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match operator().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn operator() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod")?,
    };
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    let identity = default_identity();
    let run_config = RunConfig {
        controller: ControllerConfig {
            field_manager: args.field_manager.clone(),
            namespace: args.watch_namespace.clone(),
            instance: Some(identity.clone()),
        },
        leader_election: args
            .leader_election
            .then(|| LeaseConfig::new(args.namespace.clone(), identity)),
        metrics_addr: Some(args.metrics_addr),
    };

    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        shutdown_tx.send_replace(true);
        // A second signal while stopping ends the process at once.
        wait_for_signal().await;
        std::process::exit(130);
    });

    run(client, run_config, Metrics::new(), shutdown)
        .await
        .context("mesh-operator")?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
