//! `meshctl uninstall`: delete the MeshInstall(s) of a revision, let the operator's finalizer
//! remove what they own, then remove the operator (and with `--purge` the MeshInstall CRD).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstall;
use mesh_operator::controller::{self, kinds};
use mesh_operator::render::{LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};
use serde_json::json;

use crate::kube_client::{self, ClusterArgs};

/// How long uninstall waits for the operator to finish deleting a MeshInstall.
const DELETE_TIMEOUT: Duration = Duration::from_secs(180);
/// Name of the MeshInstall CRD.
const MESHINSTALL_CRD: &str = "meshinstalls.install.meshctl.dev";

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// Control-plane revision to remove (default: the default revision).
    #[arg(short = 'r', long = "revision", value_name = "REV")]
    revision: Option<String>,
    /// Also delete the CRDs (and so every Istio resource users created) and the install namespace.
    #[arg(long)]
    purge: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: UninstallArgs) -> anyhow::Result<()> {
    kube_client::runtime()?.block_on(uninstall(args))
}

async fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let conn = kube_client::connect(&args.cluster).await?;
    let client = conn.client;
    let name = args
        .revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "default".to_owned());

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_exists = crds
        .get_opt(MESHINSTALL_CRD)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot read CRD {MESHINSTALL_CRD}: {}",
                kube_client::root(&e)
            )
        })?
        .is_some();
    let targets: Vec<MeshInstall> = if crd_exists {
        let all: Api<MeshInstall> = Api::all(client.clone());
        all.list(&ListParams::default())
            .await
            .map_err(|e| anyhow!("cannot list MeshInstalls: {}", kube_client::root(&e)))?
            .items
            .into_iter()
            .filter(|mi| mi.name_any() == name)
            .collect()
    } else {
        Vec::new()
    };
    let namespaces: BTreeSet<String> = targets.iter().filter_map(|mi| mi.namespace()).collect();
    if targets.is_empty() {
        eprintln!("no MeshInstall named {name} found; removing the operator only");
    } else {
        eprintln!(
            "meshctl will delete MeshInstall {name} in {} and everything it installed{}",
            namespaces.iter().cloned().collect::<Vec<_>>().join(", "),
            if args.purge {
                ", the CRDs (with every Istio resource) and the install namespaces"
            } else {
                ""
            }
        );
    }
    kube_client::confirm_or_refuse(args.yes, "Proceed?")?;

    let started = Instant::now();
    for mi in &targets {
        let ns = mi.namespace().unwrap_or_default();
        let api: Api<MeshInstall> = Api::namespaced(client.clone(), &ns);
        if args.purge {
            let patch =
                json!({"metadata": {"annotations": {controller::PURGE_ANNOTATION: "true"}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    anyhow!(
                        "cannot annotate MeshInstall {ns}/{name}: {}",
                        kube_client::root(&e)
                    )
                })?;
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(anyhow!(
                    "cannot delete MeshInstall {ns}/{name}: {}",
                    kube_client::root(&e)
                ))
            }
        }
        wait_gone(&api, &ns, &name).await?;
        sweep_leftovers(&client, &ns, &name, args.purge).await?;
        println!("✔ MeshInstall {ns}/{name} deleted");
    }

    // Each install namespace has its own operator, watching only that namespace: it goes when
    // no MeshInstall is left there for it to manage.
    let remaining = if crd_exists {
        let all: Api<MeshInstall> = Api::all(client.clone());
        all.list(&ListParams::default())
            .await
            .map_err(|e| anyhow!("cannot list MeshInstalls: {}", kube_client::root(&e)))?
            .items
    } else {
        Vec::new()
    };
    let operator_namespaces: Vec<String> = if namespaces.is_empty() {
        find_operator_namespaces(&client).await?
    } else {
        namespaces.iter().cloned().collect()
    };
    for ns in &operator_namespaces {
        let left: Vec<String> = remaining
            .iter()
            .filter(|mi| mi.namespace().as_deref() == Some(ns.as_str()))
            .map(|mi| format!("{ns}/{}", mi.name_any()))
            .collect();
        if left.is_empty() {
            delete_operator(&client, ns, args.purge).await?;
        } else {
            eprintln!(
                "keeping the operator in {ns}: {} other MeshInstall(s) remain there ({})",
                left.len(),
                left.join(", ")
            );
        }
    }
    if args.purge && crd_exists {
        if remaining.is_empty() {
            delete_ignoring_missing(
                &crds.delete(MESHINSTALL_CRD, &DeleteParams::default()).await,
                &format!("CustomResourceDefinition {MESHINSTALL_CRD}"),
            )?;
            println!("✔ CustomResourceDefinition {MESHINSTALL_CRD} deleted");
        } else {
            eprintln!(
                "keeping CustomResourceDefinition {MESHINSTALL_CRD}: {} MeshInstall(s) remain",
                remaining.len()
            );
        }
    }
    warn_injected_pods(&client).await;
    println!("✔ uninstalled in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn wait_gone(api: &Api<MeshInstall>, ns: &str, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + DELETE_TIMEOUT;
    let mut reported = false;
    loop {
        let current = api.get_opt(name).await.map_err(|e| {
            anyhow!(
                "cannot read MeshInstall {ns}/{name}: {}",
                kube_client::root(&e)
            )
        })?;
        let Some(current) = current else {
            return Ok(());
        };
        if !reported {
            eprintln!("waiting for the operator to remove what MeshInstall {ns}/{name} owns…");
            reported = true;
        }
        if Instant::now() >= deadline {
            let finalizers = current.finalizers().join(", ");
            return Err(anyhow!(
                "MeshInstall {ns}/{name} is still there after {}s (finalizers: {finalizers}); is mesh-operator running? Its finalizer {} deletes what the install owns",
                DELETE_TIMEOUT.as_secs(),
                controller::FINALIZER
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes what still carries the owner labels of `ns/name` after the operator finished: the
/// operator's finalizer should leave nothing, so anything found is reported.
async fn sweep_leftovers(client: &Client, ns: &str, name: &str, purge: bool) -> anyhow::Result<()> {
    let selector = format!(
        "{}={},{LABEL_OWNER_NAME}={name},{LABEL_OWNER_NAMESPACE}={ns}",
        controller::LABEL_MANAGED_BY,
        controller::MANAGED_BY
    );
    let mut left = Vec::new();
    for kind in kinds::RENDERED.iter().rev() {
        if !purge && matches!(kind.kind, "CustomResourceDefinition" | "Namespace") {
            continue;
        }
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let list = all
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| anyhow!("cannot list {}: {}", kind.plural, kube_client::root(&e)))?;
        for item in list.items {
            if item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let item_name = item.metadata.name.clone().unwrap_or_default();
            let item_ns = item.metadata.namespace.clone();
            let api = kube_client::api_of(client, kind, item_ns.as_deref());
            let shown = match &item_ns {
                Some(n) => format!("{} {n}/{item_name}", kind.kind),
                None => format!("{} {item_name}", kind.kind),
            };
            let result = api
                .delete(&item_name, &DeleteParams::background())
                .await
                .map(|_| ());
            delete_ignoring_missing(&result, &shown)?;
            left.push(shown);
        }
    }
    if !left.is_empty() {
        eprintln!(
            "warning: the operator left {} object(s) of MeshInstall {ns}/{name} behind; deleted them: {}",
            left.len(),
            left.join(", ")
        );
    }
    Ok(())
}

/// Namespaces holding the operator's Deployment.
async fn find_operator_namespaces(client: &Client) -> anyhow::Result<Vec<String>> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!(
        "app.kubernetes.io/name={},{}={}",
        controller::manifests::NAME,
        controller::LABEL_MANAGED_BY,
        controller::MANAGED_BY
    ));
    let list = api
        .list(&params)
        .await
        .map_err(|e| anyhow!("cannot list Deployments: {}", kube_client::root(&e)))?;
    Ok(list.items.iter().filter_map(|d| d.namespace()).collect())
}

/// Deletes the operator's objects, in reverse apply order; its Namespace only with `--purge`.
async fn delete_operator(client: &Client, ns: &str, purge: bool) -> anyhow::Result<()> {
    let objects = controller::operator_manifests(ns, "unused");
    for object in objects.iter().rev() {
        let kind_name = object["kind"].as_str().unwrap_or_default();
        if kind_name == "Namespace" && !purge {
            continue;
        }
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let Some(kind) = kinds::lookup(api_version, kind_name) else {
            continue;
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api = kube_client::api_of(client, kind, object["metadata"]["namespace"].as_str());
        let display = kube_client::display(object);
        let result = api.delete(name, &DeleteParams::default()).await.map(|_| ());
        delete_ignoring_missing(&result, &display)?;
        println!("✔ {display} deleted");
    }
    Ok(())
}

fn delete_ignoring_missing<T>(result: &Result<T, kube::Error>, what: &str) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(anyhow!("cannot delete {what}: {}", kube_client::root(e))),
    }
}

/// Pods that still run a mesh proxy keep running, now without a control plane.
async fn warn_injected_pods(client: &Client) {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().labels("security.istio.io/tlsMode=istio");
    let Ok(pods) = api.list(&params).await else {
        return;
    };
    let namespaces: BTreeSet<String> = pods.items.iter().filter_map(|p| p.namespace()).collect();
    if namespaces.is_empty() {
        return;
    }
    let shown: Vec<String> = namespaces.iter().take(5).cloned().collect();
    let more = namespaces.len().saturating_sub(shown.len());
    eprintln!(
        "warning: {} pod(s) still carry the mesh proxy (label security.istio.io/tlsMode=istio) in {}{}; restart them to remove the proxy",
        pods.items.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more namespace(s)")
        } else {
            String::new()
        }
    );
}
