//! `meshctl`: the command line of the mesh.

mod commands;
mod config_files;
mod input_args;
mod kube_client;
mod output;
mod pod_http;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshctl",
    version,
    about = "Install, configure and inspect the meshctl service mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show, dump and compare install profiles.
    #[command(subcommand)]
    Profile(commands::profile::ProfileCommand),
    /// Render the Kubernetes objects of an installation without a cluster.
    #[command(subcommand)]
    Manifest(commands::manifest::ManifestCommand),
    /// Install the mesh into the cluster: the MeshInstall CRD, the operator and the MeshInstall.
    Install(commands::install::InstallArgs),
    /// Remove an installation from the cluster.
    Uninstall(commands::uninstall::UninstallArgs),
    /// Check that every object of an installation is in the cluster and ready.
    VerifyInstall(commands::verify::VerifyArgs),
    /// Add the sidecar to the workloads of a manifest (offline by default).
    KubeInject(commands::kube_inject::KubeInjectArgs),
    /// Find what is wrong with a mesh configuration: files, the cluster, or files over the
    /// cluster (exit 0 clean, 79 findings, 65 unparsable input, 64 usage error).
    Analyze(commands::analyze::AnalyzeArgs),
    /// Open a mesh UI (Kiali, Grafana, Prometheus, Jaeger, Zipkin, a sidecar's admin page)
    /// through a port-forward via the API server.
    #[command(subcommand)]
    Dashboard(commands::dashboard::DashboardCommand),
    /// What one proxy holds: listeners, routes, clusters, endpoints, certificates.
    ProxyConfig(commands::proxy_config::ProxyConfigArgs),
    /// Every proxy connected to meshd and whether it holds the configuration meshd wants it to.
    ProxyStatus(commands::proxy_status::ProxyStatusArgs),
    /// Print the version of meshctl.
    Version(commands::version::VersionArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `analyze` keeps istioctl's exit codes: 64 for a usage error.
        Err(e) if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("analyze") => {
            let _ = e.print();
            return ExitCode::from(commands::analyze::EXIT_USAGE);
        }
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Analyze(args) => return commands::analyze::run(args),
        Command::Profile(cmd) => commands::profile::run(cmd),
        Command::Manifest(cmd) => commands::manifest::run(cmd),
        Command::Install(args) => commands::install::run(args),
        Command::Uninstall(args) => commands::uninstall::run(args),
        Command::VerifyInstall(args) => commands::verify::run(args),
        Command::KubeInject(args) => commands::kube_inject::run(args),
        Command::Dashboard(cmd) => commands::dashboard::run(cmd),
        Command::ProxyConfig(args) => commands::proxy_config::run(args),
        Command::ProxyStatus(args) => commands::proxy_status::run(args),
        Command::Version(args) => commands::version::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// mimalloc: analysing a large mesh allocates millions of small JSON maps, and glibc's malloc
// spends a fifth of the time in allocation and freeing (bench/analyze.py).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
