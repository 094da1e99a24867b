//! Where the injection settings come from: the embedded profile rendered offline (the default),
//! the installed mesh's ConfigMaps in the cluster, or files the user gives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use mesh_crds::MeshInstall;
use mesh_inject::config::Source;
use mesh_inject::InjectConfig;
use mesh_operator::{render, InstallInput, Manifest};
use serde_json::Value;

use crate::config_files::{parse_yaml, read};
use crate::kube_client::{self, ClusterArgs};

/// The ConfigMaps' text: the injector's `values` and `config`, and the mesh config.
#[derive(Debug, Clone, Default)]
pub struct Texts {
    pub origin: String,
    pub values: String,
    pub policy: String,
    pub mesh: String,
}

/// How the user asked to choose.
pub struct Choice<'a> {
    pub profile: Option<&'a str>,
    pub revision: Option<&'a str>,
    pub from_cluster: bool,
    pub inject_config_file: Option<&'a Path>,
    pub mesh_config_file: Option<&'a Path>,
    pub cluster: &'a ClusterArgs,
}

/// How long the cluster may take to answer before kube-inject works offline instead.
const CLUSTER_PROBE: Duration = Duration::from_secs(3);

pub fn load(choice: &Choice) -> anyhow::Result<InjectConfig> {
    let mut texts = base_texts(choice)?;
    if let Some(path) = choice.inject_config_file {
        let (values, policy) = inject_file(path)?;
        texts.values = values;
        if let Some(policy) = policy {
            texts.policy = policy;
        }
        texts.origin = path.display().to_string();
    }
    if let Some(path) = choice.mesh_config_file {
        texts.mesh = crate::config_files::mesh_file(path)?;
    }
    InjectConfig::from_sources(
        &Source {
            origin: &texts.origin,
            text: &texts.values,
        },
        Some(&Source {
            origin: &texts.origin,
            text: &texts.policy,
        }),
        Some(&Source {
            origin: &texts.origin,
            text: &texts.mesh,
        }),
    )
    .map_err(|e| anyhow!("{e}"))
}

fn base_texts(choice: &Choice) -> anyhow::Result<Texts> {
    if choice.profile.is_some() || (choice.inject_config_file.is_some() && !choice.from_cluster) {
        return from_profile(choice.profile, choice.revision);
    }
    if choice.from_cluster {
        return from_cluster(choice);
    }
    // Neither asked: the installed mesh's settings when there is a cluster with one, quietly
    // the embedded default profile otherwise.
    if kubeconfig_exists(choice.cluster) {
        if let Ok(texts) = from_cluster(choice) {
            eprintln!("using the injection settings of {}", texts.origin);
            return Ok(texts);
        }
    }
    from_profile(None, choice.revision)
}

fn kubeconfig_exists(args: &ClusterArgs) -> bool {
    if args.kubeconfig.is_some() {
        return true;
    }
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).any(|p| p.exists());
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".kube/config").exists())
        .unwrap_or(false)
}

/// Renders the profile (at the revision) and takes its injector and mesh ConfigMaps.
fn from_profile(profile: Option<&str>, revision: Option<&str>) -> anyhow::Result<Texts> {
    let input = InstallInput {
        profile: Some(profile.unwrap_or("default").to_owned()),
        overlays: Vec::new(),
        sets: revision
            .map(|r| vec![format!("revision={r}")])
            .unwrap_or_default(),
    };
    let install = input.resolve()?;
    let manifests = render(&install);
    let origin = format!("profile {}", profile.unwrap_or("default"));
    texts_from_manifests(&manifests, origin)
}

fn config_maps(manifests: &[Manifest]) -> (Option<&Value>, Option<&Value>) {
    let of = |suffix: &str| {
        manifests.iter().find(|m| {
            m.kind() == "ConfigMap"
                && (m.name() == suffix || m.name().starts_with(&format!("{suffix}-")))
                && m.object["data"].is_object()
        })
    };
    (
        of("mesh-sidecar-injector").map(|m| &m.object),
        manifests
            .iter()
            .find(|m| m.kind() == "ConfigMap" && m.object["data"]["mesh"].is_string())
            .map(|m| &m.object),
    )
}

