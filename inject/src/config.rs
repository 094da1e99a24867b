//! What injection needs to know about the installed mesh: the sidecar values and policy the
//! renderer writes into the `mesh-sidecar-injector` ConfigMap, and the mesh config.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::InjectError;

/// The `values` key of the injector ConfigMap (see `operator/src/render/controlplane.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Values {
    #[serde(default)]
    pub hub: String,
    #[serde(default)]
    pub tag: String,
    pub proxy_image: String,
    #[serde(default = "if_not_present")]
    pub image_pull_policy: String,
    #[serde(default = "default_revision")]
    pub revision: String,
    pub meshd_address: String,
    #[serde(default = "cluster_local")]
    pub trust_domain: String,
    #[serde(default)]
    pub proxy_resources: Value,
    #[serde(default)]
    pub hold_application_until_proxy_starts: bool,
}

fn if_not_present() -> String {
    "IfNotPresent".to_owned()
}
fn default_revision() -> String {
    "default".to_owned()
}
fn cluster_local() -> String {
    "cluster.local".to_owned()
}

/// Whether pods are injected unless they opt out (`enabled`) or only when they opt in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    #[default]
    Enabled,
    Disabled,
}

/// The `config` key of the injector ConfigMap, with Istio's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub policy: PolicyMode,
    /// Label selectors of pods injected even when the policy is disabled.
    #[serde(default)]
    pub always_inject_selector: Vec<Value>,
    /// Label selectors of pods never injected.
    #[serde(default)]
    pub never_inject_selector: Vec<Value>,
    /// Annotations added to every injected pod.
    #[serde(default)]
    pub injected_annotations: Map<String, Value>,
}

/// Everything injection reads, parsed once and shared by every workload.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectConfig {
    pub values: Values,
    pub policy: Policy,
    /// `defaultConfig` of the mesh config: the proxy's settings, handed to it as PROXY_CONFIG.
    pub proxy_config: Map<String, Value>,
}

/// Where a piece of configuration came from, for error messages.
pub struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

fn parse<T: serde::de::DeserializeOwned>(source: &Source) -> Result<T, InjectError> {
    serde_yaml_ng::from_str(source.text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{}:{}:{}", source.origin, l.line(), l.column()))
            .unwrap_or_else(|| source.origin.to_owned());
        InjectError::Config {
            origin: at,
            message: e.to_string(),
        }
    })
}

impl InjectConfig {
    /// From the injector ConfigMap's `values` (required) and `config`, and the mesh config.
    pub fn from_sources(
        values: &Source,
        policy: Option<&Source>,
        mesh: Option<&Source>,
    ) -> Result<InjectConfig, InjectError> {
        let mut values: Values = parse(values)?;
        let policy = match policy {
            Some(source) if !source.text.trim().is_empty() => parse(source)?,
            _ => Policy::default(),
        };
        let mesh: Value = match mesh {
            Some(source) if !source.text.trim().is_empty() => parse(source)?,
            _ => Value::Null,
        };
        if let Some(domain) = mesh["trustDomain"].as_str() {
            values.trust_domain = domain.to_owned();
        }
        let proxy_config = mesh["defaultConfig"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(hold) = proxy_config
            .get("holdApplicationUntilProxyStarts")
            .and_then(Value::as_bool)
        {
            values.hold_application_until_proxy_starts = hold;
        }
        Ok(InjectConfig {
            values,
            policy,
            proxy_config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = r#"{"hub": "ghcr.io/meshctl", "tag": "0.1.0", "proxyImage": "ghcr.io/meshctl/mesh-proxy:0.1.0",
        "revision": "default", "meshdAddress": "meshd.mesh-system.svc:15012", "trustDomain": "cluster.local",
        "proxyResources": {"requests": {"cpu": "100m"}}}"#;

    #[test]
    fn the_mesh_config_overrides_trust_domain_and_hold() {
        let mesh = "trustDomain: example.org\ndefaultConfig:\n  holdApplicationUntilProxyStarts: true\n  concurrency: 2\n";
        let config = InjectConfig::from_sources(
            &Source {
                origin: "values",
                text: VALUES,
            },
            None,
            Some(&Source {
                origin: "mesh",
                text: mesh,
            }),
        )
        .expect("parses");
        assert_eq!(config.values.trust_domain, "example.org");
        assert!(config.values.hold_application_until_proxy_starts);
        assert_eq!(config.proxy_config["concurrency"], 2);
        assert_eq!(config.policy.policy, PolicyMode::Enabled);
    }

    #[test]
    fn bad_config_names_the_place() {
        let err = InjectConfig::from_sources(
            &Source {
                origin: "inject.yaml",
                text: "proxyImage: x\nmeshdAddress: [\n",
            },
            None,
            None,
        )
        .expect_err("invalid YAML");
        assert!(
            err.to_string()
                .starts_with("injection config (inject.yaml:"),
            "{err}"
        );
        let err = InjectConfig::from_sources(
            &Source {
                origin: "inject.yaml",
                text: "proxyImage: x\nmeshdAddress: y\nbogus: 1\n",
            },
            None,
            None,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
    }
}
