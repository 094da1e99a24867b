//! Everything meshd knows, turned into the resources proxies receive: built whole from the
//! watched objects after each (debounced) burst of changes. Each resource is serialised once
//! and shared by every proxy that may see it; its version is a hash of its body, so an
//! unchanged object keeps its version across rebuilds and meshd restarts.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::Value;

use super::convert;
use super::registry::{self, PodFacts};

/// The kinds meshd watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Pod,
    Namespace,
    VirtualService,
    DestinationRule,
    Gateway,
    Sidecar,
}

/// The watched objects, by kind.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub objects: HashMap<Kind, Vec<Arc<DynamicObject>>>,
}

impl Snapshot {
    pub fn of(&self, kind: Kind) -> &[Arc<DynamicObject>] {
        self.objects
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// The mesh config's settings discovery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    pub domain: String,
    /// Where mesh-wide defaults live (a Sidecar here without selector applies everywhere).
    pub root_namespace: String,
    pub registry_only: bool,
}

/// Who may see an object: Istio's `exportTo` (`*` everyone, `.` its own namespace, `~` no one,
/// or namespace names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    All,
    Namespaces(Vec<String>),
}

impl Export {
    fn parse(values: Option<&Value>, own: &str) -> Export {
        let Some(list) = values.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
            return Export::All;
        };
        let mut namespaces = Vec::new();
        for v in list.iter().filter_map(Value::as_str) {
            match v {
                "*" => return Export::All,
                "." => namespaces.push(own.to_owned()),
                "~" => {}
                ns => namespaces.push(ns.to_owned()),
            }
        }
        Export::Namespaces(namespaces)
    }

    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Export::All => true,
            Export::Namespaces(list) => list.iter().any(|n| n == namespace),
        }
    }
}

/// One resource as proxies receive it.
#[derive(Debug, Clone)]
pub struct Published {
    pub name: Arc<str>,
    pub namespace: String,
    /// The hosts it is about (a Service's host, a VirtualService's hosts, a rule's host).
    pub hosts: Vec<String>,
    /// For VirtualServices: the gateways they bind to (`ns/name`, or `mesh`).
    pub gateways: Vec<String>,
    pub export: Export,
    pub version: Arc<str>,
    pub body: Bytes,
}

pub fn version_of(body: &[u8]) -> Arc<str> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    Arc::from(format!("{:016x}", hasher.finish()))
}

fn publish<T: Serialize>(
    name: String,
    namespace: &str,
    hosts: Vec<String>,
    gateways: Vec<String>,
    export: Export,
    value: &T,
) -> Option<Published> {
    let body = Bytes::from(serde_json::to_vec(value).ok()?);
    Some(Published {
        name: Arc::from(name),
        namespace: namespace.to_owned(),
        hosts,
        gateways,
        export,
        version: version_of(&body),
        body,
    })
}

/// An object that could not be given to the proxies, or only partly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub message: String,
    /// Skipped whole (true) or sent without some fields (false).
    pub skipped: bool,
}

/// A Sidecar resource: which workloads it applies to and what they may reach.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarScope {
    pub id: String,
    pub namespace: String,
    pub selector: Option<BTreeMap<String, String>>,
    /// `ns/host` patterns of its egress listeners; empty means no restriction.
    pub egress_hosts: Vec<String>,
    pub registry_only: Option<bool>,
}

/// A Gateway: the proxies it selects and the servers they listen with.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayScope {
    /// `ns/name`, how VirtualServices bind to it.
    pub id: String,
    pub selector: BTreeMap<String, String>,
    /// (port number, protocol, `ns/host` patterns).
    pub servers: Vec<(u16, String, Vec<String>)>,
}

/// A Service's host, pod selector and ports.
pub type Selector = (
    String,
    BTreeMap<String, String>,
    Vec<mesh_proxy_config::ServicePort>,
);

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub services: Vec<Published>,
    pub virtual_services: Vec<Published>,
    pub destination_rules: Vec<Published>,
    pub sidecars: Vec<SidecarScope>,
    pub gateways: Vec<GatewayScope>,
    /// Per namespace, its Services by the labels they select (a Service selects pods of its
    /// own namespace only), for a proxy's inbound ports.
    pub selectors: HashMap<String, Vec<Selector>>,
    pub problems: Vec<Problem>,
    pub mesh: Option<MeshSettings>,
}

