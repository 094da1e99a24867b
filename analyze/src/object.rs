//! The objects analysers read: any Kubernetes object as a JSON tree, with where it came from.

use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::fieldpath::FieldPath;
use crate::lines;
use crate::spec::{self, IstioSpec, SpecProblem};

/// Where an object came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Read from the cluster's API server.
    Cluster,
    /// A document of a file (or of standard input).
    File(FileSpan),
}

/// A document within an input, kept so that a message can name the line of the field at fault.
#[derive(Debug, Clone)]
pub struct FileSpan {
    pub file: Arc<str>,
    /// The whole input, shared by all of its documents.
    pub text: Arc<str>,
    /// The bytes of this object's document.
    pub range: Range<usize>,
    /// The line the document starts on.
    pub doc_line: usize,
    /// Where the object sits in its document: empty, or `items[i]` for an item of a List.
    pub base: FieldPath,
    /// The line the object itself starts on.
    pub line: usize,
}

impl FileSpan {
    /// The line of `field` in the file, or the object's own line when it cannot be found.
    pub fn line_of(&self, field: Option<&FieldPath>) -> usize {
        let Some(field) = field else { return self.line };
        let doc = self.text.get(self.range.clone()).unwrap_or("");
        lines::locate(doc, &self.base.join(field))
            .map(|l| self.doc_line + l - 1)
            .filter(|&l| l >= self.line)
            .unwrap_or(self.line)
    }
}

/// A file and line, as messages report them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileLine {
    pub file: String,
    pub line: usize,
}

/// `Kind namespace/name`: what a message is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub kind: String,
    /// None for cluster-scoped kinds (Namespace).
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One object of the configuration under analysis.
#[derive(Debug, Clone)]
pub struct Object {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    /// The object as written; for Istio kinds without its `spec`, which is in `istio`.
    pub value: Value,
    pub origin: Origin,
    /// The typed spec of an Istio object (None when it does not read into its type).
    pub istio: Option<IstioSpec>,
    /// What is wrong with an Istio object's spec, found when the object was made.
    pub spec_problems: Vec<SpecProblem>,
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

fn empty_map() -> &'static Map<String, Value> {
    EMPTY.get_or_init(Map::new)
}

impl Object {
    /// Builds an object from its JSON tree; namespaced kinds without a namespace get
    /// `default_namespace`, as `kubectl apply` would give them.
    pub fn new(mut value: Value, origin: Origin, default_namespace: &str) -> Object {
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.to_owned()),
        };
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        let meta = &value["metadata"];
        let name = meta["name"]
            .as_str()
            .or_else(|| meta["generateName"].as_str())
            .unwrap_or_default()
            .to_owned();
        let namespace = if is_cluster_scoped(&kind) {
            String::new()
        } else {
            meta["namespace"]
                .as_str()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(default_namespace)
                .to_owned()
        };
        let (istio, spec_problems) = match spec::read(&group, &kind, &value) {
            Some((istio, problems)) => {
                if let Some(map) = value.as_object_mut() {
                    map.remove("spec");
                }
                (istio, problems)
            }
            None => (None, Vec::new()),
        };
        Object {
            group,
            version,
            kind,
            namespace,
            name,
            value,
            origin,
            istio,
            spec_problems,
        }
    }

    pub fn resource(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind.clone(),
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            name: self.name.clone(),
        }
    }

    /// What identifies the object in the cluster: a file's object replaces the cluster's one
    /// with the same key.
    pub fn key(&self) -> (String, String, String, String) {
        (
            self.group.clone(),
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }

    pub fn labels(&self) -> &Map<String, Value> {
        self.value["metadata"]["labels"]
            .as_object()
            .unwrap_or_else(|| empty_map())
    }

    pub fn annotations(&self) -> &Map<String, Value> {
        self.value["metadata"]["annotations"]
            .as_object()
            .unwrap_or_else(|| empty_map())
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().get(key).and_then(Value::as_str)
    }

    pub fn spec(&self) -> &Value {
        &self.value["spec"]
    }

    /// Whether the object is part of the mesh itself (control plane, gateways): rendered by the
    /// operator (`install.meshctl.dev/component`) or labelled as Istio labels its own. Checks
    /// meant for applications (port names, UID 1337) skip them, as istioctl's do.
    pub fn is_mesh_component(&self) -> bool {
        self.label("install.meshctl.dev/component").is_some()
            || matches!(
                self.label("istio"),
                Some("pilot" | "ingressgateway" | "egressgateway")
            )
            || self.label("app") == Some("meshd")
    }

    /// Whether the object is one of the kinds the analyzers read.
    pub fn is_known(&self) -> bool {
        KNOWN_KINDS
            .iter()
            .any(|(g, k)| *g == self.group && *k == self.kind)
    }

    /// The file and line of `field` (or of the object), None for objects from the cluster.
    pub fn file_line(&self, field: Option<&FieldPath>) -> Option<FileLine> {
        match &self.origin {
            Origin::Cluster => None,
            Origin::File(span) => Some(FileLine {
                file: span.file.to_string(),
                line: span.line_of(field),
            }),
        }
    }
}

/// Kinds without a namespace among those the analyzers read.
fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "IngressClass"
    )
}

/// The kinds the analyzers read, by API group. Any other kind is skipped (or, with
/// `--ignore-unknown=false`, refused).
pub const KNOWN_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Service"),
    ("", "Pod"),
    ("", "ServiceAccount"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("", "ReplicationController"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "Sidecar"),
    ("networking.istio.io", "WorkloadEntry"),
    ("security.istio.io", "PeerAuthentication"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "RequestAuthentication"),
];
