//! From what a user typed to one MeshInstall: profile < `-f` overlays in order < `--set` in order.

use mesh_crds::MeshInstall;
use serde_json::Value;

use crate::error::InputError;
use crate::merge::merge;
use crate::profile;
use crate::setpath::{Segment, SetArg};

const API_VERSION: &str = "install.meshctl.dev/v1alpha1";
const KIND: &str = "MeshInstall";

/// One `-f` file's text and where it came from, for messages.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub origin: String,
    pub text: String,
}

impl Overlay {
    pub fn read(path: &std::path::Path) -> Result<Overlay, InputError> {
        let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Overlay {
            origin: path.display().to_string(),
            text,
        })
    }
}

/// Everything that selects and shapes an installation.
#[derive(Debug, Clone, Default)]
pub struct InstallInput {
    /// `--profile`; the overlays and `--set profile=` may also choose one.
    pub profile: Option<String>,
    pub overlays: Vec<Overlay>,
    /// `--set` arguments as typed.
    pub sets: Vec<String>,
}

impl InstallInput {
    /// The fully merged MeshInstall, or the first thing wrong with the input.
    pub fn resolve(&self) -> Result<MeshInstall, InputError> {
        let overlays = self
            .overlays
            .iter()
            .map(parse_overlay)
            .collect::<Result<Vec<_>, _>>()?;
        let sets = self
            .sets
            .iter()
            .map(|s| SetArg::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let profile_name = self.choose_profile(&overlays, &sets)?;

        let mut doc = profile::document(&profile_name)?;
        for overlay in overlays {
            merge(&mut doc, overlay.doc);
        }
        let schema = spec_schema();
        for set in &sets {
            set.apply(&mut doc["spec"], &schema)?;
        }
        doc["spec"]["profile"] = Value::String(profile_name);
        finish_metadata(&mut doc);

        let install: MeshInstall =
            serde_path_to_error::deserialize(&doc).map_err(|e| InputError::Invalid {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        validate(&install)?;
        Ok(install)
    }

    /// The profile named by `--set profile=`, else by the last overlay that names one, else by
    /// `--profile`; two different explicit choices are refused rather than one silently winning.
    fn choose_profile(
        &self,
        overlays: &[ParsedOverlay],
        sets: &[SetArg],
    ) -> Result<String, InputError> {
        let mut choices: Vec<(String, String)> = Vec::new();
        if let Some(flag) = &self.profile {
            choices.push(("--profile".to_owned(), flag.clone()));
        }
        for overlay in overlays {
            if let Some(name) = overlay.doc.pointer("/spec/profile").and_then(Value::as_str) {
                choices.push((overlay.origin.clone(), name.to_owned()));
            }
        }
        for set in sets {
            if set.path == [Segment::Key("profile".to_owned())] {
                choices.push((format!("--set {}", set.arg), set.value.clone()));
            }
        }
        if let Some((first_source, first)) = choices.first() {
            if let Some((other_source, other)) = choices.iter().find(|(_, name)| name != first) {
                return Err(InputError::Invalid {
                    field: "spec.profile".to_owned(),
                    message: format!(
                        "{first_source} selects profile {first:?} but {other_source} selects {other:?}; choose one"
                    ),
                });
            }
        }
        let name = choices
            .pop()
            .map_or_else(|| profile::BASE_PROFILE.to_owned(), |(_, n)| n);
        // Fail early with the list of profiles, before any merging.
        profile::document(&name)?;
        Ok(name)
    }
}

/// The OpenAPI schema of `MeshInstall.spec`, as the CRD carries it; built once, it is large.
pub fn spec_schema() -> Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let crd = serde_json::to_value(mesh_crds::meshinstall::crd()).unwrap_or_default();
            crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
                .cloned()
                .unwrap_or_default()
        })
        .clone()
}

/// An overlay as typed: like a MeshInstall, but `metadata` may be left out.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // read only to check the file's shape
struct OverlayDocument {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    spec: mesh_crds::MeshInstallSpec,
}

struct ParsedOverlay {
    origin: String,
    doc: Value,
}

