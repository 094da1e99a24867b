//! Keeps meshd's CA in the `caBundle` of its two webhook configurations, and learns their
//! failure policies.
//!
//! The operator owns these objects (server-side apply) but never sets `caBundle`, so meshd
//! writes only that field, with a JSON patch guarded by a `test` of each webhook's name: a
//! concurrent change of the list makes the patch fail and the next event retries, rather than
//! writing a bundle into the wrong entry. The configurations are watched, so one the operator
//! re-creates gets its bundle again within moments.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::Client;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::ca::CaHandle;
use crate::webhook::server::FailurePolicies;

/// Which of meshd's two webhook configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Inject,
    Validate,
}

impl Hook {
    fn resource(self) -> ApiResource {
        let kind = match self {
            Hook::Inject => "MutatingWebhookConfiguration",
            Hook::Validate => "ValidatingWebhookConfiguration",
        };
        ApiResource {
            group: "admissionregistration.k8s.io".to_owned(),
            version: "v1".to_owned(),
            api_version: "admissionregistration.k8s.io/v1".to_owned(),
            kind: kind.to_owned(),
            plural: format!("{}s", kind.to_lowercase()),
        }
    }
}

/// The JSON patch that puts `bundle` (base64 PEM) into every webhook of `webhooks` lacking it,
/// or None when all have it.
pub fn bundle_patch(webhooks: &Value, bundle: &str) -> Option<Value> {
    let mut ops = Vec::new();
    for (i, hook) in webhooks.as_array()?.iter().enumerate() {
        if hook["clientConfig"]["caBundle"].as_str() == Some(bundle) {
            continue;
        }
        ops.push(
            json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": hook["name"]}),
        );
        ops.push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}));
    }
    (!ops.is_empty()).then(|| Value::Array(ops))
}

/// Whether every webhook of the configuration lets objects through when meshd cannot answer.
pub fn ignores_failures(webhooks: &Value) -> bool {
    webhooks.as_array().is_some_and(|hooks| {
        !hooks.is_empty() && hooks.iter().all(|h| h["failurePolicy"] == "Ignore")
    })
}

/// Records the failure policy of `object` and patches in `bundle` where it is missing.
async fn reconcile(
    api: &Api<DynamicObject>,
    hook: Hook,
    object: &DynamicObject,
    bundle: &str,
    policies: &FailurePolicies,
    synced: &AtomicBool,
) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let webhooks = &object.data["webhooks"];
    let ignores = ignores_failures(webhooks);
    match hook {
        Hook::Inject => policies.inject_ignores.store(ignores, Ordering::Relaxed),
        Hook::Validate => policies.validate_ignores.store(ignores, Ordering::Relaxed),
    }
    let Some(patch) = bundle_patch(webhooks, bundle) else {
        synced.store(true, Ordering::Relaxed);
        return;
    };
    let patch: json_patch::Patch = match serde_json::from_value(patch) {
        Ok(p) => p,
        Err(e) => {
            warn!(%name, error = %e, "building the caBundle patch");
            return;
        }
    };
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {
            info!(%name, "caBundle written");
            synced.store(true, Ordering::Relaxed);
        }
        // The watch delivers the changed object again, and the patch is retried then.
        Err(e) => warn!(%name, error = %e, "cannot write caBundle; will retry on the next change"),
    }
}

fn encoded_roots(ca: &CaHandle) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca.get().root_pem().as_bytes())
}

/// Watches the configuration `name` of `hook` for as long as meshd runs, keeping the CA's
/// roots in it (again whenever they change) and recording its failure policy; `synced` turns
/// true once it holds the bundle (or does not exist, as when meshd runs without an
/// operator-made configuration).
pub async fn keep(
    client: Client,
    hook: Hook,
    name: String,
    ca: CaHandle,
    policies: Arc<FailurePolicies>,
    synced: Arc<AtomicBool>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &hook.resource());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), config).boxed();
    let mut ca_changes = ca.subscribe();
    let mut seen_in_listing = false;
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(event) => event,
                None => return,
            },
            changed = ca_changes.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Ok(Some(object)) = api.get_opt(&name).await {
                    reconcile(&api, hook, &object, &encoded_roots(&ca), &policies, &synced).await;
                }
                continue;
            }
        };
        let object = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => o,
            Ok(Event::Init) => {
                seen_in_listing = false;
                continue;
            }
            Ok(Event::InitDone) => {
                if !seen_in_listing {
                    synced.store(true, Ordering::Relaxed);
                }
                continue;
            }
            Ok(Event::Delete(_)) => continue,
            Err(e) => {
                warn!(%name, error = %e, "watching the webhook configuration; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        seen_in_listing = true;
        reconcile(&api, hook, &object, &encoded_roots(&ca), &policies, &synced).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_only_the_webhooks_without_the_bundle() {
        let webhooks = json!([
            {"name": "a", "clientConfig": {"service": {"name": "meshd"}}},
            {"name": "b", "clientConfig": {"caBundle": "Q0E="}},
        ]);
        let patch = bundle_patch(&webhooks, "Q0E=").expect("a needs it");
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/webhooks/0/name", "value": "a"},
                {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="},
            ])
        );
        let mut done = webhooks.clone();
        done[0]["clientConfig"]["caBundle"] = json!("Q0E=");
        assert_eq!(bundle_patch(&done, "Q0E="), None);
        let mut patched = webhooks.clone();
        let mut doc = json!({"webhooks": patched.take()});
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("patch");
        json_patch::patch(&mut doc, &patch).expect("applies");
        assert_eq!(doc["webhooks"][0]["clientConfig"]["caBundle"], "Q0E=");
    }

    #[test]
    fn failure_policy_is_ignore_only_when_every_webhook_says_so() {
        assert!(ignores_failures(&json!([{"failurePolicy": "Ignore"}])));
        assert!(!ignores_failures(
            &json!([{"failurePolicy": "Ignore"}, {"failurePolicy": "Fail"}])
        ));
        assert!(!ignores_failures(&json!([{}])));
        assert!(!ignores_failures(&json!([])));
    }
}
