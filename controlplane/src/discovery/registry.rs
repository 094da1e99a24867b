//! The service registry: Kubernetes Services with the endpoints their EndpointSlices list,
//! labelled from their pods, as the proxy's [`Service`]s.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use kube::api::DynamicObject;
use mesh_proxy_config::{Endpoint, Service, ServicePort};
use serde_json::Value;

/// What the registry needs of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub workload: String,
    pub service_account: String,
    pub ip: Option<IpAddr>,
}

impl PodFacts {
    pub fn from_object(pod: &DynamicObject) -> PodFacts {
        let meta = &pod.metadata;
        let as_json = serde_json::json!({
            "kind": "Pod",
            "metadata": {
                "name": meta.name,
                "generateName": meta.generate_name,
                "labels": meta.labels,
            },
        });
        PodFacts {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            workload: mesh_inject::workload::workload_name(&as_json),
            service_account: pod.data["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            ip: pod.data["status"]["podIP"]
                .as_str()
                .and_then(|ip| ip.parse().ok()),
        }
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// `<name>.<ns>.svc.<domain>`.
pub fn service_host(name: &str, namespace: &str, domain: &str) -> String {
    format!("{name}.{namespace}.svc.{domain}")
}

fn ports(spec: &Value) -> Vec<ServicePort> {
    spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["protocol"].as_str().is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| {
            Some(ServicePort {
                number: u16::try_from(p["port"].as_u64()?).ok()?,
                name: text(&p["name"]).unwrap_or_default(),
                app_protocol: text(&p["appProtocol"]),
                target_port: p["targetPort"].as_u64().and_then(|t| u16::try_from(t).ok()),
            })
        })
        .collect()
}

/// The endpoints of the slices, ready ones only, labelled from their pods.
fn endpoints(
    slices: &[&DynamicObject],
    pods_by_ip: &HashMap<IpAddr, Arc<PodFacts>>,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        let ports: BTreeMap<String, u16> = slice.data["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    text(&p["name"]).unwrap_or_default(),
                    u16::try_from(p["port"].as_u64()?).ok()?,
                ))
            })
            .collect();
        for endpoint in slice.data["endpoints"].as_array().into_iter().flatten() {
            if endpoint["conditions"]["ready"].as_bool() == Some(false) {
                continue;
            }
            for address in endpoint["addresses"].as_array().into_iter().flatten() {
                let Some(ip) = address.as_str().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let pod = pods_by_ip.get(&ip);
                out.push(Endpoint {
                    address: Some(ip),
                    port: None,
                    ports: ports.clone(),
                    labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
                    workload: pod.map(|p| p.workload.clone()),
                    namespace: pod.map(|p| p.namespace.clone()),
                    weight: None,
                    // What a client proxy checks the endpoint's certificate against.
                    service_account: pod.map(|p| p.service_account.clone()),
                    ..Endpoint::default()
                });
            }
        }
    }
    out.sort_by_key(|e| e.address);
    out
}

/// A Kubernetes Service as the proxies see it.
pub fn service(
    svc: &DynamicObject,
    slices: &[&DynamicObject],
    pods_by_ip: &HashMap<IpAddr, Arc<PodFacts>>,
    domain: &str,
) -> Service {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let spec = &svc.data["spec"];
    let addresses = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&spec["clusterIP"]))
        .filter_map(|ip| ip.as_str().and_then(|ip| ip.parse::<IpAddr>().ok()))
        .fold(Vec::new(), |mut all, ip| {
            if !all.contains(&ip) {
                all.push(ip);
            }
            all
        });
    Service {
        host: service_host(&name, &namespace, domain),
        aliases: vec![
            name.clone(),
            format!("{name}.{namespace}"),
            format!("{name}.{namespace}.svc"),
        ],
        name: Some(name),
        namespace: Some(namespace),
        addresses,
        ports: ports(spec),
        endpoints: endpoints(slices, pods_by_ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("object")
    }

    #[test]
    fn a_service_with_its_ready_endpoints_labelled_from_their_pods() {
        let svc = object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [
                {"name": "http", "port": 9080, "targetPort": 9080, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ]},
        }));
        let slice = object(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "reviews-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "reviews"}},
            "ports": [{"name": "http", "port": 9080}],
            "endpoints": [
                {"addresses": ["10.244.0.7"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.8"], "conditions": {"ready": false}},
            ],
        }));
        let pod = object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "reviews-v2-5d7b4547c6-x2x9q", "generateName": "reviews-v2-5d7b4547c6-", "namespace": "shop",
                         "labels": {"app": "reviews", "version": "v2", "pod-template-hash": "5d7b4547c6"}},
            "spec": {"serviceAccountName": "bookinfo-reviews"},
            "status": {"podIP": "10.244.0.7"},
        }));
        let facts = PodFacts::from_object(&pod);
        assert_eq!(facts.workload, "reviews-v2");
        let pods = HashMap::from([(facts.ip.expect("ip"), Arc::new(facts))]);
        let service = service(&svc, &[&slice], &pods, "cluster.local");
        assert_eq!(service.host, "reviews.shop.svc.cluster.local");
        assert_eq!(
            service.aliases,
            ["reviews", "reviews.shop", "reviews.shop.svc"]
        );
        assert_eq!(
            service.addresses,
            ["10.96.0.20".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(service.ports.len(), 1, "UDP ports are not the proxy's");
        assert_eq!(
            service.endpoints.len(),
            1,
            "not-ready endpoints are left out"
        );
        let endpoint = &service.endpoints[0];
        assert_eq!(endpoint.ports["http"], 9080);
        assert_eq!(endpoint.labels["version"], "v2");
        assert_eq!(endpoint.workload.as_deref(), Some("reviews-v2"));
    }
}
