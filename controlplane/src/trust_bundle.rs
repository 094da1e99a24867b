//! The mesh's roots in every namespace: ConfigMap `istio-ca-root-cert` (key `root-cert.pem`,
//! Istio's names), which injected pods mount to verify meshd and each other. Written when a
//! namespace appears, again whenever the roots change (a rotation adds the new root before the
//! old one goes), and again when someone deletes or edits it.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use mesh_inject::sidecar::ROOT_CERT_CONFIGMAP;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::ca::CaHandle;

pub const ROOT_CERT_KEY: &str = "root-cert.pem";
const FIELD_MANAGER: &str = "meshd";

async fn write(client: &Client, namespace: &str, roots: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CERT_CONFIGMAP,
            "namespace": namespace,
            "labels": {"istio.io/config": "true"},
        },
        "data": {ROOT_CERT_KEY: roots},
    });
    match api
        .patch(
            ROOT_CERT_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&config_map),
        )
        .await
    {
        Ok(_) => debug!(namespace, "trust bundle written"),
        // A namespace being deleted refuses new objects; it is about to go anyway.
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {}
        Err(e) => warn!(namespace, error = %e, "cannot write the trust bundle ConfigMap"),
    }
}

/// Keeps the trust bundle in every namespace, for as long as meshd runs.
pub async fn publish(client: Client, ca: CaHandle) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let mut namespace_events = watcher::watcher(namespaces, watcher::Config::default()).boxed();
    let mut config_map_events = watcher::watcher(
        config_maps,
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CERT_CONFIGMAP}")),
    )
    .boxed();
    let mut ca_changes = ca.subscribe();
    let mut known: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            event = namespace_events.next() => match event {
                Some(Ok(Event::Apply(ns) | Event::InitApply(ns))) => {
                    if ns.metadata.deletion_timestamp.is_some() {
                        known.remove(&ns.name_any());
                        continue;
                    }
                    let name = ns.name_any();
                    if known.insert(name.clone()) {
                        write(&client, &name, ca.get().root_pem()).await;
                    }
                }
                Some(Ok(Event::Delete(ns))) => {
                    known.remove(&ns.name_any());
                }
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(e)) => {
                    warn!(error = %e, "watching namespaces; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            },
            event = config_map_events.next() => match event {
                // Deleted or edited by someone else: put it back as it must be.
                Some(Ok(Event::Delete(cm))) => {
                    let ns = cm.namespace().unwrap_or_default();
                    if known.contains(&ns) {
                        write(&client, &ns, ca.get().root_pem()).await;
                    }
                }
                Some(Ok(Event::Apply(cm) | Event::InitApply(cm))) => {
                    let roots = ca.get().root_pem().to_owned();
                    let held = cm.data.as_ref().and_then(|d| d.get(ROOT_CERT_KEY));
                    let ns = cm.namespace().unwrap_or_default();
                    if held.map(String::as_str) != Some(roots.as_str()) && known.contains(&ns) {
                        write(&client, &ns, &roots).await;
                    }
                }
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(e)) => {
                    warn!(error = %e, "watching the trust bundle ConfigMaps; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            },
            changed = ca_changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let roots = ca.get().root_pem().to_owned();
                info!(namespaces = known.len(), "the mesh roots changed; rewriting the trust bundles");
                for ns in &known {
                    write(&client, ns, &roots).await;
                }
            }
        }
    }
}
