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

use super::registry::{self, PodFacts};
use super::{convert, ingress, security, service_entry};
use mesh_proxy_config::{AccessLog, MtlsMode, Tracing};

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
    Ingress,
    PeerAuthentication,
    AuthorizationPolicy,
    ServiceEntry,
    WorkloadEntry,
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
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    pub domain: String,
    /// Where mesh-wide defaults live (a Sidecar here without selector applies everywhere).
    pub root_namespace: String,
    pub registry_only: bool,
    /// The SPIFFE trust domain (mesh config `trustDomain`).
    pub trust_domain: String,
    /// The mode where no PeerAuthentication says (mesh config `defaultMtlsMode`).
    pub default_mtls: MtlsMode,
    /// Mesh config `enableTracing` / `traceSampling` / `tracingCollector`.
    pub tracing: Option<Tracing>,
    /// Mesh config `accessLogFile` / `accessLogEncoding`.
    pub access_log: Option<AccessLog>,
}

impl MeshSettings {
    /// Defaults for `domain` and `root_namespace`: no tracing or access logs, PERMISSIVE.
    pub fn new(domain: &str, root_namespace: &str) -> MeshSettings {
        MeshSettings {
            domain: domain.to_owned(),
            root_namespace: root_namespace.to_owned(),
            registry_only: false,
            trust_domain: "cluster.local".to_owned(),
            default_mtls: MtlsMode::Permissive,
            tracing: None,
            access_log: None,
        }
    }
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

/// The JSON of `value` without its null fields: smaller, and what the proxy's types read back
/// (a missing optional field is its default; some fields refuse an explicit null).
pub fn body_of<T: Serialize>(value: &T) -> Option<Bytes> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|_, child| !child.is_null());
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).ok()?;
    strip(&mut json);
    serde_json::to_vec(&json).ok().map(Bytes::from)
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
    let body = body_of(value)?;
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
    pub peer_authentications: Vec<security::Scoped<mesh_proxy_config::PeerAuthentication>>,
    pub authorization_policies: Vec<security::Scoped<mesh_proxy_config::AuthorizationPolicy>>,
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

/// A Service as proxies receive it, and the pods its endpoints were labelled from.
#[derive(Clone)]
struct BuiltService {
    published: Option<Published>,
    selector: Option<Selector>,
    pods: Vec<(IpAddr, Option<Arc<PodFacts>>)>,
}

/// A VirtualService or DestinationRule: published (and the fields it lost), or skipped.
#[derive(Clone)]
enum Route {
    Published(Published, Vec<String>),
    Skipped(String),
    Unpublishable,
}

/// A Service, its EndpointSlices, and what they made.
type ReusedService = (Arc<DynamicObject>, Vec<Arc<DynamicObject>>, BuiltService);

/// What the last build made of each object, for the next one: an object that did not change
/// (the watch store keeps the same `Arc` for it) is not converted and serialised again. A
/// Service is rebuilt when it, its EndpointSlices, or a pod behind one of its endpoints changed.
#[derive(Default)]
pub struct Reuse {
    domain: String,
    pods: HashMap<usize, (Arc<DynamicObject>, Arc<PodFacts>)>,
    services: HashMap<usize, ReusedService>,
    routes: HashMap<(Kind, usize), (Arc<DynamicObject>, Route)>,
}

fn address(o: &Arc<DynamicObject>) -> usize {
    Arc::as_ptr(o) as usize
}

fn build_service(
    svc: &DynamicObject,
    slices: &[&DynamicObject],
    pods_by_ip: &HashMap<IpAddr, Arc<PodFacts>>,
    domain: &str,
) -> BuiltService {
    let (_, ns) = name_ns(svc);
    let service = registry::service(svc, slices, pods_by_ip, domain);
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let export_to: Option<Value> = annotations
        .get("networking.istio.io/exportTo")
        .map(|v| Value::from(v.split(',').map(str::trim).collect::<Vec<_>>()));
    let export = Export::parse(export_to.as_ref(), &ns);
    let selector = string_map(&svc.data["spec"]["selector"]);
    let selector =
        (!selector.is_empty()).then(|| (service.host.clone(), selector, service.ports.clone()));
    let pods = service
        .endpoints
        .iter()
        .filter_map(|e| e.address)
        .map(|ip| (ip, pods_by_ip.get(&ip).cloned()))
        .collect();
    let host = service.host.clone();
    BuiltService {
        published: publish(host.clone(), &ns, vec![host], vec![], export, &service),
        selector,
        pods,
    }
}

