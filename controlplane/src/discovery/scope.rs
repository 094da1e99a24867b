//! What one proxy may see: `exportTo`, the Sidecar resource that applies to it, and for
//! gateways the Gateways that select them; and the proxy's own settings (its node, inbound
//! ports, outbound policy and, for gateways, listeners).
//!
//! Proxies with the same [`ScopeKey`] see the same set, which is computed once per key.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_proxy_config::{
    Capture, CertificateFiles, Inbound, Listener, Node, OutboundMode, OutboundTrafficPolicy,
    Protocol, ProxyConfig, ServicePort,
};

use super::model::{body_of, version_of, MeshSettings, Model, Published, SidecarScope};
use super::security;

/// What meshd knows of a connected proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyNode {
    pub pod_name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub workload: String,
    pub gateway: bool,
    pub service_account: String,
}

/// Proxies with equal keys see the same resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub namespace: String,
    pub sidecar: Option<String>,
    /// For gateways: the Gateways that select it.
    pub gateways: Option<Vec<String>>,
}

/// Names and versions of what a proxy may see, per resource type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub services: Arc<BTreeMap<Arc<str>, Arc<str>>>,
    pub destination_rules: Arc<BTreeMap<Arc<str>, Arc<str>>>,
    pub virtual_services: Arc<BTreeMap<Arc<str>, Arc<str>>>,
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's order: a Sidecar in the proxy's namespace selecting it, then one there without a
/// selector, then one without a selector in the root namespace.
fn sidecar_for<'a>(model: &'a Model, node: &ProxyNode) -> Option<&'a SidecarScope> {
    let root = model
        .mesh
        .as_ref()
        .map(|m| m.root_namespace.as_str())
        .unwrap_or_default();
    let own = &node.namespace;
    model
        .sidecars
        .iter()
        .find(|s| {
            &s.namespace == own
                && s.selector
                    .as_ref()
                    .is_some_and(|sel| selects(sel, &node.labels))
        })
        .or_else(|| {
            model
                .sidecars
                .iter()
                .find(|s| &s.namespace == own && s.selector.is_none())
        })
        .or_else(|| {
            model
                .sidecars
                .iter()
                .find(|s| s.namespace == root && s.selector.is_none())
        })
}

pub fn scope_key(model: &Model, node: &ProxyNode) -> ScopeKey {
    if node.gateway {
        let gateways = model
            .gateways
            .iter()
            .filter(|g| !g.selector.is_empty() && selects(&g.selector, &node.labels))
            .map(|g| g.id.clone())
            .collect();
        return ScopeKey {
            namespace: node.namespace.clone(),
            sidecar: None,
            gateways: Some(gateways),
        };
    }
    ScopeKey {
        namespace: node.namespace.clone(),
        sidecar: sidecar_for(model, node).map(|s| s.id.clone()),
        gateways: None,
    }
}

/// `*` any, `*.example.com` any subdomain, else exact.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    pattern == "*"
        || pattern == host
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| suffix.starts_with('.') && host.ends_with(suffix))
}

/// Whether `ns/host` patterns admit `host` of an object in `namespace` (`.` already resolved).
fn egress_allows(patterns: &[String], proxy_ns: &str, namespace: &str, host: &str) -> bool {
    patterns.iter().any(|p| {
        let (ns, h) = p.split_once('/').unwrap_or(("*", p));
        let ns_ok = ns == "*" || ns == namespace || (ns == "." && namespace == proxy_ns);
        ns_ok && ns != "~" && host_matches(h, host)
    })
}

fn versions<'a>(items: impl Iterator<Item = &'a Published>) -> Arc<BTreeMap<Arc<str>, Arc<str>>> {
    Arc::new(items.map(|p| (p.name.clone(), p.version.clone())).collect())
}

