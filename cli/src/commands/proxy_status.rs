//! `meshctl proxy-status [POD[.NS]]`: every proxy connected to the mesh's meshd replicas and,
//! per kind of configuration, whether it holds what meshd wants it to (SYNCED), is behind or
//! refused it (STALE), or has been sent nothing yet (NOT SENT).

use std::time::SystemTime;

use anyhow::anyhow;
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::Value;

use crate::commands::dashboard::locate;
use crate::kube_client::{self, root, ClusterArgs};
use crate::pod_http;

/// meshd's debug port (`/debug/syncz`).
const MESHD_DEBUG_PORT: u16 = 8080;

/// The configuration types, as the columns name them.
const COLUMNS: &[(&str, &str)] = &[
    ("SETTINGS", "mesh.v1/Proxy"),
    ("SERVICES", "mesh.v1/Service"),
    ("ROUTES", "mesh.v1/VirtualService"),
    ("POLICIES", "mesh.v1/DestinationRule"),
];

#[derive(Args, Debug)]
pub struct ProxyStatusArgs {
    /// One proxy, as POD or POD.NAMESPACE: show its detail.
    pod: Option<String>,
    /// Namespace of the pod when POD has none.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Where meshd runs (default: the mesh's namespace, from its MeshInstall).
    #[arg(short = 'i', long = "mesh-namespace", alias = "istioNamespace")]
    mesh_namespace: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: ProxyStatusArgs) -> anyhow::Result<()> {
    kube_client::runtime()?.block_on(status(args))
}

/// One meshd's report.
pub struct Report {
    pub meshd: String,
    pub body: Value,
}

fn age(acked_at: &Value) -> String {
    let Some(at) = acked_at.as_f64() else {
        return String::new();
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let secs = (now - at).max(0.0) as u64;
    let shown = match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    };
    format!(" ({shown})")
}

fn cell(types: &Value, type_url: &str) -> String {
    let t = &types[type_url];
    match t["state"].as_str() {
        None => "NOT SENT".to_owned(),
        Some(state) if !t["rejected"].is_null() => format!("{state} (NACK)"),
        Some("SYNCED") => format!("SYNCED{}", age(&t["ackedAt"])),
        Some(state) => state.to_owned(),
    }
}

/// The `/debug/syncz` of every ready meshd pod, in the first of `namespaces` that has one.
pub async fn reports(client: &kube::Client, namespaces: &[String]) -> anyhow::Result<Vec<Report>> {
    let mut out = Vec::new();
    let mut looked = Vec::new();
    for ns in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels("app=meshd"))
            .await
            .map_err(|e| anyhow!("cannot list meshd pods in {ns}: {}", root(&e)))?;
        looked.push(ns.clone());
        for pod in list.items.iter().filter(|p| locate::is_ready(p)) {
            let name = pod.name_any();
            let (code, body) =
                pod_http::get(client, ns, &name, MESHD_DEBUG_PORT, "/debug/syncz").await?;
            if code != 200 {
                return Err(anyhow!(
                    "meshd {ns}/{name} answered {code} to /debug/syncz: {}",
                    body.trim()
                ));
            }
            let body: Value = serde_json::from_str(&body)
                .map_err(|e| anyhow!("meshd {ns}/{name} sent no JSON status: {e}"))?;
            out.push(Report {
                meshd: format!("{name}.{ns}"),
                body,
            });
        }
        if !out.is_empty() {
            break;
        }
    }
    if out.is_empty() {
        return Err(anyhow!(
            "no ready meshd pod (label app=meshd) in {}: is the mesh installed (meshctl install) and its control plane ready (meshctl verify-install)? Pass -i NAMESPACE if it runs elsewhere",
            looked.join(", ")
        ));
    }
    Ok(out)
}

async fn status(args: ProxyStatusArgs) -> anyhow::Result<()> {
    let conn = kube_client::connect(&args.cluster).await?;
    let client = conn.client;
    let namespaces = match &args.mesh_namespace {
        Some(ns) => vec![ns.clone()],
        None => locate::mesh_namespaces(&client).await,
    };
    let reports = reports(&client, &namespaces).await?;
    let mut rows: Vec<(String, &Value, &str)> = Vec::new();
    for report in &reports {
        for proxy in report.body["proxies"].as_array().into_iter().flatten() {
            let name = format!(
                "{}.{}",
                proxy["pod"].as_str().unwrap_or_default(),
                proxy["namespace"].as_str().unwrap_or_default()
            );
            rows.push((name, proxy, report.meshd.as_str()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(wanted) = &args.pod {
        let wanted = if wanted.contains('.') {
            wanted.clone()
        } else {
            let ns = args
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            format!("{wanted}.{ns}")
        };
        let Some((name, proxy, meshd)) = rows.iter().find(|r| r.0 == wanted) else {
            return Err(anyhow!(
                "{wanted} is not connected to meshd ({} proxies are); is its sidecar running and injected by this mesh's revision?",
                rows.len()
            ));
        };
        println!(
            "proxy {name}, connected to {meshd} from {}",
            proxy["peer"].as_str().unwrap_or_default()
        );
        for (column, type_url) in COLUMNS {
            let t = &proxy["types"][*type_url];
            println!(
                "  {column:<9} {:<16} acknowledged generation {}",
                cell(&proxy["types"], type_url),
                t["ackedGeneration"]
                    .as_u64()
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            if let Some(why) = t["rejected"].as_str() {
                println!("            refused: {why}");
            }
        }
        return Ok(());
    }
    let mut table = vec![vec![
        "NAME".to_owned(),
        "SETTINGS".to_owned(),
        "SERVICES".to_owned(),
        "ROUTES".to_owned(),
        "POLICIES".to_owned(),
        "MESHD".to_owned(),
        "VERSION".to_owned(),
    ]];
    for (name, proxy, meshd) in &rows {
        let mut row = vec![name.clone()];
        row.extend(COLUMNS.iter().map(|(_, t)| cell(&proxy["types"], t)));
        row.push((*meshd).to_owned());
        row.push(
            proxy["proxyVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        table.push(row);
    }
    print_table(&table);
    if rows.is_empty() {
        eprintln!("no proxy is connected to meshd yet");
    }
    Ok(())
}

pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map(Vec::len).unwrap_or_default();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}