fn build_virtual_service(vs: &DynamicObject, domain: &str) -> Route {
    let (name, ns) = name_ns(vs);
    let spec = &vs.data["spec"];
    match convert::virtual_service(spec, &name, &ns, domain) {
        Ok(converted) => {
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
            match publish(format!("{ns}/{name}"), &ns, hosts, gateways, export, &value) {
                Some(p) => Route::Published(p, converted.ignored),
                None => Route::Unpublishable,
            }
        }
        Err(e) => Route::Skipped(e.to_string()),
    }
}

fn build_destination_rule(dr: &DynamicObject, domain: &str) -> Route {
    let (name, ns) = name_ns(dr);
    let spec = &dr.data["spec"];
    match convert::destination_rule(spec, &name, &ns, domain) {
        Ok(converted) => {
            let hosts = vec![converted.value.host.clone()];
            let export = Export::parse(spec.get("exportTo"), &ns);
            match publish(
                format!("{ns}/{name}"),
                &ns,
                hosts,
                vec![],
                export,
                &converted.value,
            ) {
                Some(p) => Route::Published(p, converted.ignored),
                None => Route::Unpublishable,
            }
        }
        Err(e) => Route::Skipped(e.to_string()),
    }
}

impl Model {
    pub fn build(snapshot: &Snapshot, mesh: &MeshSettings) -> Model {
        Model::build_reusing(snapshot, mesh, &mut Reuse::default())
    }

