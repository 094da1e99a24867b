//! Deleting the objects an install owns that its current render no longer has (a disabled
//! gateway, a switched-off add-on), and all of them when the MeshInstall goes away.
//!
//! Owned objects are found by their owner labels across every rendered kind. CRDs and
//! Namespaces are kept unless the MeshInstall carries `install.meshctl.dev/purge-crds: "true"`:
//! deleting a CRD deletes every resource of that kind users created, and deleting a namespace
//! deletes whatever users put there (gateway certificates, their own workloads).

use std::collections::BTreeSet;

use kube::api::{DeleteParams, ListParams};
use kube::Client;
use tracing::info;

use super::apply::api_for;
use super::error::is_not_found;
use super::kinds::{Kind, RENDERED};
use super::{Error, LABEL_MANAGED_BY, MANAGED_BY};
use crate::render::{LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};
use crate::Manifest;

/// The MeshInstall whose objects are pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
}

impl Owner {
    /// The label selector of everything this owner's renders created.
    pub fn selector(&self) -> String {
        format!(
            "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_OWNER_NAME}={},{LABEL_OWNER_NAMESPACE}={}",
            self.name, self.namespace
        )
    }
}

/// `(kind, namespace, name)` of an object.
type Key = (String, String, String);

fn key(kind: &str, namespace: Option<&str>, name: &str) -> Key {
    (
        kind.to_owned(),
        namespace.unwrap_or_default().to_owned(),
        name.to_owned(),
    )
}

/// Kinds that are only deleted with the purge annotation.
fn needs_purge(kind: &Kind) -> bool {
    matches!(kind.kind, "CustomResourceDefinition" | "Namespace")
}

/// Deletes every object of `owner` that is not in `keep`, webhooks first and CRDs last (the
/// reverse of apply order). Returns the objects deleted, as `Kind namespace/name`.
pub async fn prune(
    client: &Client,
    owner: &Owner,
    keep: &[Manifest],
    purge: bool,
) -> Result<Vec<String>, Error> {
    let keep: BTreeSet<Key> = keep
        .iter()
        .map(|m| key(m.kind(), m.namespace(), m.name()))
        .collect();
    let selector = owner.selector();
    let mut deleted = Vec::new();
    for kind in RENDERED.iter().rev() {
        if needs_purge(kind) && !purge {
            continue;
        }
        let api = api_for(client, kind, None);
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::kube("list", kind.resource_name(), e))?;
        for item in list.items {
            let meta = &item.metadata;
            let name = meta.name.as_deref().unwrap_or_default();
            let namespace = meta.namespace.as_deref();
            if meta.deletion_timestamp.is_some() || keep.contains(&key(kind.kind, namespace, name))
            {
                continue;
            }
            let shown = match namespace {
                Some(ns) => format!("{} {ns}/{name}", kind.kind),
                None => format!("{} {name}", kind.kind),
            };
            match api_for(client, kind, namespace)
                .delete(name, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    info!(object = %shown, "deleted");
                    deleted.push(shown);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(Error::kube("delete", shown, e)),
            }
        }
    }
    Ok(deleted)
}

/// Deletes every object of `owner` (uninstall), keeping CRDs and Namespaces unless `purge`.
pub async fn delete_all(client: &Client, owner: &Owner, purge: bool) -> Result<Vec<String>, Error> {
    prune(client, owner, &[], purge).await
}
