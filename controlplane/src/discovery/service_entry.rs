//! ServiceEntries as the proxies' services: each host a service with the entry's addresses and
//! ports, its endpoints from the entry (`endpoints`) or from the pods and WorkloadEntries its
//! `workloadSelector` selects in its namespace. Hosts that need DNS resolution, or that are
//! only passed through (resolution NONE without endpoints), have no endpoints mesh-proxy could
//! use: they are reported and left out (under ALLOW_ANY their traffic is passed through).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use kube::api::DynamicObject;
use mesh_proxy_config::{Endpoint, Service, ServicePort};
use serde_json::Value;

use super::registry::PodFacts;

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn ports(spec: &Value) -> Vec<ServicePort> {
    spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                number: u16::try_from(p["number"].as_u64()?).ok()?,
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                app_protocol: p["protocol"].as_str().map(str::to_lowercase),
                target_port: p["targetPort"].as_u64().and_then(|t| u16::try_from(t).ok()),
            })
        })
        .collect()
}

/// An endpoint of a WorkloadEntry (or an inline `endpoints` entry, the same shape).
fn workload_endpoint(spec: &Value, namespace: &str) -> Result<Endpoint, String> {
    let address = spec["address"].as_str().unwrap_or_default();
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("endpoint address {address:?} is not an IP; DNS resolution is not implemented by mesh-proxy"))?;
    let ports = spec["ports"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), u16::try_from(v.as_u64()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Endpoint {
        address: Some(ip),
        ports,
        labels: string_map(&spec["labels"]),
        namespace: Some(namespace.to_owned()),
        service_account: spec["serviceAccount"].as_str().map(str::to_owned),
        weight: spec["weight"].as_u64().and_then(|w| u32::try_from(w).ok()),
        ..Endpoint::default()
    })
}

/// The services of one ServiceEntry, or why it has none mesh-proxy can use.
pub fn services(
    entry: &DynamicObject,
    workload_entries: &[Arc<DynamicObject>],
    pods: &[Arc<PodFacts>],
) -> Result<Vec<Service>, String> {
    let namespace = entry.metadata.namespace.clone().unwrap_or_default();
    let spec = &entry.data["spec"];
    let resolution = spec["resolution"].as_str().unwrap_or("NONE");
    let mut endpoints = Vec::new();
    if let Some(list) = spec["endpoints"].as_array() {
        for e in list {
            endpoints.push(workload_endpoint(e, &namespace)?);
        }
    } else if spec["workloadSelector"]["labels"].is_object() {
        let selector = string_map(&spec["workloadSelector"]["labels"]);
        for pod in pods
            .iter()
            .filter(|p| p.namespace == namespace && selects(&selector, &p.labels))
        {
            endpoints.push(Endpoint {
                address: pod.ip,
                labels: pod.labels.clone(),
                workload: Some(pod.workload.clone()),
                namespace: Some(namespace.clone()),
                service_account: Some(pod.service_account.clone()),
                ..Endpoint::default()
            });
        }
        for we in workload_entries {
            let we_spec = &we.data["spec"];
            let labels = string_map(&we_spec["labels"]);
            if we.metadata.namespace.as_deref() == Some(namespace.as_str())
                && selects(&selector, &labels)
            {
                endpoints.push(workload_endpoint(we_spec, &namespace)?);
            }
        }
    }
    if endpoints.is_empty() {
        return Err(match resolution {
            "DNS" | "DNS_ROUND_ROBIN" => "resolution DNS is not implemented by mesh-proxy: the hosts are not registered".to_owned(),
            _ => "no endpoints: the hosts are not registered (under ALLOW_ANY their traffic is passed through to where it was sent)".to_owned(),
        });
    }
    let addresses: Vec<IpAddr> = spec["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().and_then(|a| a.parse().ok()))
        .collect();
    let ports = ports(spec);
    Ok(spec["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|host| Service {
            host: host.to_owned(),
            aliases: Vec::new(),
            name: Some(host.split('.').next().unwrap_or(host).to_owned()),
            namespace: Some(namespace.clone()),
            addresses: addresses.clone(),
            ports: ports.clone(),
            endpoints: endpoints.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("object")
    }

    #[test]
    fn static_endpoints_and_selected_workloads_become_endpoints() {
        let se = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"hosts": ["db.internal"], "addresses": ["240.0.0.10"], "resolution": "STATIC",
                     "ports": [{"number": 5432, "name": "tcp-pg", "protocol": "TCP"}],
                     "endpoints": [{"address": "10.1.2.3", "labels": {"version": "v1"}, "serviceAccount": "db"}]}}),
        );
        let db = services(&se, &[], &[]).expect("usable");
        assert_eq!(db.len(), 1);
        assert_eq!(db[0].host, "db.internal");
        assert_eq!(
            db[0].addresses,
            ["240.0.0.10".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(db[0].endpoints[0].service_account.as_deref(), Some("db"));

        let vm = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "vm", "namespace": "shop"},
            "spec": {"hosts": ["legacy.shop.svc.cluster.local"], "resolution": "STATIC",
                     "ports": [{"number": 80, "name": "http"}], "workloadSelector": {"labels": {"app": "legacy"}}}}),
        );
        let we = Arc::new(object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
            "metadata": {"name": "vm-1", "namespace": "shop"},
            "spec": {"address": "192.168.0.5", "labels": {"app": "legacy"}, "serviceAccount": "legacy"}}),
        ));
        let legacy = services(&vm, &[we], &[]).expect("usable");
        assert_eq!(legacy[0].endpoints.len(), 1);
        assert_eq!(
            legacy[0].endpoints[0].address,
            Some("192.168.0.5".parse().expect("ip"))
        );
    }

    #[test]
    fn dns_and_passthrough_entries_say_why_they_are_left_out() {
        let dns = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"hosts": ["api.example.com"], "resolution": "DNS", "ports": [{"number": 443, "name": "tls"}]}}),
        );
        assert!(services(&dns, &[], &[]).expect_err("DNS").contains("DNS"));
        let host = object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"hosts": ["api.example.com"], "resolution": "DNS", "endpoints": [{"address": "api.example.com"}]}}),
        );
        assert!(services(&host, &[], &[])
            .expect_err("hostname")
            .contains("not an IP"));
    }
}