pub fn view(model: &Model, key: &ScopeKey) -> View {
    let sidecar = key
        .sidecar
        .as_ref()
        .and_then(|id| model.sidecars.iter().find(|s| &s.id == id));
    let egress = sidecar
        .map(|s| s.egress_hosts.as_slice())
        .filter(|h| !h.is_empty());
    let reachable = |p: &Published| {
        p.export.allows(&key.namespace)
            && egress.is_none_or(|patterns| {
                p.hosts
                    .iter()
                    .any(|h| egress_allows(patterns, &key.namespace, &p.namespace, h))
            })
    };
    let services = versions(model.services.iter().filter(|p| reachable(p)));
    let visible_hosts: HashSet<&str> = model
        .services
        .iter()
        .filter(|p| services.contains_key(&p.name))
        .flat_map(|p| p.hosts.iter().map(String::as_str))
        .collect();
    let known_hosts: HashSet<&str> = model
        .services
        .iter()
        .flat_map(|p| p.hosts.iter().map(String::as_str))
        .collect();
    // A rule for a registry host goes where that host goes; one for a host outside the
    // registry (an external name) wherever the rule itself may go.
    let destination_rules = versions(model.destination_rules.iter().filter(|p| {
        let host = p.hosts.first().map(String::as_str).unwrap_or_default();
        if known_hosts.contains(host) {
            p.export.allows(&key.namespace) && visible_hosts.contains(host)
        } else {
            reachable(p)
        }
    }));
    let virtual_services = versions(model.virtual_services.iter().filter(
        |p| match &key.gateways {
            Some(gateways) => {
                p.export.allows(&key.namespace) && p.gateways.iter().any(|g| gateways.contains(g))
            }
            None => {
                (p.gateways.is_empty() || p.gateways.iter().any(|g| g == "mesh")) && reachable(p)
            }
        },
    ));
    View {
        services,
        destination_rules,
        virtual_services,
    }
}

/// The proxy's own part of its configuration (type `mesh.v1/Proxy`, name `self`): a
/// [`ProxyConfig`] without services and routes, which the other types carry.
pub fn own_settings(model: &Model, node: &ProxyNode, key: &ScopeKey) -> ProxyConfig {
    let mesh_registry_only = model.mesh.as_ref().is_some_and(|m| m.registry_only);
    let registry_only = key
        .sidecar
        .as_ref()
        .and_then(|id| model.sidecars.iter().find(|s| &s.id == id))
        .and_then(|s| s.registry_only)
        .unwrap_or(mesh_registry_only);
    let mut inbound_ports: Vec<ServicePort> = Vec::new();
    let mut inbound_service = None;
    for (host, selector, ports) in model.selectors.get(&node.namespace).into_iter().flatten() {
        if selector.is_empty() || !selects(selector, &node.labels) {
            continue;
        }
        inbound_service.get_or_insert_with(|| host.clone());
        for port in ports {
            let number = port.target_port.unwrap_or(port.number);
            if !inbound_ports.iter().any(|p| p.number == number) {
                inbound_ports.push(ServicePort {
                    number,
                    name: port.name.clone(),
                    app_protocol: port.app_protocol.clone(),
                    target_port: None,
                });
            }
        }
    }
    let listeners = key.gateways.as_ref().map(|gateways| {
        let mut listeners: Vec<Listener> = Vec::new();
        for gateway in model.gateways.iter().filter(|g| gateways.contains(&g.id)) {
            for (port, protocol, _) in &gateway.servers {
                // As Istio does: a server port that is a port of the gateway's Service listens
                // on that port's target (Gateway port 80 on a Service 80→8080 listens on 8080).
                let listen = model
                    .selectors
                    .get(&node.namespace)
                    .into_iter()
                    .flatten()
                    .filter(|(_, selector, _)| {
                        !selector.is_empty() && selects(selector, &node.labels)
                    })
                    .flat_map(|(_, _, ports)| ports.iter())
                    .find(|p| p.number == *port)
                    .and_then(|p| p.target_port)
                    .unwrap_or(*port);
                let address = SocketAddr::from(([0, 0, 0, 0], listen));
                if let Some(shared) = listeners.iter_mut().find(|l| l.address == address) {
                    // Another Gateway on the same port: served by the same listener.
                    if shared.gateway.as_deref() != Some(gateway.id.as_str())
                        && !shared.also_gateways.contains(&gateway.id)
                    {
                        shared.also_gateways.push(gateway.id.clone());
                    }
                    continue;
                }
                let protocol = match protocol.to_ascii_uppercase().as_str() {
                    "HTTP2" => Some(Protocol::Http2),
                    "GRPC" => Some(Protocol::Grpc),
                    "TCP" | "TLS" | "MONGO" => Some(Protocol::Tcp),
                    _ => Some(Protocol::Http),
                };
                listeners.push(Listener {
                    name: format!("{}:{port}", gateway.id),
                    address,
                    capture: Capture::None,
                    protocol,
                    gateway: Some(gateway.id.clone()),
                    also_gateways: Vec::new(),
                    destination: None,
                    default_endpoint: None,
                });
            }
        }
        listeners
    });
    let mesh = model
        .mesh
        .clone()
        .unwrap_or_else(|| MeshSettings::new("cluster.local", ""));
    ProxyConfig {
        node: Node {
            workload: Some(node.workload.clone()),
            namespace: Some(node.namespace.clone()),
            labels: node.labels.clone(),
            cluster: None,
            service_account: Some(node.service_account.clone()),
        },
        trust_domain: Some(mesh.trust_domain.clone()),
        // Every proxy that follows meshd has mesh-agent keeping its certificate in the default
        // directory: mutual TLS is on.
        certificates: Some(CertificateFiles::default()),
        tracing: mesh.tracing.clone(),
        access_log: mesh.access_log.clone(),
        outbound_traffic_policy: OutboundTrafficPolicy {
            mode: if registry_only {
                OutboundMode::RegistryOnly
            } else {
                OutboundMode::AllowAny
            },
        },
        listeners,
        inbound: Inbound {
            ports: inbound_ports,
            service: inbound_service,
            peer_authentication: security::peer_authentication_for(
                &model.peer_authentications,
                &node.namespace,
                &node.labels,
                &mesh.root_namespace,
                mesh.default_mtls,
            ),
            authorization_policies: security::authorization_policies_for(
                &model.authorization_policies,
                &node.namespace,
                &node.labels,
                &mesh.root_namespace,
            ),
            ..Inbound::default()
        },
        ..ProxyConfig::default()
    }
}

