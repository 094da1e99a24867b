//! Where the CA lives in the cluster. A plug-in CA (Istio's `cacerts` Secret) is used as given;
//! otherwise meshd's own root is kept in `mesh-ca-secret`, created on the first start and
//! rotated there ([`super::rotation`]). Every replica re-reads the Secret periodically, so all
//! of them sign with the same root; updates carry the resourceVersion read, so two replicas
//! rotating at once cannot both win.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{error, info};

use super::rotation::{self, Action, Policy};
use super::{split_pem, Ca, CaError, CaHandle, ROOT_VALIDITY};

/// Where a self-signed root is kept, with Istio's key names.
pub const CA_SECRET: &str = "mesh-ca-secret";
/// A user-provided CA (Istio's plug-in CA Secret), preferred when present.
pub const PLUGIN_SECRET: &str = "cacerts";
const CERT_KEY: &str = "ca-cert.pem";
const KEY_KEY: &str = "ca-key.pem";
const ROOT_KEY: &str = "root-cert.pem";
const CHAIN_KEY: &str = "cert-chain.pem";
/// When meshd last rotated its root (RFC 3339).
pub const ROTATED_AT_ANNOTATION: &str = "ca.meshctl.dev/rotated-at";
/// `"true"` asks meshd to rotate its self-signed root now.
pub const ROTATE_ANNOTATION: &str = "ca.meshctl.dev/rotate";

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|t| !t.trim().is_empty())
}

fn bad(namespace: &str, name: &str, message: String) -> CaError {
    CaError::Secret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    }
}

/// Istio's plug-in CA: `ca-cert.pem` and `ca-key.pem` sign, `root-cert.pem` is trusted, and
/// `cert-chain.pem` (when given) holds the chain from the CA certificate to the root.
fn plugin(secret: &Secret, namespace: &str) -> Result<Ca, CaError> {
    let (Some(cert), Some(key)) = (text(secret, CERT_KEY), text(secret, KEY_KEY)) else {
        return Err(bad(
            namespace,
            PLUGIN_SECRET,
            format!("a plug-in CA needs {CERT_KEY} and {KEY_KEY}"),
        ));
    };
    let chain = text(secret, CHAIN_KEY).unwrap_or_default();
    let root = text(secret, ROOT_KEY)
        .or_else(|| split_pem(&chain).pop())
        .unwrap_or_else(|| cert.clone());
    // The chain without the CA certificate itself and the root: what sits between them.
    let between: String = split_pem(&chain)
        .into_iter()
        .filter(|c| c.trim() != cert.trim() && !root.contains(c.trim()))
        .collect();
    Ca::from_pem(&cert, &key, &between, &root)
        .map_err(|e| bad(namespace, PLUGIN_SECRET, e.to_string()))
}

/// meshd's own root: the signing root in `ca-cert.pem`/`ca-key.pem` and the trusted roots in
/// `root-cert.pem` (the signing root first, then any it replaced that are still trusted).
fn own(secret: &Secret, namespace: &str) -> Result<(Ca, rotation::State), CaError> {
    let (Some(cert), Some(key)) = (text(secret, CERT_KEY), text(secret, KEY_KEY)) else {
        return Err(bad(
            namespace,
            CA_SECRET,
            format!("missing {CERT_KEY} or {KEY_KEY}"),
        ));
    };
    let roots = text(secret, ROOT_KEY).unwrap_or_else(|| cert.clone());
    let ca = Ca::from_pem(&cert, &key, "", &roots)
        .map_err(|e| bad(namespace, CA_SECRET, e.to_string()))?;
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let state = rotation::State {
        signing_not_after: ca.not_after(),
        roots: split_pem(&roots).len(),
        rotated_at: annotations
            .get(ROTATED_AT_ANNOTATION)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        requested: annotations.get(ROTATE_ANNOTATION).map(String::as_str) == Some("true"),
    };
    Ok((ca, state))
}

