//! `meshctl version`: this client's version and, when a cluster answers, the versions of the
//! control plane (meshd replicas) and data plane (connected proxies) with their counts.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::commands::dashboard::locate;
use crate::commands::proxy_status;
use crate::kube_client::{self, ClusterArgs};
use crate::output::{self, Format};

/// How long the cluster may take before only the client's version is printed.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print only the client's version number.
    #[arg(long)]
    short: bool,
    /// Print as yaml or json instead of sentences.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
    /// Also ask the cluster for the control- and data-plane versions.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    remote: bool,
    /// Where meshd runs (default: the mesh's namespace, from its MeshInstall).
    #[arg(short = 'i', long = "mesh-namespace", alias = "istioNamespace")]
    mesh_namespace: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Versions found in the cluster: meshd replicas and connected proxies, counted by version.
struct Remote {
    control_plane: BTreeMap<String, usize>,
    data_plane: BTreeMap<String, usize>,
}

async fn remote(args: &VersionArgs) -> anyhow::Result<Remote> {
    let conn = kube_client::connect(&args.cluster).await?;
    let namespaces = match &args.mesh_namespace {
        Some(ns) => vec![ns.clone()],
        None => locate::mesh_namespaces(&conn.client).await,
    };
    let reports = proxy_status::reports(&conn.client, &namespaces).await?;
    let mut control_plane = BTreeMap::new();
    let mut data_plane = BTreeMap::new();
    for report in &reports {
        let version = report.body["version"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        *control_plane.entry(version).or_default() += 1;
        for proxy in report.body["proxies"].as_array().into_iter().flatten() {
            let version = proxy["proxyVersion"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            *data_plane.entry(version).or_default() += 1;
        }
    }
    Ok(Remote {
        control_plane,
        data_plane,
    })
}

fn counted(versions: &BTreeMap<String, usize>, what: &str) -> String {
    if versions.is_empty() {
        return format!("none (no {what})");
    }
    versions
        .iter()
        .map(|(v, n)| format!("{v} ({n} {what})"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if args.short {
        println!("{version}");
        return Ok(());
    }
    let found = if args.remote {
        let runtime = kube_client::runtime()?;
        match runtime.block_on(async { tokio::time::timeout(REMOTE_TIMEOUT, remote(&args)).await })
        {
            Ok(Ok(found)) => Some(found),
            Ok(Err(e)) => {
                eprintln!("no control plane version: {e:#}");
                None
            }
            Err(_) => {
                eprintln!(
                    "no control plane version: the cluster did not answer within {}s",
                    REMOTE_TIMEOUT.as_secs()
                );
                None
            }
        }
    } else {
        None
    };
    match args.output {
        None => {
            println!(
                "client version: {version} ({}-{})",
                std::env::consts::OS,
                std::env::consts::ARCH
            );
            if let Some(found) = &found {
                println!(
                    "control plane version: {}",
                    counted(&found.control_plane, "meshd")
                );
                println!(
                    "data plane version: {}",
                    counted(&found.data_plane, "proxies")
                );
            }
        }
        Some(format) => {
            let mut info = json!({"clientVersion": {"version": version, "os": std::env::consts::OS, "arch": std::env::consts::ARCH}});
            if let Some(found) = &found {
                let list = |m: &BTreeMap<String, usize>| -> Value {
                    m.iter()
                        .map(|(v, n)| json!({"version": v, "count": n}))
                        .collect()
                };
                info["meshVersion"] = list(&found.control_plane);
                info["dataPlaneVersion"] = list(&found.data_plane);
            }
            print!("{}", output::render(&info, format)?);
        }
    }
    Ok(())
}
