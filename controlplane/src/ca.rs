//! The mesh's certificate authority: a root created on first start and kept in a Secret (or a
//! user's plug-in CA), issuing the serving certificate of meshd's webhooks. Workload
//! certificates and rotation come with the control plane's CA service.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use thiserror::Error;
use time::OffsetDateTime;

/// Where a self-signed root is kept, with Istio's key names.
pub const CA_SECRET: &str = "mesh-ca-secret";
/// A user-provided CA (Istio's plug-in CA Secret), preferred when present.
pub const PLUGIN_SECRET: &str = "cacerts";
const CERT_KEY: &str = "ca-cert.pem";
const KEY_KEY: &str = "ca-key.pem";
const ROOT_KEY: &str = "root-cert.pem";

#[derive(Debug, Error)]
pub enum CaError {
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("Secret {namespace}/{name}: {message}")]
    Secret {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// A CA that can sign: its certificate, key, and the root its chain ends in.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed root for `trust_domain`, valid ten years.
    pub fn generate(trust_domain: &str) -> Result<Ca, CaError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, trust_domain);
        name.push(DnType::CommonName, "meshd root CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ca::from_pem(&cert_pem, &key.serialize_pem(), &cert_pem)
    }

    /// A CA from its certificate and key (and the root, the same as the certificate for a
    /// self-signed CA).
    pub fn from_pem(cert_pem: &str, key_pem: &str, root_pem: &str) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            root_pem: root_pem.to_owned(),
            issuer,
        })
    }

    /// The root certificate clients verify against (what goes into a webhook's caBundle).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A TLS server certificate for `dns_names`, valid `valid_for`, with the chain up to the
    /// root appended when the CA is an intermediate.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        valid_for: Duration,
    ) -> Result<Issued, CaError> {
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            dns_names.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = name;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(valid_for.as_secs() as i64);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut cert_pem = cert.pem();
        if self.cert_pem != self.root_pem {
            cert_pem.push_str(&self.cert_pem);
        }
        Ok(Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// The plug-in CA when its Secret exists, else the root in `mesh-ca-secret`, created on the
/// first start. Two replicas starting at once agree: the loser of the create reads the winner's.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    trust_domain: &str,
) -> Result<Ca, CaError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let bad = |name: &str, message: String| CaError::Secret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    if let Some(plugin) = secrets.get_opt(PLUGIN_SECRET).await? {
        let (Some(cert), Some(key)) = (text(&plugin, CERT_KEY), text(&plugin, KEY_KEY)) else {
            return Err(bad(
                PLUGIN_SECRET,
                format!("a plug-in CA needs {CERT_KEY} and {KEY_KEY}"),
            ));
        };
        let root = text(&plugin, ROOT_KEY).unwrap_or_else(|| cert.clone());
        return Ca::from_pem(&cert, &key, &root).map_err(|e| bad(PLUGIN_SECRET, e.to_string()));
    }
    if let Some(stored) = secrets.get_opt(CA_SECRET).await? {
        return from_secret(&stored).map_err(|m| bad(CA_SECRET, m));
    }
    let ca = Ca::generate(trust_domain)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("istio.io/ca-root".to_owned()),
        data: Some(BTreeMap::from([
            (
                CERT_KEY.to_owned(),
                ByteString(ca.cert_pem.clone().into_bytes()),
            ),
            (
                KEY_KEY.to_owned(),
                ByteString(ca.key_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(ca),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let stored = secrets.get(CA_SECRET).await?;
            from_secret(&stored).map_err(|m| bad(CA_SECRET, m))
        }
        Err(e) => Err(e.into()),
    }
}

fn from_secret(secret: &Secret) -> Result<Ca, String> {
    let (Some(cert), Some(key)) = (text(secret, CERT_KEY), text(secret, KEY_KEY)) else {
        return Err(format!("missing {CERT_KEY} or {KEY_KEY}"));
    };
    Ca::from_pem(&cert, &key, &cert).map_err(|e| e.to_string())
}
