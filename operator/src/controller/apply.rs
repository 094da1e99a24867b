//! Server-side apply of rendered objects, and its dry run.
//!
//! Objects are applied in render order as `DynamicObject`s addressed through the static
//! [`kinds`](super::kinds) table. After the CRDs, applying waits (bounded) until each is
//! `Established`, so that nothing after them meets a kind the API server does not serve yet.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde_json::Value;
use tracing::{debug, info, warn};

use super::error::is_not_found;
use super::kinds::{self, Kind};
use super::Error;
use crate::{Component, Manifest};

/// How long applying waits for the CRDs it applied to become `Established`.
pub const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// What applying a render did: the components whose objects could not all be applied, keyed by
/// status key, with a message a person can act on.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApplyReport {
    pub applied: usize,
    pub failed: BTreeMap<String, String>,
}

/// A rendered object with the API it goes through.
pub(crate) struct Target {
    pub kind: &'static Kind,
    pub object: DynamicObject,
    pub display: String,
}

impl Target {
    pub fn from_manifest(manifest: &Manifest) -> Result<Target, Error> {
        let display = manifest.display_name();
        let kind = kinds::lookup(manifest.api_version(), manifest.kind()).ok_or_else(|| {
            Error::UnknownKind {
                object: display.clone(),
                kind: format!("{} {}", manifest.api_version(), manifest.kind()),
            }
        })?;
        let object: DynamicObject =
            serde_json::from_value(manifest.object.clone()).map_err(|e| Error::BadObject {
                object: display.clone(),
                message: e.to_string(),
            })?;
        if object.metadata.name.is_none() {
            return Err(Error::BadObject {
                object: display,
                message: "has no metadata.name".to_owned(),
            });
        }
        Ok(Target {
            kind,
            object,
            display,
        })
    }

    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object.metadata.namespace.as_deref()
    }

    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        api_for(client, self.kind, self.namespace())
    }
}

