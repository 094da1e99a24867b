//! Test certificates made with rcgen: a mesh root, workload certificates with SPIFFE URI SANs
//! (valid, expired, not yet valid, or from another root), written where the proxy reads them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

#[derive(Clone, Copy)]
pub enum Validity {
    Now,
    Expired,
    NotYetValid,
}

pub struct Workload {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("root");
        let pem = cert.pem();
        Ca {
            issuer: Issuer::from_ca_cert_pem(&pem, key).expect("issuer"),
            pem,
        }
    }

    /// A workload certificate for `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub fn workload(&self, ns: &str, sa: &str, validity: Validity) -> Workload {
        self.workload_for(&format!("spiffe://cluster.local/ns/{ns}/sa/{sa}"), validity)
    }

    pub fn workload_for(&self, spiffe: &str, validity: Validity) -> Workload {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(spiffe.try_into().expect("ia5"))];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (from, to) = match validity {
            Validity::Now => ((2020, 1, 1), (2099, 1, 1)),
            Validity::Expired => ((2020, 1, 1), (2021, 1, 1)),
            Validity::NotYetValid => ((2098, 1, 1), (2099, 1, 1)),
        };
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Workload {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Ca {
    /// A TLS server (and client) certificate for a DNS name, as an external service has.
    pub fn dns(&self, name: &str) -> Workload {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Workload {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes the three files as mesh-agent does (each replaced atomically); returns the dir.
pub fn write_credentials(dir: &Path, w: &Workload, roots_pem: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    for (name, text) in [
        ("cert-chain.pem", w.chain_pem.as_str()),
        ("key.pem", w.key_pem.as_str()),
        ("root-cert.pem", roots_pem),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
    dir.to_owned()
}