fn own_secret(namespace: &str, ca: &Ca, rotated_at: Option<OffsetDateTime>) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let annotations = rotated_at
        .and_then(|at| at.format(&Rfc3339).ok())
        .map(|at| BTreeMap::from([(ROTATED_AT_ANNOTATION.to_owned(), at)]));
    Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        type_: Some("istio.io/ca-root".to_owned()),
        data: Some(BTreeMap::from([
            (CERT_KEY.to_owned(), bytes(ca.cert_pem())),
            (KEY_KEY.to_owned(), bytes(ca.key_pem())),
            (ROOT_KEY.to_owned(), bytes(ca.root_pem())),
        ])),
        ..Secret::default()
    }
}

/// The plug-in CA when its Secret exists, else meshd's own root, created on the first start.
/// Two replicas starting at once agree: the loser of the create reads the winner's.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    trust_domain: &str,
) -> Result<Ca, CaError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(secret) = secrets.get_opt(PLUGIN_SECRET).await? {
        return plugin(&secret, namespace);
    }
    if let Some(secret) = secrets.get_opt(CA_SECRET).await? {
        return own(&secret, namespace).map(|(ca, _)| ca);
    }
    let ca = Ca::generate(trust_domain, ROOT_VALIDITY)?;
    match secrets
        .create(&PostParams::default(), &own_secret(namespace, &ca, None))
        .await
    {
        Ok(_) => {
            info!(namespace, secret = CA_SECRET, "created the mesh root CA");
            Ok(ca)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let secret = secrets.get(CA_SECRET).await?;
            own(&secret, namespace).map(|(ca, _)| ca)
        }
        Err(e) => Err(e.into()),
    }
}

/// One pass: re-read the CA, rotate or trim meshd's own root when due, and put what is in force
/// into `handle` when it changed.
pub async fn refresh(
    client: &Client,
    namespace: &str,
    trust_domain: &str,
    policy: &Policy,
    handle: &CaHandle,
) -> Result<(), CaError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (ca, changed_secret) = if let Some(secret) = secrets.get_opt(PLUGIN_SECRET).await? {
        (plugin(&secret, namespace)?, None)
    } else {
        let Some(secret) = secrets.get_opt(CA_SECRET).await? else {
            return Ok(());
        };
        let (ca, state) = own(&secret, namespace)?;
        let now = OffsetDateTime::now_utc();
        match rotation::plan(&state, now, policy) {
            Action::Keep => (ca, None),
            Action::Rotate => {
                let fresh = Ca::generate(trust_domain, ROOT_VALIDITY)?;
                let roots = format!("{}{}", fresh.root_pem(), ca.root_pem());
                let rotated = Ca::from_pem(fresh.cert_pem(), fresh.key_pem(), "", &roots)?;
                info!(
                    namespace,
                    "rotating the mesh root CA; the old root stays trusted for the overlap"
                );
                (rotated, Some((secret, Some(now))))
            }
            Action::DropReplaced => {
                let trimmed = Ca::from_pem(ca.cert_pem(), ca.key_pem(), "", ca.cert_pem())?;
                info!(
                    namespace,
                    "the root rotation overlap is over; only the new root is trusted"
                );
                (trimmed, Some((secret, state.rotated_at)))
            }
        }
    };
    if let Some((old, rotated_at)) = changed_secret {
        let mut updated = own_secret(namespace, &ca, rotated_at);
        updated.metadata.resource_version = old.metadata.resource_version.clone();
        match secrets
            .replace(CA_SECRET, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Another replica got there first; its root is read on the next pass.
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let current = handle.get();
    if current.cert_pem() != ca.cert_pem() || current.root_pem() != ca.root_pem() {
        handle.set(ca);
        info!(namespace, "the CA in force changed");
    }
    Ok(())
}

/// [`refresh`] every `every`, for as long as meshd runs.
pub async fn maintain(
    client: Client,
    namespace: String,
    trust_domain: String,
    policy: Policy,
    handle: CaHandle,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = refresh(&client, &namespace, &trust_domain, &policy, &handle).await {
            error!(namespace = %namespace, error = %e, "refreshing the CA; the one in force stays");
        }
    }
}