/// The API of `kind` in `namespace`; without a namespace, across all namespaces (for lists).
pub(crate) fn api_for(client: &Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = kind.api_resource();
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies every object with `field_manager`, taking over conflicting fields
/// (`force`). A failure marks the object's component failed and skips that component's later
/// objects; other components go on.
pub async fn apply(client: &Client, manifests: &[Manifest], field_manager: &str) -> ApplyReport {
    let params = PatchParams::apply(field_manager).force();
    let mut report = ApplyReport::default();
    let mut pending_crds: Vec<(Component, String)> = Vec::new();

    for (i, manifest) in manifests.iter().enumerate() {
        let key = manifest.component.status_key();
        if report.failed.contains_key(&key) {
            continue;
        }
        let target = match Target::from_manifest(manifest) {
            Ok(t) => t,
            Err(e) => {
                report.failed.insert(key, e.to_string());
                continue;
            }
        };
        match target
            .api(client)
            .patch(target.name(), &params, &Patch::Apply(&target.object))
            .await
        {
            Ok(_) => {
                debug!(object = %target.display, "applied");
                report.applied += 1;
                if target.kind.kind == "CustomResourceDefinition" {
                    pending_crds.push((manifest.component.clone(), target.name().to_owned()));
                }
            }
            Err(e) => {
                let message = describe_failure(&target, "patch", &e);
                warn!(object = %target.display, error = %e, "apply failed");
                report.failed.insert(key, message);
            }
        }

        let next_is_crd = manifests
            .get(i + 1)
            .is_some_and(|m| m.kind() == "CustomResourceDefinition");
        if !next_is_crd && !pending_crds.is_empty() {
            for (component, name) in pending_crds.drain(..) {
                if let Err(e) = wait_established(client, &name, CRD_ESTABLISHED_TIMEOUT).await {
                    report.failed.insert(component.status_key(), e.to_string());
                }
            }
        }
    }
    if report.failed.is_empty() {
        info!(objects = report.applied, "applied");
    }
    report
}

/// A failed API call about `target` in words a person can act on; a missing permission says
/// which one.
pub(crate) fn describe_failure(target: &Target, default_verb: &str, err: &kube::Error) -> String {
    let kube::Error::Api(status) = err else {
        return format!("{}: {err}", target.display);
    };
    if status.code == 403 {
        if status
            .message
            .contains("attempting to grant RBAC permissions not currently held")
        {
            return format!(
                "missing permission: the operator must itself hold every permission {} grants: {}",
                target.display, status.message
            );
        }
        let verb = forbidden_verb(&status.message).unwrap_or(default_verb);
        let scope = match target.namespace() {
            Some(ns) if target.kind.namespaced => ns.to_owned(),
            _ => "the cluster scope".to_owned(),
        };
        return format!(
            "missing permission: {verb} {} in {scope} ({})",
            target.kind.resource_name(),
            target.display
        );
    }
    format!("{}: {}", target.display, status.message)
}

/// The verb of an RBAC denial: `... cannot patch resource "deployments" ...`.
fn forbidden_verb(message: &str) -> Option<&str> {
    let rest = message.split(" cannot ").nth(1)?;
    let verb = rest.split_whitespace().next()?;
    Some(verb)
}

/// Waits until the CRD reports `Established=True`, polling; bounded by `timeout`.
pub async fn wait_established(client: &Client, name: &str, timeout: Duration) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(Some(crd)) if is_established(&crd) => return Ok(()),
            Ok(_) => {}
            Err(e) => warn!(crd = name, error = %e, "reading CRD"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::CrdNotEstablished {
                name: name.to_owned(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// What applying one object would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Change,
    Unchanged,
}

/// The dry-run verdict on one object, with both sides (normalized) for a diff.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunOutcome {
    pub component: Component,
    /// `Kind namespace/name`.
    pub object: String,
    pub change: Change,
    /// The live object, without server-managed bookkeeping; `None` when it does not exist.
    pub live: Option<Value>,
    /// The object as the API server would store it after the apply, same normalization.
    pub after: Value,
}

/// Server-side dry run of applying every object with `field_manager`: for each, whether it
/// would be created, changed or left unchanged. Nothing is written. Objects in a namespace the
/// render creates (so not there yet) are reported as created without a server round trip.
pub async fn dry_run(
    client: &Client,
    manifests: &[Manifest],
    field_manager: &str,
) -> Result<Vec<DryRunOutcome>, Error> {
    let params = PatchParams::apply(field_manager).force().dry_run();
    let mut out = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let target = Target::from_manifest(manifest)?;
        let api = target.api(client);
        let live = api
            .get_opt(target.name())
            .await
            .map_err(|e| Error::kube("read", target.display.clone(), e))?;
        let after = match api
            .patch(target.name(), &params, &Patch::Apply(&target.object))
            .await
        {
            Ok(obj) => serde_json::to_value(obj)?,
            // The namespace itself is part of this install and does not exist yet.
            Err(e) if live.is_none() && target.kind.namespaced && is_not_found(&e) => {
                manifest.object.clone()
            }
            Err(e) => return Err(Error::kube("dry-run apply", target.display.clone(), e)),
        };
        let after = normalize(after);
        let live = live.map(serde_json::to_value).transpose()?.map(normalize);
        let change = match &live {
            None => Change::Create,
            Some(l) if *l == after => Change::Unchanged,
            Some(_) => Change::Change,
        };
        out.push(DryRunOutcome {
            component: manifest.component.clone(),
            object: target.display,
            change,
            live,
            after,
        });
    }
    Ok(out)
}

/// Drops what the API server changes on every write and what no person wrote.
pub fn normalize(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.remove(key);
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verb_of_rbac_denial() {
        let m = r#"deployments.apps "meshd" is forbidden: User "system:serviceaccount:x:y" cannot patch resource "deployments" in API group "apps" in the namespace "mesh-system""#;
        assert_eq!(forbidden_verb(m), Some("patch"));
        assert_eq!(forbidden_verb("forbidden"), None);
    }

    #[test]
    fn normalize_drops_bookkeeping_only() {
        let v = serde_json::json!({
            "metadata": {"name": "a", "resourceVersion": "1", "generation": 2,
                         "managedFields": [], "creationTimestamp": "x", "uid": "u",
                         "labels": {"a": "b"}},
            "data": {"k": "v"}
        });
        assert_eq!(
            normalize(v),
            serde_json::json!({"metadata": {"name": "a", "labels": {"a": "b"}}, "data": {"k": "v"}})
        );
    }
}
