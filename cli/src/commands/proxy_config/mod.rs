//! `meshctl proxy-config listeners|routes|clusters|endpoints|secrets|all POD[.NS]`: what one
//! proxy holds, read from its admin port (15000, `/config_dump` and `/clusters`) through the
//! API server's port-forward, as tables or as the proxy's own JSON/YAML.

mod tables;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};

use crate::commands::proxy_status::print_table;
use crate::kube_client::{self, root, ClusterArgs};
use crate::pod_http;

/// The proxy's admin port.
const ADMIN_PORT: u16 = 15000;
/// The proxy container of a sidecar and of a gateway.
const PROXY_CONTAINERS: &[&str] = &["istio-proxy", "mesh-proxy"];

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    Secrets,
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Tables.
    #[default]
    Short,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct ProxyConfigArgs {
    /// What to show.
    #[arg(value_enum)]
    section: Section,
    /// The pod, as POD or POD.NAMESPACE.
    pod: String,
    /// Namespace of the pod when POD has none (default: `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Short)]
    output: Output,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: ProxyConfigArgs) -> anyhow::Result<()> {
    kube_client::runtime()?.block_on(proxy_config(args))
}

fn split(pod: &str, namespace: Option<&str>) -> (String, String) {
    match pod.split_once('.') {
        Some((name, ns)) => (name.to_owned(), ns.to_owned()),
        None => (pod.to_owned(), namespace.unwrap_or("default").to_owned()),
    }
}

async fn admin_get(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    path: &str,
) -> anyhow::Result<String> {
    let (code, body) = pod_http::get(client, ns, pod, ADMIN_PORT, path).await?;
    if code != 200 {
        return Err(anyhow!(
            "{ns}/{pod}'s proxy answered {code} to {path}: {}",
            body.trim()
        ));
    }
    Ok(body)
}

async fn proxy_config(args: ProxyConfigArgs) -> anyhow::Result<()> {
    let conn = kube_client::connect(&args.cluster).await?;
    let client = conn.client;
    let (name, ns) = split(&args.pod, args.namespace.as_deref());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = pods
        .get_opt(&name)
        .await
        .map_err(|e| anyhow!("cannot read pod {ns}/{name}: {}", root(&e)))?
        .ok_or_else(|| anyhow!("pod {ns}/{name} not found; pass POD.NAMESPACE or -n"))?;
    let has_proxy = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .any(|c| PROXY_CONTAINERS.contains(&c.name.as_str()));
    if !has_proxy {
        return Err(anyhow!(
            "pod {ns}/{name} runs no mesh proxy (no istio-proxy or mesh-proxy container): inject it with `meshctl kube-inject`, or label namespace {ns} istio-injection=enabled and restart the pod"
        ));
    }
    let dump: Value = serde_json::from_str(&admin_get(&client, &ns, &name, "/config_dump").await?)
        .map_err(|e| anyhow!("{ns}/{name}'s /config_dump is not JSON: {e}"))?;
    let runtime = if matches!(args.section, Section::Endpoints | Section::All) {
        admin_get(&client, &ns, &name, "/clusters")
            .await
            .unwrap_or_default()
    } else {
        String::new()
    };
    let section = |s: Section| -> Value {
        match s {
            Section::Listeners => dump["listeners"].clone(),
            Section::Routes => dump["config"]["virtualServices"].clone(),
            Section::Clusters => json!({
                "services": dump["config"]["services"],
                "destinationRules": dump["config"]["destinationRules"],
            }),
            Section::Endpoints => tables::endpoint_rows(&dump, &runtime)
                .into_iter()
                .map(|r| json!({"endpoint": r[0], "status": r[1], "service": r[2], "labels": r[3]}))
                .collect(),
            Section::Secrets => dump["secrets"].clone(),
            Section::All => dump.clone(),
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&section(args.section))?),
        Output::Yaml => print!("{}", serde_yaml_ng::to_string(&section(args.section))?),
        Output::Short => {
            let all = [
                Section::Listeners,
                Section::Routes,
                Section::Clusters,
                Section::Endpoints,
                Section::Secrets,
            ];
            let shown: Vec<Section> = if args.section == Section::All {
                all.to_vec()
            } else {
                vec![args.section]
            };
            for (i, s) in shown.iter().enumerate() {
                if shown.len() > 1 {
                    if i > 0 {
                        println!();
                    }
                    println!("{}:", format!("{s:?}").to_uppercase());
                }
                let rows = match s {
                    Section::Listeners => tables::listeners(&dump),
                    Section::Routes => tables::routes(&dump),
                    Section::Clusters => tables::clusters(&dump),
                    Section::Endpoints => tables::endpoints(&dump, &runtime),
                    Section::Secrets => tables::secrets(&dump),
                    Section::All => Vec::new(),
                };
                print_table(&rows);
            }
        }
    }
    Ok(())
}
