//! `mesh-proxy`: the data plane's binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_proxy::iptables::{self, CaptureOptions};

#[derive(Parser)]
#[command(name = "mesh-proxy", version, about = "The meshctl data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the nat-table rules that capture the pod's TCP traffic (the init container's job).
    Iptables(IptablesArgs),
    /// Run the proxy: with a configuration file (reloaded when it changes), or, without one,
    /// following meshd as the injected environment says (MESHD_ADDRESS, POD_NAME, ...).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The configuration (YAML; see docs/proxy.md). Watched: a valid change is put in force.
    /// Without it the configuration comes from meshd (MESHD_ADDRESS must be set).
    #[arg(long, short = 'c')]
    config: Option<std::path::PathBuf>,
    /// Worker threads, each with its own event loop.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Admin endpoints (keep on localhost).
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: std::net::SocketAddr,
    /// Health endpoint (`/healthz/ready`).
    #[arg(long, default_value = "0.0.0.0:15021")]
    health: std::net::SocketAddr,
    /// Prometheus endpoint (`/stats/prometheus`).
    #[arg(long, default_value = "0.0.0.0:15090")]
    metrics: std::net::SocketAddr,
    /// The proxy's metrics merged with the application's (where injection points Prometheus).
    /// Default: 0.0.0.0:15020 when following meshd (the injected sidecar), none with --config.
    #[arg(long)]
    merged_metrics: Option<std::net::SocketAddr>,
    /// Log filter (`info`, `debug`, `mesh_proxy=trace`); default: RUST_LOG, else `info`.
    #[arg(long)]
    log_level: Option<String>,
}

fn run_proxy(args: RunArgs) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let log_level = args
        .log_level
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| anyhow::anyhow!("--log-level {log_level:?}: {e}"))?;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let set_log_level: mesh_proxy::admin::SetLogLevel = std::sync::Arc::new(move |level: &str| {
        let f = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    });
    let source = match args.config {
        Some(path) => mesh_proxy::run::ConfigSource::File(path),
        None if std::env::var_os("MESHD_ADDRESS").is_some() => mesh_proxy::run::ConfigSource::Meshd,
        None => {
            return Err(anyhow::anyhow!(
                "no configuration: pass --config FILE, or set MESHD_ADDRESS (and POD_NAME, POD_NAMESPACE) to follow meshd, as the injected sidecar does"
            ))
        }
    };
    let merged_metrics = args.merged_metrics.or_else(|| {
        matches!(source, mesh_proxy::run::ConfigSource::Meshd)
            .then(|| std::net::SocketAddr::from(([0, 0, 0, 0], 15020)))
    });
    mesh_proxy::run::run(mesh_proxy::run::Options {
        source,
        workers: args.workers,
        admin: args.admin,
        health: args.health,
        metrics: args.metrics,
        merged_metrics,
        log_level,
        set_log_level,
    })
}

#[derive(clap::Args)]
struct IptablesArgs {
    #[command(flatten)]
    options: CaptureOptions,
    /// Print the rules (iptables-restore input) instead of loading them.
    #[arg(long)]
    dry_run: bool,
    /// Remove the rules an earlier run wrote, and nothing else.
    #[arg(long, conflicts_with = "dry_run")]
    cleanup: bool,
}

fn run_iptables(args: IptablesArgs) -> anyhow::Result<()> {
    if args.cleanup {
        let removed = iptables::cleanup()?;
        eprintln!(
            "{}",
            if removed {
                "removed the capture rules"
            } else {
                "no capture rules to remove"
            }
        );
        return Ok(());
    }
    let plan = args.options.plan()?;
    if args.dry_run {
        print!("{}", iptables::restore_script(&plan));
        return Ok(());
    }
    let outcome = iptables::apply(&plan)?;
    eprintln!(
        "{} {} nat rules: outbound TCP → {}, inbound TCP → {}, uid {} exempt",
        if outcome.replaced {
            "replaced the capture rules with"
        } else {
            "loaded"
        },
        outcome.rules,
        plan.outbound_port,
        plan.inbound_port,
        plan.proxy_uid
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Iptables(args) => run_iptables(args),
        Command::Run(args) => run_proxy(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
