//! The mesh's certificate authority: a root created on first start and kept in a Secret (or a
//! user's plug-in CA), issuing meshd's serving certificates and the workloads' SPIFFE
//! certificates. [`secret`] keeps it in the cluster, [`rotation`] decides when a self-signed
//! root is replaced, and [`handle`] shares the CA in force with everything that signs or
//! publishes its roots.

pub mod handle;
pub mod rotation;
pub mod secret;

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use thiserror::Error;
use time::OffsetDateTime;

pub use handle::CaHandle;
pub use secret::load_or_create;

/// How long a self-signed root is valid.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are valid from a little before they are issued, for clocks that lag.
const BACKDATE: time::Duration = time::Duration::minutes(5);

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
    #[error("the certificate signing request does not parse or its signature is wrong: {0}")]
    Csr(String),
    #[error("the certificate signing request asks for {requested}, but the caller is {allowed}")]
    Identity { requested: String, allowed: String },
    #[error("certificate PEM: {0}")]
    Pem(String),
}

/// A CA that can sign: its certificate and key, the chain from it up to the root, and the
/// roots clients trust (more than one while a rotated root is still trusted).
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    /// Certificates between the signing certificate and the root, PEM; empty for a root.
    chain_pem: String,
    roots_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The not-after time of the first certificate of `pem`.
fn not_after(pem: &str) -> Result<OffsetDateTime, CaError> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| CaError::Pem("no certificate".to_owned()))?
        .map_err(|e| CaError::Pem(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| CaError::Pem(e.to_string()))?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| CaError::Pem(e.to_string()))
}