    /// [`Model::build`], converting only the objects that changed since the build `reuse`
    /// comes from (and keeping this build's conversions in it for the next).
    pub fn build_reusing(snapshot: &Snapshot, mesh: &MeshSettings, reuse: &mut Reuse) -> Model {
        let domain = mesh.domain.as_str();
        let mut old = std::mem::take(reuse);
        if old.domain != domain {
            old = Reuse::default();
        }
        reuse.domain = domain.to_owned();
        let mut model = Model {
            mesh: Some(mesh.clone()),
            ..Model::default()
        };
        let mut pods_by_ip: HashMap<IpAddr, Arc<PodFacts>> = HashMap::new();
        for pod in snapshot.of(Kind::Pod) {
            let facts = match old.pods.remove(&address(pod)) {
                Some((_, facts)) => facts,
                None => Arc::new(PodFacts::from_object(pod)),
            };
            if let Some(ip) = facts.ip {
                pods_by_ip.insert(ip, facts.clone());
            }
            reuse.pods.insert(address(pod), (pod.clone(), facts));
        }
        let mut slices: HashMap<(String, String), Vec<&Arc<DynamicObject>>> = HashMap::new();
        for slice in snapshot.of(Kind::EndpointSlice) {
            let labels = slice.metadata.labels.clone().unwrap_or_default();
            if let Some(service) = labels.get("kubernetes.io/service-name") {
                let ns = slice.metadata.namespace.clone().unwrap_or_default();
                slices.entry((ns, service.clone())).or_default().push(slice);
            }
        }
        for svc in snapshot.of(Kind::Service) {
            let (name, ns) = name_ns(svc);
            let of_service = slices.get(&(ns.clone(), name)).cloned().unwrap_or_default();
            let built = match old.services.remove(&address(svc)) {
                Some((_, held, built))
                    if held.len() == of_service.len()
                        && held.iter().zip(&of_service).all(|(a, b)| Arc::ptr_eq(a, b))
                        && built.pods.iter().all(|(ip, facts)| {
                            pods_by_ip.get(ip).map(|f| &**f) == facts.as_deref()
                        }) =>
                {
                    built
                }
                _ => {
                    let refs: Vec<&DynamicObject> = of_service.iter().map(|s| &***s).collect();
                    build_service(svc, &refs, &pods_by_ip, domain)
                }
            };
            if let Some(selector) = &built.selector {
                model
                    .selectors
                    .entry(ns.clone())
                    .or_default()
                    .push(selector.clone());
            }
            if let Some(p) = &built.published {
                model.services.push(p.clone());
            }
            let held = of_service.into_iter().cloned().collect();
            reuse
                .services
                .insert(address(svc), (svc.clone(), held, built));
        }
        for kind in [Kind::VirtualService, Kind::DestinationRule] {
            for object in snapshot.of(kind) {
                let route = match old.routes.remove(&(kind, address(object))) {
                    Some((_, route)) => route,
                    None if kind == Kind::VirtualService => build_virtual_service(object, domain),
                    None => build_destination_rule(object, domain),
                };
                let (name, ns) = name_ns(object);
                match &route {
                    Route::Published(p, ignored) => {
                        model.note_ignored(kind, &ns, &name, ignored);
                        if kind == Kind::VirtualService {
                            model.virtual_services.push(p.clone());
                        } else {
                            model.destination_rules.push(p.clone());
                        }
                    }
                    Route::Skipped(message) => model.skip(kind, &ns, &name, message.clone()),
                    Route::Unpublishable => {}
                }
                reuse
                    .routes
                    .insert((kind, address(object)), (object.clone(), route));
            }
        }
        let all_pods: Vec<Arc<PodFacts>> = pods_by_ip.values().cloned().collect();
        for entry in snapshot.of(Kind::ServiceEntry) {
            let (name, ns) = name_ns(entry);
            match service_entry::services(entry, snapshot.of(Kind::WorkloadEntry), &all_pods) {
                Ok(services) => {
                    let export = Export::parse(entry.data["spec"].get("exportTo"), &ns);
                    for service in services {
                        let host = service.host.clone();
                        if let Some(p) = publish(
                            host.clone(),
                            &ns,
                            vec![host],
                            vec![],
                            export.clone(),
                            &service,
                        ) {
                            model.services.push(p);
                        }
                    }
                }
                Err(why) => model.skip(Kind::ServiceEntry, &ns, &name, why),
            }
        }
        for o in snapshot.of(Kind::PeerAuthentication) {
            let (name, ns) = name_ns(o);
            match security::peer_authentication(o) {
                Ok(p) => model.peer_authentications.push(p),
                Err(e) => model.skip(Kind::PeerAuthentication, &ns, &name, e.to_string()),
            }
        }
        for o in snapshot.of(Kind::AuthorizationPolicy) {
            let (name, ns) = name_ns(o);
            match security::authorization_policy(o) {
                Ok(p) => model.authorization_policies.push(p),
                Err(e) => model.skip(Kind::AuthorizationPolicy, &ns, &name, e.to_string()),
            }
        }
        model
            .peer_authentications
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        model
            .authorization_policies
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
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
        for ingress in snapshot
            .of(Kind::Ingress)
            .iter()
            .filter(|i| ingress::is_ours(i))
        {
            let (name, ns) = name_ns(ingress);
            model.gateways.push(GatewayScope {
                id: ingress::gateway_id(&ns, &name),
                selector: BTreeMap::from([(
                    ingress::SELECTOR.0.to_owned(),
                    ingress::SELECTOR.1.to_owned(),
                )]),
                servers: vec![(80, "HTTP".to_owned(), vec!["*/*".to_owned()])],
            });
            for (vs_name, spec) in ingress::virtual_services(ingress) {
                match convert::virtual_service(&spec, &vs_name, &ns, domain) {
                    Ok(converted) => {
                        let value = converted.value;
                        let gateways = value.gateways.clone();
                        let hosts = value.hosts.clone();
                        if let Some(p) = publish(
                            format!("{ns}/{vs_name}"),
                            &ns,
                            hosts,
                            gateways,
                            Export::All,
                            &value,
                        ) {
                            model.virtual_services.push(p);
                        }
                    }
                    Err(e) => model.skip(Kind::Ingress, &ns, &name, e.to_string()),
                }
            }
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
        MeshSettings::new("cluster.local", "mesh-system")
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

    fn summary(m: &Model) -> Vec<String> {
        let mut out: Vec<String> = [&m.services, &m.virtual_services, &m.destination_rules]
            .iter()
            .flat_map(|items| items.iter())
            .map(|p| {
                format!(
                    "{} {} {}",
                    p.name,
                    p.version,
                    String::from_utf8_lossy(&p.body)
                )
            })
            .collect();
        out.extend(m.problems.iter().map(|p| format!("{p:?}")));
        let mut selectors: Vec<_> = m.selectors.iter().collect();
        selectors.sort_by(|a, b| a.0.cmp(b.0));
        out.push(format!("{selectors:?}"));
        out
    }

    #[test]
    fn a_build_reusing_the_last_one_converts_only_what_changed_and_equals_a_fresh_one() {
        let service = object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.9", "selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}));
        let slice = object(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "reviews-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "reviews"}},
            "ports": [{"name": "http", "port": 9080}],
            "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": true}}]}),
        );
        let pod = |version: &str| {
            object(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "reviews-1", "namespace": "shop", "labels": {"app": "reviews", "version": version}},
                "spec": {"serviceAccountName": "reviews"}, "status": {"podIP": "10.244.0.7"}}))
        };
        let route = |timeout: &str| {
            object(
                json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "shop"},
                "spec": {"hosts": ["reviews"], "http": [{"timeout": timeout, "route": [{"destination": {"host": "reviews"}}]}]}}),
            )
        };
        let rule = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN", "warmupDurationSecs": "10s"}}}}),
        );
        let snapshot = |pod: Arc<DynamicObject>, route: Arc<DynamicObject>| {
            let mut s = Snapshot::default();
            s.objects.insert(Kind::Service, vec![service.clone()]);
            s.objects.insert(Kind::EndpointSlice, vec![slice.clone()]);
            s.objects.insert(Kind::Pod, vec![pod]);
            s.objects.insert(Kind::VirtualService, vec![route]);
            s.objects.insert(Kind::DestinationRule, vec![rule.clone()]);
            s
        };
        let mut reuse = Reuse::default();
        let first = snapshot(pod("v1"), route("soon"));
        let built = Model::build_reusing(&first, &mesh(), &mut reuse);
        assert_eq!(summary(&built), summary(&Model::build(&first, &mesh())));
        assert_eq!(
            built.problems.len(),
            2,
            "the invalid route and the rule's ignored field"
        );

        // The same objects: nothing is converted again.
        let again = Model::build_reusing(&first, &mesh(), &mut reuse);
        assert_eq!(summary(&again), summary(&built));
        assert_eq!(
            again.services[0].body.as_ptr(),
            built.services[0].body.as_ptr()
        );

        // The pod behind the endpoint relabelled, the route fixed: both show.
        let second = snapshot(pod("v2"), route("5s"));
        let rebuilt = Model::build_reusing(&second, &mesh(), &mut reuse);
        assert_eq!(summary(&rebuilt), summary(&Model::build(&second, &mesh())));
        let body: Value = serde_json::from_slice(&rebuilt.services[0].body).expect("JSON");
        assert_eq!(body["endpoints"][0]["labels"]["version"], "v2");
        assert_eq!(rebuilt.virtual_services.len(), 1);
        assert_eq!(
            rebuilt.destination_rules[0].body.as_ptr(),
            built.destination_rules[0].body.as_ptr(),
            "the unchanged rule is reused"
        );

        // Another cluster domain changes every host.
        let other = MeshSettings {
            domain: "example.org".into(),
            ..mesh()
        };
        let elsewhere = Model::build_reusing(&second, &other, &mut reuse);
        assert_eq!(summary(&elsewhere), summary(&Model::build(&second, &other)));
        assert_eq!(&*elsewhere.services[0].name, "reviews.shop.svc.example.org");
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
