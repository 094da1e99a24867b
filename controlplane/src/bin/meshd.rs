//! `meshd`: the mesh's control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;

use mesh_controlplane::ca::rotation::Policy;
use mesh_controlplane::duration_arg;
use mesh_controlplane::serve::{self, Settings};

#[derive(Parser)]
#[command(name = "meshd", version, about = "The meshctl control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the CA and the injection and validation webhooks.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Kubeconfig to use instead of the pod's service account.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The namespace meshd runs in, where the CA Secret is kept.
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-system")]
    namespace: String,
    #[arg(long, env = "REVISION", default_value = "default")]
    revision: String,
    /// meshd's Service: the webhook certificate is issued for its DNS names.
    #[arg(long, default_value = "meshd")]
    service: String,
    #[arg(long, env = "TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The MutatingWebhookConfiguration whose caBundle meshd keeps
    /// (default: meshd-sidecar-injector-<namespace>).
    #[arg(long)]
    injector_webhook: Option<String>,
    /// The ValidatingWebhookConfiguration whose caBundle meshd keeps
    /// (default: meshd-validator-<namespace>).
    #[arg(long)]
    validator_webhook: Option<String>,
    /// The injector ConfigMap's directory (files `values` and `config`).
    #[arg(long, default_value = "/etc/mesh/inject")]
    inject_config: PathBuf,
    /// The mesh config file.
    #[arg(long, default_value = "/etc/mesh/config/mesh")]
    mesh_config: PathBuf,
    #[arg(long, default_value = "0.0.0.0:15017")]
    webhook_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:8080")]
    debug_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:15014")]
    monitoring_addr: SocketAddr,
    /// gRPC in plain text (certificates, configuration), for trusted networks and tools.
    #[arg(long, default_value = "0.0.0.0:15010")]
    grpc_addr: SocketAddr,
    /// gRPC over TLS with meshd's certificate: what the proxies use.
    #[arg(long, default_value = "0.0.0.0:15012")]
    grpc_tls_addr: SocketAddr,
    /// This meshd's name in `proxy-status`.
    #[arg(long, env = "POD_NAME", default_value = "meshd")]
    pod_name: String,
    /// The cluster's DNS domain (service hosts are `<name>.<ns>.svc.<domain>`).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How often the CA Secret is re-read (and a due root rotation made).
    #[arg(long, default_value = "60s", value_parser = duration_arg::parse)]
    ca_refresh: Duration,
    /// Rotate meshd's own root once it has less than this left.
    #[arg(long, default_value = "365d", value_parser = duration_arg::parse)]
    root_rotation_grace: Duration,
    /// How long a rotated-out root stays trusted.
    #[arg(long, default_value = "2d", value_parser = duration_arg::parse)]
    root_rotation_overlap: Duration,
}

fn main() -> std::process::ExitCode {
    mesh_controlplane::allocator::tune();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve_command(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
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
    Client::try_from(config).context("building the Kubernetes client")
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let namespace = args.namespace;
    let settings = Settings {
        injector_webhook: args
            .injector_webhook
            .unwrap_or_else(|| format!("meshd-sidecar-injector-{namespace}")),
        validator_webhook: args
            .validator_webhook
            .unwrap_or_else(|| format!("meshd-validator-{namespace}")),
        namespace,
        revision: args.revision,
        service: args.service,
        trust_domain: args.trust_domain,
        inject_dir: args.inject_config,
        mesh_config: args.mesh_config,
        webhook_addr: args.webhook_addr,
        debug_addr: args.debug_addr,
        monitoring_addr: args.monitoring_addr,
        grpc_addr: args.grpc_addr,
        grpc_tls_addr: args.grpc_tls_addr,
        ca_refresh: args.ca_refresh,
        instance: args.pod_name,
        cluster_domain: args.cluster_domain,
        root_rotation: Policy {
            grace: args.root_rotation_grace,
            overlap: args.root_rotation_overlap,
        },
    };
    tokio::select! {
        result = serve::run(client, settings) => result,
        _ = stop_signal() => Ok(()),
    }
}

/// SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn stop_signal() {
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
