//! Reading the cluster: every object of the kinds the analyzers read, in every namespace (the
//! report is narrowed to a namespace later; references cross namespaces), paged, concurrently.

use std::time::Duration;

use anyhow::anyhow;
use futures::future::join_all;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use mesh_analyze::object::KNOWN_KINDS;
use mesh_analyze::{Object, Origin};
use serde_json::Value;

use crate::kube_client::{self, ClusterArgs};

/// What was read.
pub struct ClusterObjects {
    pub objects: Vec<Object>,
    /// The kubeconfig context's namespace.
    pub default_namespace: String,
    /// The installed mesh's config (the `mesh` key of its ConfigMap), when there is one.
    pub mesh_config: Option<String>,
    /// Kinds that could not be read in full, and why.
    pub warnings: Vec<String>,
    /// Those kinds: references into them are checked only against what was read.
    pub incomplete_kinds: Vec<String>,
}

fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

/// Secrets are read for their names and keys only; their values never stay in memory.
fn without_secret_values(mut value: Value) -> Value {
    for key in ["data", "stringData"] {
        if let Some(map) = value[key].as_object_mut() {
            for v in map.values_mut() {
                *v = Value::String(String::new());
            }
        }
    }
    value
}

async fn list_kind(
    api: Api<DynamicObject>,
    resource: &ApiResource,
) -> Result<Vec<Value>, kube::Error> {
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        for item in page.items {
            let mut value = serde_json::to_value(&item).unwrap_or(Value::Null);
            value["apiVersion"] = Value::String(resource.api_version.clone());
            value["kind"] = Value::String(resource.kind.clone());
            if let Some(meta) = value["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            if resource.kind == "Secret" {
                value = without_secret_values(value);
            }
            out.push(value);
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// Lists every known kind in every namespace. Where listing across namespaces is forbidden,
/// `namespace` (the one reported on) is listed instead, and the kind counts as incomplete.
pub fn read(
    args: &ClusterArgs,
    namespace: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<ClusterObjects> {
    let runtime = kube_client::runtime()?;
    runtime.block_on(async {
        let work = async {
            let conn = kube_client::connect(args).await?;
            let default_namespace = conn.client.default_namespace().to_owned();
            let scope = namespace.unwrap_or(&default_namespace).to_owned();
            let resources: Vec<ApiResource> = KNOWN_KINDS
                .iter()
                .map(|(group, kind)| {
                    ApiResource::from_gvk_with_plural(
                        // Every kind read is served at v1 (Istio's since 1.22).
                        &GroupVersionKind::gvk(group, "v1", kind),
                        &plural(kind),
                    )
                })
                .collect();
            let lists = join_all(resources.iter().map(|r| {
                let client = conn.client.clone();
                let scope = scope.clone();
                async move {
                    let all = list_kind(Api::all_with(client.clone(), r), r).await;
                    match all {
                        Err(kube::Error::Api(e)) if e.code == 403 && r.kind != "Namespace" => {
                            let one = list_kind(Api::namespaced_with(client, &scope, r), r).await;
                            (r, one, true)
                        }
                        other => (r, other, false),
                    }
                }
            }))
            .await;
            let mut objects = Vec::new();
            let mut warnings = Vec::new();
            let mut incomplete_kinds = Vec::new();
            for (resource, result, partial) in lists {
                if partial {
                    incomplete_kinds.push(resource.kind.clone());
                    if result.is_ok() {
                        warnings.push(format!(
                            "cannot list {} ({}) in every namespace: forbidden; read those of namespace {scope} only, so references to others are not checked",
                            resource.plural, resource.api_version
                        ));
                    }
                }
                match result {
                    Ok(values) => objects.extend(
                        values
                            .into_iter()
                            .map(|v| Object::new(v, Origin::Cluster, &default_namespace)),
                    ),
                    // The kind is not served (e.g. Istio's CRDs are not installed): none exist.
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(kube::Error::Api(e)) if e.code == 403 => {
                        if !incomplete_kinds.contains(&resource.kind) {
                            incomplete_kinds.push(resource.kind.clone());
                        }
                        warnings.push(format!(
                            "cannot list {} ({}): forbidden; references to them are not checked",
                            resource.plural, resource.api_version
                        ))
                    }
                    Err(e) => {
                        return Err(anyhow!(
                            "cannot list {} ({}): {}",
                            resource.plural,
                            resource.api_version,
                            kube_client::root(&e)
                        ))
                    }
                }
            }
            let mesh_config = mesh_config(&objects);
            Ok(ClusterObjects {
                objects,
                default_namespace,
                mesh_config,
                warnings,
                incomplete_kinds,
            })
        };
        tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| {
            Err(anyhow!(
                "reading the cluster took longer than --timeout {}s; raise --timeout, or analyse files with --use-kube=false",
                timeout.as_secs()
            ))
        })
    })
}

/// The mesh ConfigMap the installation renders (`mesh`, in the mesh's namespace) or Istio's
/// (`istio`).
fn mesh_config(objects: &[Object]) -> Option<String> {
    ["mesh", "istio"].iter().find_map(|name| {
        objects
            .iter()
            .find(|o| {
                o.kind == "ConfigMap" && o.name == *name && o.value["data"]["mesh"].is_string()
            })
            .and_then(|o| o.value["data"]["mesh"].as_str().map(str::to_owned))
    })
}
