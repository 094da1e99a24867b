//! Who the proxy is and where meshd is, from what injection gives the sidecar: environment
//! variables (downward API) and mounted files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{0} is not set; the injected sidecar sets it from the pod (downward API); set it by hand to run mesh-proxy outside a pod")]
    Missing(&'static str),
}

/// The proxy's identity as meshd and the CA see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub pod_name: String,
    pub namespace: String,
    pub service_account: String,
    pub trust_domain: String,
    pub workload_name: String,
    pub labels: BTreeMap<String, String>,
    pub gateway: bool,
}

impl Identity {
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// Where to reach meshd and what to present to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `host:port` (TLS, verified against `root_cert` as `host`), or `http://host:port` for
    /// meshd's plain-text port.
    pub address: String,
    /// The projected service-account token (audience `istio-ca`), read for each connection
    /// because the kubelet rotates it.
    pub token_file: PathBuf,
    /// The mesh's roots (the `istio-ca-root-cert` ConfigMap).
    pub root_cert: PathBuf,
    /// The name meshd's certificate is checked against, when the address is not that name
    /// (an IP, say); Istio's `ISTIOD_SAN`.
    pub tls_name: Option<String>,
}

/// A Go-style duration as Istio's `SECRET_TTL` takes it: `24h`, `24h0m0s`, `90m`, `20s`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    let mut seen_unit = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        seen_unit = true;
    }
    (number.is_empty() && seen_unit && total > 0).then(|| std::time::Duration::from_secs(total))
}

/// The workload certificate's validity: `SECRET_TTL` (Istio's variable), else 24 h.
pub fn secret_ttl() -> std::time::Duration {
    std::env::var("SECRET_TTL")
        .ok()
        .and_then(|t| parse_duration(&t))
        .unwrap_or(std::time::Duration::from_secs(24 * 3600))
}

/// The downward API's `labels` file: `key="value"` lines.
pub fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((key.trim().to_owned(), value.replace("\\\"", "\"")))
        })
        .collect()
}

fn env(name: &'static str) -> Result<String, SettingsError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SettingsError::Missing(name))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The identity and connection the injected environment describes (see docs/proxy.md).
pub fn from_env() -> Result<(Identity, Connection), SettingsError> {
    let pod_name = env("POD_NAME")?;
    let namespace = env("POD_NAMESPACE")?;
    let labels_file = env_or("MESH_POD_LABELS_FILE", "/etc/istio/pod/labels");
    let labels = std::fs::read_to_string(&labels_file)
        .map(|t| parse_labels(&t))
        .unwrap_or_default();
    let identity = Identity {
        workload_name: env_or("ISTIO_META_WORKLOAD_NAME", &pod_name),
        pod_name,
        namespace,
        service_account: env_or("SERVICE_ACCOUNT", "default"),
        trust_domain: env_or("TRUST_DOMAIN", "cluster.local"),
        labels,
        gateway: env_or("ISTIO_META_ROUTER_MODE", "sidecar") != "sidecar",
    };
    let connection = Connection {
        address: env("MESHD_ADDRESS")?,
        token_file: env_or("MESH_TOKEN_FILE", "/var/run/secrets/tokens/istio-token").into(),
        root_cert: env_or("MESH_ROOT_CERT", "/var/run/secrets/istio/root-cert.pem").into(),
        tls_name: std::env::var("MESHD_TLS_NAME")
            .ok()
            .filter(|n| !n.is_empty()),
    };
    Ok((identity, connection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_api_labels() {
        let labels = parse_labels("app=\"reviews\"\nversion=\"v2\"\npod-template-hash=\"5d7b\"\n");
        assert_eq!(labels["app"], "reviews");
        assert_eq!(labels["version"], "v2");
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("24h0m0s"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), None);
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn spiffe_identity() {
        let id = Identity {
            namespace: "shop".into(),
            service_account: "web".into(),
            trust_domain: "cluster.local".into(),
            ..Identity::default()
        };
        assert_eq!(id.spiffe_id(), "spiffe://cluster.local/ns/shop/sa/web");
    }
}