/// [`own_settings`] as a published resource.
pub fn own_resource(model: &Model, node: &ProxyNode, key: &ScopeKey) -> (Arc<str>, bytes::Bytes) {
    let body = body_of(&own_settings(model, node, key)).unwrap_or_default();
    (version_of(&body), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::{Kind, MeshSettings, Snapshot};
    use kube::api::DynamicObject;
    use serde_json::{json, Value};

    fn object(value: Value) -> Arc<DynamicObject> {
        Arc::new(serde_json::from_value(value).expect("object"))
    }

    fn service(name: &str, ns: &str, export: Option<&str>) -> Arc<DynamicObject> {
        let mut annotations = json!({});
        if let Some(e) = export {
            annotations["networking.istio.io/exportTo"] = json!(e);
        }
        object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"clusterIP": "10.96.0.9", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
    }

    fn vs(name: &str, ns: &str, spec: Value) -> Arc<DynamicObject> {
        object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}),
        )
    }

    fn model(objects: Vec<(Kind, Arc<DynamicObject>)>) -> Model {
        let mut snapshot = Snapshot::default();
        for (kind, o) in objects {
            snapshot.objects.entry(kind).or_default().push(o);
        }
        Model::build(
            &snapshot,
            &MeshSettings::new("cluster.local", "mesh-system"),
        )
    }

    fn node(ns: &str, app: &str) -> ProxyNode {
        ProxyNode {
            pod_name: format!("{app}-1"),
            namespace: ns.into(),
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            workload: app.into(),
            gateway: false,
            service_account: app.into(),
        }
    }

    fn names(map: &BTreeMap<Arc<str>, Arc<str>>) -> Vec<String> {
        map.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn export_to_and_sidecar_egress_limit_what_a_proxy_sees() {
        let m = model(vec![
            (Kind::Service, service("reviews", "shop", None)),
            (Kind::Service, service("secret", "vault", Some("."))),
            (Kind::Service, service("ledger", "bank", None)),
            (
                Kind::VirtualService,
                vs(
                    "reviews",
                    "shop",
                    json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
                ),
            ),
            (
                Kind::VirtualService,
                vs(
                    "edge",
                    "shop",
                    json!({"hosts": ["shop.example.com"], "gateways": ["shop-gw"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
                ),
            ),
            (
                Kind::Sidecar,
                object(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                "metadata": {"name": "default", "namespace": "shop"},
                "spec": {"egress": [{"hosts": ["./*", "mesh-system/*"]}]}}),
                ),
            ),
        ]);
        let shop = scope_key(&m, &node("shop", "web"));
        assert_eq!(shop.sidecar.as_deref(), Some("shop/default"));
        let seen = view(&m, &shop);
        assert_eq!(names(&seen.services), ["reviews.shop.svc.cluster.local"]);
        assert_eq!(
            names(&seen.virtual_services),
            ["shop/reviews"],
            "the gateway's routes are not the sidecar's"
        );
        let other = view(&m, &scope_key(&m, &node("bank", "teller")));
        assert_eq!(
            names(&other.services),
            [
                "ledger.bank.svc.cluster.local",
                "reviews.shop.svc.cluster.local"
            ],
            "vault's service is exported to its own namespace only"
        );
    }

    #[test]
    fn a_gateway_sees_the_routes_bound_to_the_gateways_selecting_it_and_listens_on_their_ports() {
        let m = model(vec![
            (Kind::Service, service("reviews", "shop", None)),
            (
                Kind::Gateway,
                object(
                    json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                "metadata": {"name": "shop-gw", "namespace": "shop"},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}),
                ),
            ),
            (
                Kind::VirtualService,
                vs(
                    "edge",
                    "shop",
                    json!({"hosts": ["shop.example.com"], "gateways": ["shop-gw"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
                ),
            ),
            (
                Kind::VirtualService,
                vs(
                    "reviews",
                    "shop",
                    json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
                ),
            ),
        ]);
        let gw = ProxyNode {
            labels: BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]),
            gateway: true,
            ..node("mesh-system", "mesh-ingressgateway")
        };
        let key = scope_key(&m, &gw);
        assert_eq!(key.gateways, Some(vec!["shop/shop-gw".to_owned()]));
        assert_eq!(names(&view(&m, &key).virtual_services), ["shop/edge"]);
        let settings = own_settings(&m, &gw, &key);
        let listeners = settings.listeners.expect("gateway listeners");
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].address.port(), 8080);
        assert_eq!(listeners[0].gateway.as_deref(), Some("shop/shop-gw"));
    }

    #[test]
    fn own_settings_carry_the_node_and_the_inbound_ports_of_the_services_selecting_it() {
        let m = model(vec![(Kind::Service, service("reviews", "shop", None))]);
        let n = node("shop", "reviews");
        let settings = own_settings(&m, &n, &scope_key(&m, &n));
        assert_eq!(settings.node.workload.as_deref(), Some("reviews"));
        assert_eq!(settings.inbound.ports.len(), 1);
        assert_eq!(
            settings.inbound.ports[0].number, 8080,
            "the container's port"
        );
        assert_eq!(
            settings.inbound.service.as_deref(),
            Some("reviews.shop.svc.cluster.local")
        );
        assert!(
            settings.listeners.is_none(),
            "a sidecar uses the capture listeners"
        );
    }

    #[test]
    fn only_the_services_of_its_own_namespace_select_a_proxy() {
        let other = object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bank"},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "reviews"}, "ports": [{"name": "grpc", "port": 9090, "targetPort": 9091}]}}));
        let m = model(vec![
            (Kind::Service, other),
            (Kind::Service, service("reviews", "shop", None)),
        ]);
        let n = node("shop", "reviews");
        let settings = own_settings(&m, &n, &scope_key(&m, &n));
        let ports: Vec<u16> = settings.inbound.ports.iter().map(|p| p.number).collect();
        assert_eq!(ports, [8080], "bank's reviews selects bank's pods only");
        assert_eq!(
            settings.inbound.service.as_deref(),
            Some("reviews.shop.svc.cluster.local")
        );
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("*", "a.b"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches(
            "reviews.shop.svc.cluster.local",
            "reviews.shop.svc.cluster.local"
        ));
    }
}