fn name_ns(o: &DynamicObject) -> (String, String) {
    (
        o.metadata.name.clone().unwrap_or_default(),
        o.metadata.namespace.clone().unwrap_or_default(),
    )
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl Model {
    pub fn build(snapshot: &Snapshot, mesh: &MeshSettings) -> Model {
        let domain = mesh.domain.as_str();
        let mut model = Model {
            mesh: Some(mesh.clone()),
            ..Model::default()
        };
        let pods_by_ip: HashMap<IpAddr, PodFacts> = snapshot
            .of(Kind::Pod)
            .iter()
            .map(|p| PodFacts::from_object(p))
            .filter_map(|p| p.ip.map(|ip| (ip, p)))
            .collect();
        let mut slices: HashMap<(String, String), Vec<&DynamicObject>> = HashMap::new();
        for slice in snapshot.of(Kind::EndpointSlice) {
            let labels = slice.metadata.labels.clone().unwrap_or_default();
            if let Some(service) = labels.get("kubernetes.io/service-name") {
                let ns = slice.metadata.namespace.clone().unwrap_or_default();
                slices.entry((ns, service.clone())).or_default().push(slice);
            }
        }
        for svc in snapshot.of(Kind::Service) {
            let (name, ns) = name_ns(svc);
            let of_service = slices
                .get(&(ns.clone(), name.clone()))
                .cloned()
                .unwrap_or_default();
            let service = registry::service(svc, &of_service, &pods_by_ip, domain);
            let annotations = svc.metadata.annotations.clone().unwrap_or_default();
            let export_to: Option<Value> = annotations
                .get("networking.istio.io/exportTo")
                .map(|v| Value::from(v.split(',').map(str::trim).collect::<Vec<_>>()));
            let export = Export::parse(export_to.as_ref(), &ns);
            let selector = string_map(&svc.data["spec"]["selector"]);
            if !selector.is_empty() {
                model.selectors.entry(ns.clone()).or_default().push((
                    service.host.clone(),
                    selector,
                    service.ports.clone(),
                ));
            }
            let host = service.host.clone();
            if let Some(p) = publish(host.clone(), &ns, vec![host], vec![], export, &service) {
                model.services.push(p);
            }
        }
        for vs in snapshot.of(Kind::VirtualService) {
            let (name, ns) = name_ns(vs);
            let spec = &vs.data["spec"];
            match convert::virtual_service(spec, &name, &ns, domain) {
                Ok(converted) => {
                    model.note_ignored(Kind::VirtualService, &ns, &name, &converted.ignored);
                    let gateways = converted
                        .value
                        .gateways
                        .iter()
                        .map(|g| qualify_gateway(g, &ns))
                        .collect::<Vec<_>>();
                    let mut value = converted.value;
                    value.gateways = gateways.clone();
                    let hosts = value.hosts.clone();
                    let export = Export::parse(spec.get("exportTo"), &ns);
                    if let Some(p) =
                        publish(format!("{ns}/{name}"), &ns, hosts, gateways, export, &value)
                    {
                        model.virtual_services.push(p);
                    }
                }
                Err(e) => model.skip(Kind::VirtualService, &ns, &name, e.to_string()),
            }
        }
        for dr in snapshot.of(Kind::DestinationRule) {
            let (name, ns) = name_ns(dr);
            let spec = &dr.data["spec"];
            match convert::destination_rule(spec, &name, &ns, domain) {
                Ok(converted) => {
                    model.note_ignored(Kind::DestinationRule, &ns, &name, &converted.ignored);
                    let hosts = vec![converted.value.host.clone()];
                    let export = Export::parse(spec.get("exportTo"), &ns);
                    if let Some(p) = publish(
                        format!("{ns}/{name}"),
                        &ns,
                        hosts,
                        vec![],
                        export,
                        &converted.value,
                    ) {
                        model.destination_rules.push(p);
                    }
                }
                Err(e) => model.skip(Kind::DestinationRule, &ns, &name, e.to_string()),
            }
        }
        for sidecar in snapshot.of(Kind::Sidecar) {
            let (name, ns) = name_ns(sidecar);
            let spec = &sidecar.data["spec"];
            let selector = spec["workloadSelector"]["labels"]
                .as_object()
                .map(|_| string_map(&spec["workloadSelector"]["labels"]));
            let egress_hosts = spec["egress"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["hosts"].as_array().cloned().unwrap_or_default())
                .filter_map(|h| h.as_str().map(|h| resolve_egress_host(h, &ns)))
                .collect();
            let registry_only = spec["outboundTrafficPolicy"]["mode"]
                .as_str()
                .map(|m| m == "REGISTRY_ONLY");
            model.sidecars.push(SidecarScope {
                id: format!("{ns}/{name}"),
                namespace: ns,
                selector,
                egress_hosts,
                registry_only,
            });
        }
        for gateway in snapshot.of(Kind::Gateway) {
            let (name, ns) = name_ns(gateway);
            let spec = &gateway.data["spec"];
            let servers = spec["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let number = u16::try_from(s["port"]["number"].as_u64()?).ok()?;
                    let protocol = s["port"]["protocol"].as_str().unwrap_or("HTTP").to_owned();
                    let hosts = s["hosts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|h| resolve_egress_host(h, &ns))
                        .collect();
                    Some((number, protocol, hosts))
                })
                .collect();
            model.gateways.push(GatewayScope {
                id: format!("{ns}/{name}"),
                selector: string_map(&spec["selector"]),
                servers,
            });
        }
        model.services.sort_by(|a, b| a.name.cmp(&b.name));
        model.virtual_services.sort_by(|a, b| a.name.cmp(&b.name));
        model.destination_rules.sort_by(|a, b| a.name.cmp(&b.name));
        model.sidecars.sort_by(|a, b| a.id.cmp(&b.id));
        model.gateways.sort_by(|a, b| a.id.cmp(&b.id));
        model
    }

    fn skip(&mut self, kind: Kind, namespace: &str, name: &str, message: String) {
        self.problems.push(Problem {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message,
            skipped: true,
        });
    }

    fn note_ignored(&mut self, kind: Kind, namespace: &str, name: &str, ignored: &[String]) {
        if ignored.is_empty() {
            return;
        }
        self.problems.push(Problem {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: format!(
                "not implemented by mesh-proxy, ignored: {}",
                ignored.join(", ")
            ),
            skipped: false,
        });
    }
}

/// `name` → `ns/name` for a VirtualService's gateway reference; `mesh` stays.
fn qualify_gateway(gateway: &str, namespace: &str) -> String {
    if gateway == "mesh" || gateway.contains('/') {
        gateway.to_owned()
    } else {
        format!("{namespace}/{gateway}")
    }
}

/// A Sidecar egress or Gateway server host: `host` alone means `*/host`, `./host` the
/// object's own namespace.
fn resolve_egress_host(host: &str, namespace: &str) -> String {
    match host.split_once('/') {
        Some((".", h)) => format!("{namespace}/{h}"),
        Some(_) => host.to_owned(),
        None => format!("*/{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn object(value: Value) -> Arc<DynamicObject> {
        Arc::new(serde_json::from_value(value).expect("object"))
    }

    fn mesh() -> MeshSettings {
        MeshSettings {
            domain: "cluster.local".to_owned(),
            root_namespace: "mesh-system".to_owned(),
            registry_only: false,
        }
    }

    #[test]
    fn unchanged_objects_keep_their_version_and_invalid_ones_are_skipped_alone() {
        let good = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}),
        );
        let bad = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "broken", "namespace": "shop"},
            "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}], "timeout": "soon"}]}}),
        );
        let mut snapshot = Snapshot::default();
        snapshot
            .objects
            .insert(Kind::VirtualService, vec![good.clone(), bad]);
        let first = Model::build(&snapshot, &mesh());
        assert_eq!(first.virtual_services.len(), 1);
        assert_eq!(&*first.virtual_services[0].name, "shop/reviews");
        assert_eq!(first.problems.len(), 1);
        assert!(first.problems[0].skipped);
        assert_eq!(first.problems[0].name, "broken");
        assert!(
            first.problems[0].message.contains("spec.http[0].timeout"),
            "{:?}",
            first.problems
        );
        snapshot.objects.insert(Kind::VirtualService, vec![good]);
        let second = Model::build(&snapshot, &mesh());
        assert_eq!(
            first.virtual_services[0].version,
            second.virtual_services[0].version
        );
    }

    #[test]
    fn export_to_is_read_as_istio_does() {
        assert_eq!(Export::parse(None, "shop"), Export::All);
        assert_eq!(
            Export::parse(Some(&json!(["."])), "shop"),
            Export::Namespaces(vec!["shop".into()])
        );
        assert_eq!(
            Export::parse(Some(&json!(["~"])), "shop"),
            Export::Namespaces(vec![])
        );
        assert_eq!(Export::parse(Some(&json!([".", "*"])), "shop"), Export::All);
        assert!(!Export::Namespaces(vec!["shop".into()]).allows("other"));
    }

    #[test]
    fn gateway_references_and_egress_hosts_are_qualified() {
        assert_eq!(
            qualify_gateway("bookinfo-gateway", "shop"),
            "shop/bookinfo-gateway"
        );
        assert_eq!(qualify_gateway("mesh", "shop"), "mesh");
        assert_eq!(resolve_egress_host("./*", "shop"), "shop/*");
        assert_eq!(
            resolve_egress_host("istio-system/*", "shop"),
            "istio-system/*"
        );
        assert_eq!(
            resolve_egress_host("*.example.com", "shop"),
            "*/*.example.com"
        );
    }
}
