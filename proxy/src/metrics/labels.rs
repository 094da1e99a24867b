//! The peer-dependent part of Istio's metric labels, rendered once per pair of peers.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// The client's sidecar (outbound).
    Source,
    /// The server's sidecar (inbound).
    Destination,
}

/// One side of a connection as Istio's labels describe it; empty fields print `unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
    pub principal: String,
}

impl Peer {
    /// From a workload name, namespace and pod labels, as Istio derives canonical names.
    pub fn from_labels(
        workload: Option<&str>,
        namespace: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
        cluster: Option<&str>,
    ) -> Peer {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let app = labels
            .get("app")
            .or_else(|| labels.get("app.kubernetes.io/name"))
            .cloned()
            .unwrap_or_default();
        let version = labels
            .get("version")
            .or_else(|| labels.get("app.kubernetes.io/version"))
            .cloned()
            .unwrap_or_default();
        let canonical_service = Some(get("service.istio.io/canonical-name"))
            .filter(|s| !s.is_empty())
            .or_else(|| Some(app.clone()).filter(|s| !s.is_empty()))
            .or_else(|| workload.map(str::to_owned))
            .unwrap_or_default();
        let canonical_revision = Some(get("service.istio.io/canonical-revision"))
            .filter(|s| !s.is_empty())
            .or_else(|| Some(version.clone()).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "latest".into());
        Peer {
            workload: workload.unwrap_or_default().to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            app,
            version,
            canonical_service,
            canonical_revision,
            cluster: cluster.unwrap_or("Kubernetes").to_owned(),
            principal: String::new(),
        }
    }
}

/// The destination service as Istio's `destination_service*` labels name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceLabels {
    pub host: String,
    pub name: String,
    pub namespace: String,
}

/// A rendered label list, shared by every series of the same peers.
#[derive(Debug)]
pub struct LabelSet {
    pub text: Box<str>,
}

fn value(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

fn push(out: &mut String, name: &str, v: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn render(
    reporter: Reporter,
    src: &Peer,
    dst: &Peer,
    service: &ServiceLabels,
) -> String {
    let mut o = String::with_capacity(640);
    push(
        &mut o,
        "reporter",
        match reporter {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        },
    );
    for (prefix, p) in [("source", src), ("destination", dst)] {
        let _ = write!(o, "");
        push(&mut o, &format!("{prefix}_workload"), value(&p.workload));
        push(
            &mut o,
            &format!("{prefix}_workload_namespace"),
            value(&p.namespace),
        );
        push(&mut o, &format!("{prefix}_principal"), value(&p.principal));
        push(&mut o, &format!("{prefix}_app"), value(&p.app));
        push(&mut o, &format!("{prefix}_version"), value(&p.version));
        push(
            &mut o,
            &format!("{prefix}_canonical_service"),
            value(&p.canonical_service),
        );
        push(
            &mut o,
            &format!("{prefix}_canonical_revision"),
            value(&p.canonical_revision),
        );
        push(&mut o, &format!("{prefix}_cluster"), value(&p.cluster));
    }
    push(&mut o, "destination_service", value(&service.host));
    push(&mut o, "destination_service_name", value(&service.name));
    push(
        &mut o,
        "destination_service_namespace",
        value(&service.namespace),
    );
    // Istio's: the client side does not report it; the server side says `none` here and
    // `mutual_tls` for mTLS connections (see [`secured`]).
    push(
        &mut o,
        "connection_security_policy",
        match reporter {
            Reporter::Source => "unknown",
            Reporter::Destination => "none",
        },
    );
    o
}

/// The labels of an inbound request over mTLS: `base` (rendered for a plaintext peer) with the
/// peer's identity as `source_principal` and `connection_security_policy="mutual_tls"`. Done
/// on the rendered text because a connection's identity is only known after its handshake,
/// long after the cluster's label sets were rendered.
pub(super) fn secured(base: &str, source_principal: &str) -> String {
    let mut principal = String::new();
    push(&mut principal, "source_principal", source_principal);
    base.replacen("source_principal=\"unknown\"", &principal, 1)
        .replacen(
            "connection_security_policy=\"none\"",
            "connection_security_policy=\"mutual_tls\"",
            1,
        )
}

/// An interned label set, looked up by its text.
struct Interned(Arc<LabelSet>);

impl std::borrow::Borrow<str> for Interned {
    fn borrow(&self) -> &str {
        &self.0.text
    }
}
impl PartialEq for Interned {
    fn eq(&self, o: &Self) -> bool {
        self.0.text == o.0.text
    }
}
impl Eq for Interned {}
impl std::hash::Hash for Interned {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.text.hash(h)
    }
}

/// Hands out one `Arc<LabelSet>` per distinct text, so series keyed by pointer never repeat.
#[derive(Default)]
pub(super) struct Interner {
    sets: Mutex<std::collections::HashSet<Interned>>,
}

impl Interner {
    pub(super) fn get(&self, text: String) -> Arc<LabelSet> {
        let mut sets = super::lock(&self.sets);
        if let Some(s) = sets.get(text.as_str()) {
            return s.0.clone();
        }
        let set = Arc::new(LabelSet {
            text: text.into_boxed_str(),
        });
        sets.insert(Interned(set.clone()));
        set
    }
}