/// Each certificate of a PEM bundle, as its own PEM block.
pub fn split_pem(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        if line.starts_with("-----BEGIN ") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

impl Ca {
    /// A new self-signed root for `trust_domain`, valid `valid_for`.
    pub fn generate(trust_domain: &str, valid_for: Duration) -> Result<Ca, CaError> {
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
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::seconds(valid_for.as_secs() as i64);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ca::from_pem(&cert_pem, &key.serialize_pem(), "", &cert_pem)
    }

    /// A CA from its certificate and key, the chain above it (empty for a root) and the roots.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        chain_pem: &str,
        roots_pem: &str,
    ) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            chain_pem: chain_pem.to_owned(),
            roots_pem: roots_pem.to_owned(),
            not_after: not_after(cert_pem)?,
            issuer,
        })
    }

    /// The roots clients verify against (a webhook's caBundle, the trust-bundle ConfigMaps).
    pub fn root_pem(&self) -> &str {
        &self.roots_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether this CA signs with a root of its own (rather than a plug-in intermediate).
    pub fn is_self_signed_root(&self) -> bool {
        self.chain_pem.is_empty() && self.roots_pem.contains(self.cert_pem.trim())
    }

    /// What follows a leaf in a chain: the signing certificate unless it is the root, then the
    /// certificates above it.
    fn chain_after_leaf(&self) -> String {
        let mut chain = String::new();
        if !self.is_self_signed_root() {
            chain.push_str(&self.cert_pem);
            chain.push_str(&self.chain_pem);
        }
        chain
    }

    fn validity(params: &mut CertificateParams, valid_for: Duration) {
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::seconds(valid_for.as_secs() as i64);
    }

    /// A TLS server certificate for `dns_names`, valid `valid_for`, its chain appended.
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
        Ca::validity(&mut params, valid_for);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut cert_pem = cert.pem();
        cert_pem.push_str(&self.chain_after_leaf());
        Ok(Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a workload's CSR for exactly `identity` (`spiffe://<td>/ns/<ns>/sa/<sa>`): the CSR
    /// must ask for that URI SAN and no other name. Returns Istio's `cert_chain`: the leaf, the
    /// chain above it, and the roots.
    pub fn issue_workload(
        &self,
        csr_pem: &str,
        identity: &str,
        valid_for: Duration,
    ) -> Result<Vec<String>, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        let requested: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_owned(),
                SanType::DnsName(name) => format!("DNS:{}", name.as_str()),
                SanType::IpAddress(ip) => format!("IP:{ip}"),
                SanType::Rfc822Name(mail) => format!("email:{}", mail.as_str()),
                other => format!("{other:?}"),
            })
            .collect();
        if requested.len() != 1 || requested[0] != identity {
            return Err(CaError::Identity {
                requested: if requested.is_empty() {
                    "no identity".to_owned()
                } else {
                    requested.join(", ")
                },
                allowed: identity.to_owned(),
            });
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(identity.try_into()?)];
        params.distinguished_name = DistinguishedName::new();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        Ca::validity(&mut params, valid_for);
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&self.issuer)?;
        let mut chain = vec![signed.pem()];
        chain.extend(split_pem(&self.chain_after_leaf()));
        chain.extend(split_pem(&self.roots_pem));
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(sans: Vec<SanType>) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().expect("ia5"))
    }

    const ID: &str = "spiffe://cluster.local/ns/shop/sa/web";

    #[test]
    fn a_workload_gets_exactly_its_identity_with_the_root_last() {
        let ca = Ca::generate("cluster.local", ROOT_VALIDITY).expect("CA");
        let chain = ca
            .issue_workload(&csr_for(vec![uri(ID)]), ID, Duration::from_secs(86400))
            .expect("issued");
        assert_eq!(chain.len(), 2, "leaf and root");
        assert_eq!(chain[1].trim(), ca.root_pem().trim());
        let der = CertificateDer::from_pem_slice(chain[0].as_bytes()).expect("leaf PEM");
        let (_, leaf) = x509_parser::parse_x509_certificate(&der).expect("leaf");
        let san = leaf
            .subject_alternative_name()
            .expect("ext")
            .expect("SAN present");
        assert_eq!(
            format!("{:?}", san.value.general_names),
            format!("[URI({ID:?})]")
        );
        let life = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
        assert_eq!(life, 86400 + 300);
        assert!(!leaf.is_ca());
    }

    #[test]
    fn a_csr_for_another_identity_or_extra_names_is_refused() {
        let ca = Ca::generate("cluster.local", ROOT_VALIDITY).expect("CA");
        let other = csr_for(vec![uri("spiffe://cluster.local/ns/shop/sa/admin")]);
        let err = ca
            .issue_workload(&other, ID, Duration::from_secs(3600))
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("the certificate signing request asks for spiffe://cluster.local/ns/shop/sa/admin, but the caller is {ID}")
        );
        let extra = csr_for(vec![
            uri(ID),
            SanType::DnsName("evil.example".try_into().expect("dns")),
        ]);
        assert!(ca
            .issue_workload(&extra, ID, Duration::from_secs(3600))
            .is_err());
        let none = csr_for(vec![]);
        assert!(ca
            .issue_workload(&none, ID, Duration::from_secs(3600))
            .is_err());
        assert!(matches!(
            ca.issue_workload("garbage", ID, Duration::from_secs(3600)),
            Err(CaError::Csr(_))
        ));
    }

    #[test]
    fn an_intermediate_ca_puts_itself_and_its_chain_between_leaf_and_root() {
        let root = Ca::generate("cluster.local", ROOT_VALIDITY).expect("root");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let intermediate = params
            .signed_by(&key, &root.issuer)
            .expect("intermediate")
            .pem();
        let ca =
            Ca::from_pem(&intermediate, &key.serialize_pem(), "", root.root_pem()).expect("CA");
        assert!(!ca.is_self_signed_root());
        let chain = ca
            .issue_workload(&csr_for(vec![uri(ID)]), ID, Duration::from_secs(3600))
            .expect("issued");
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[1].trim(), intermediate.trim());
        assert_eq!(chain[2].trim(), root.root_pem().trim());
    }
}