fn texts_from_manifests(manifests: &[Manifest], origin: String) -> anyhow::Result<Texts> {
    let (injector, mesh) = config_maps(manifests);
    let injector = injector.ok_or_else(|| {
        anyhow!("{origin} has no control plane, so no sidecar settings: choose a profile with one (default, demo, minimal), or give --injectConfigFile")
    })?;
    Ok(Texts {
        values: injector["data"]["values"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        policy: injector["data"]["config"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        mesh: mesh
            .and_then(|m| m["data"]["mesh"].as_str())
            .unwrap_or_default()
            .to_owned(),
        origin,
    })
}

/// The installed mesh's ConfigMaps: the MeshInstall of the revision is rendered to learn their
/// names and namespace, then the live ConfigMaps are read, edits included.
fn from_cluster(choice: &Choice) -> anyhow::Result<Texts> {
    let runtime = kube_client::runtime()?;
    runtime.block_on(async {
        let work = async {
            let conn = kube_client::connect(choice.cluster).await?;
            let installs = Api::<MeshInstall>::all(conn.client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| anyhow!("cannot list MeshInstalls: {}", kube_client::root(&e)))?;
            let wanted = choice.revision.unwrap_or_default();
            let install = installs
                .items
                .iter()
                .filter_map(|i| mesh_operator::controller::spec::resolve(i).ok())
                .find(|i| i.spec.revision.clone().unwrap_or_default() == wanted)
                .ok_or_else(|| {
                    anyhow!("no MeshInstall of revision {:?} in the cluster: install one, or pass --profile to work offline", wanted)
                })?;
            let manifests = render(&install);
            let (injector, mesh) = config_maps(&manifests);
            let injector = injector.ok_or_else(|| anyhow!("the installed mesh has no control plane"))?;
            let live = |object: &Value| {
                let api: Api<ConfigMap> = Api::namespaced(
                    conn.client.clone(),
                    object["metadata"]["namespace"].as_str().unwrap_or_default(),
                );
                let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                async move {
                    api.get(&name)
                        .await
                        .map_err(|e| anyhow!("ConfigMap {name}: {}", kube_client::root(&e)))
                }
            };
            let injector_live = live(injector).await?;
            let data = injector_live.data.unwrap_or_default();
            let mesh_text = match mesh {
                Some(m) => live(m).await?.data.unwrap_or_default().get("mesh").cloned(),
                None => None,
            };
            Ok::<Texts, anyhow::Error>(Texts {
                origin: format!(
                    "ConfigMap {}/{} in the cluster",
                    injector["metadata"]["namespace"].as_str().unwrap_or_default(),
                    injector["metadata"]["name"].as_str().unwrap_or_default()
                ),
                values: data.get("values").cloned().unwrap_or_default(),
                policy: data.get("config").cloned().unwrap_or_default(),
                mesh: mesh_text.unwrap_or_default(),
            })
        };
        if choice.from_cluster {
            return work.await;
        }
        tokio::time::timeout(CLUSTER_PROBE, work)
            .await
            .unwrap_or_else(|_| Err(anyhow!("the cluster did not answer in time")))
    })
}

/// An injector ConfigMap (its `values` and `config`), or the values themselves.
fn inject_file(path: &Path) -> anyhow::Result<(String, Option<String>)> {
    let text = read(path)?;
    let doc = parse_yaml(path, &text)?;
    if doc["kind"] == "ConfigMap" {
        let values = doc["data"]["values"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: the ConfigMap has no data.values", path.display()))?;
        return Ok((
            values.to_owned(),
            doc["data"]["config"].as_str().map(str::to_owned),
        ));
    }
    Ok((text, None))
}