fn parse_overlay(overlay: &Overlay) -> Result<ParsedOverlay, InputError> {
    let origin = overlay.origin.clone();
    let parse_error = |e: &serde_yaml_ng::Error, field: String| InputError::Parse {
        origin: origin.clone(),
        line: e.location().map_or(0, |l| l.line()),
        column: e.location().map_or(0, |l| l.column()),
        field,
        message: with_suggestion(strip_location(&e.to_string())),
    };

    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&overlay.text)
        .map(|d| serde::Deserialize::deserialize(d).map_err(|e| parse_error(&e, String::new())))
        .collect::<Result<Vec<Value>, _>>()?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    if documents.len() != 1 {
        return Err(InputError::DocumentCount {
            origin,
            count: documents.len(),
        });
    }
    let doc = documents.into_iter().next().unwrap_or_default();

    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION || kind != KIND {
        return Err(InputError::WrongKind {
            origin,
            found: format!(
                "apiVersion {:?}, kind {:?}",
                doc.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>"),
                doc.get("kind").and_then(Value::as_str).unwrap_or("<none>")
            ),
        });
    }
    // Typed check of this file alone, so a wrong field is reported with this file's line.
    let deserializer = serde_yaml_ng::Deserializer::from_str(&overlay.text);
    if let Err(e) = serde_path_to_error::deserialize::<_, OverlayDocument>(deserializer) {
        return Err(parse_error(e.inner(), e.path().to_string()));
    }
    Ok(ParsedOverlay { origin, doc })
}

/// serde_yaml_ng appends " at line L column C" and may prefix the field path; both are reported
/// in their own places.
fn strip_location(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') => rest.to_owned(),
        _ => message.to_owned(),
    }
}

/// Names the MeshInstall after its revision and places it in the mesh namespace, dropping the
/// profile's own description.
/// serde lists every valid name after an unknown one; point at the likely intended one first.
fn with_suggestion(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((unknown, expected)) = rest.split_once("`, expected one of ") else {
        return message;
    };
    let known: Vec<String> = expected
        .split(", ")
        .map(|k| k.trim_matches('`').to_owned())
        .collect();
    let known_refs: Vec<&String> = known.iter().collect();
    match crate::setpath::nearest_keys(unknown, &known_refs).first() {
        Some(best) if known.len() > 1 => {
            format!("unknown field `{unknown}`; did you mean `{best}`? (valid: {expected})")
        }
        _ => message,
    }
}

fn finish_metadata(doc: &mut Value) {
    let revision = doc
        .pointer("/spec/revision")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = doc
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("mesh-system")
        .to_owned();
    let metadata = &mut doc["metadata"];
    if metadata.get("name").and_then(Value::as_str).is_none() {
        let name = if revision.is_empty() {
            "default".to_owned()
        } else {
            revision
        };
        metadata["name"] = Value::String(name);
    }
    if metadata.get("namespace").and_then(Value::as_str).is_none() {
        metadata["namespace"] = Value::String(namespace);
    }
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove("install.meshctl.dev/description");
        if annotations.is_empty() {
            if let Some(m) = metadata.as_object_mut() {
                m.remove("annotations");
            }
        }
    }
}

/// Rules that span several fields or that the schema cannot say.
fn validate(install: &MeshInstall) -> Result<(), InputError> {
    let spec = &install.spec;
    let invalid = |field: &str, message: String| InputError::Invalid {
        field: field.to_owned(),
        message,
    };
    if let Some(ns) = &spec.namespace {
        check_dns_label(ns).map_err(|m| invalid("spec.namespace", m))?;
    }
    if let Some(rev) = spec.revision.as_deref().filter(|r| !r.is_empty()) {
        check_dns_label(rev).map_err(|m| invalid("spec.revision", m))?;
    }
    let components = spec.components.clone().unwrap_or_default();
    for (field, gateways) in [
        (
            "spec.components.ingressGateways",
            components.ingress_gateways.unwrap_or_default(),
        ),
        (
            "spec.components.egressGateways",
            components.egress_gateways.unwrap_or_default(),
        ),
    ] {
        let mut seen = std::collections::BTreeSet::new();
        for (i, gw) in gateways.iter().enumerate() {
            check_dns_label(&gw.name).map_err(|m| invalid(&format!("{field}[{i}].name"), m))?;
            if !seen.insert(gw.name.clone()) {
                return Err(invalid(
                    &format!("{field}[{i}].name"),
                    format!("{:?} is used by two gateways", gw.name),
                ));
            }
        }
    }
    let addons = spec.addons.clone().unwrap_or_default();
    let on = |a: &Option<mesh_crds::meshinstall::AddonSpec>| {
        a.as_ref().and_then(|a| a.enabled).unwrap_or(false)
    };
    if on(&addons.jaeger) && on(&addons.zipkin) {
        return Err(invalid(
            "spec.addons",
            "jaeger and zipkin both serve the tracing collector; enable only one (--set addons.zipkin.enabled=false)".to_owned(),
        ));
    }
    Ok(())
}

/// Kubernetes names of namespaces and of the objects named after gateways are DNS-1123 labels.
fn check_dns_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}
