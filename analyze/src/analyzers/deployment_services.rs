//! IST0116 and IST0137: a pod receives each port's traffic through one inbound listener, so the
//! Services that select the same pods must agree on each port's protocol, and map each target
//! port from one service port.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::port_names::declared_protocol;
use crate::codes::*;
use crate::context::{Context, Service, ServicePort};
use crate::report::Report;
use crate::workloads::Workload;

/// The target port of a Service port on a pod: a named target port is looked up in the pod's
/// containers (and stays a name when none has it).
fn target_port(port: &ServicePort, w: &Workload) -> String {
    match port.target_port {
        None => port.port.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => match s.parse::<u64>() {
            Ok(n) => n.to_string(),
            Err(_) => w.named_port(s).map_or_else(|| s.clone(), |n| n.to_string()),
        },
        Some(other) => other.to_string(),
    }
}

/// The protocol the mesh uses on a port: the Kubernetes protocol and, for TCP, the protocol the
/// port name or appProtocol declares (a port that declares none is plain TCP to compare).
fn protocol(port: &ServicePort) -> String {
    match declared_protocol(port) {
        Some(p) if port.protocol.eq_ignore_ascii_case("TCP") => p.to_ascii_uppercase(),
        _ => port.protocol.to_ascii_uppercase(),
    }
}

pub fn run(cx: &Context, r: &mut Report) {
    for (id, w) in cx.workloads.iter().enumerate() {
        let services: Vec<&Service> = cx
            .services_of(id)
            .iter()
            .map(|&s| &cx.services[s])
            .collect();
        if services.len() < 2 || !cx.in_mesh(w) {
            continue;
        }
        let object = cx.object(w.obj);
        // target port -> protocol -> services, and target port -> service port -> services.
        let mut protocols: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut ports: BTreeMap<String, BTreeMap<u64, BTreeSet<String>>> = BTreeMap::new();
        for svc in &services {
            let name = format!("{}/{}", svc.namespace, svc.name);
            for port in &svc.ports {
                let target = target_port(port, w);
                protocols
                    .entry(target.clone())
                    .or_default()
                    .entry(protocol(port))
                    .or_default()
                    .insert(name.clone());
                ports
                    .entry(target)
                    .or_default()
                    .entry(port.port)
                    .or_default()
                    .insert(name.clone());
            }
        }
        for (target, by_protocol) in &protocols {
            if by_protocol.len() < 2 {
                continue;
            }
            let listing: Vec<String> = by_protocol
                .iter()
                .map(|(p, s)| format!("{p} ({})", s.iter().cloned().collect::<Vec<_>>().join(", ")))
                .collect();
            r.add(
                &DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
                w.obj,
                "metadata.name",
                format!(
                    "This {} {} is associated with multiple services using port {target} but different protocols: {}. Its proxy can serve the port with one protocol only; give the ports the same protocol (port name or appProtocol)",
                    object.kind.to_ascii_lowercase(),
                    object.name,
                    listing.join(", ")
                ),
            );
        }
        for (target, by_port) in &ports {
            if by_port.len() < 2 {
                continue;
            }
            let services: BTreeSet<&String> = by_port.values().flatten().collect();
            let numbers: Vec<String> = by_port.keys().map(u64::to_string).collect();
            r.add(
                &DEPLOYMENT_CONFLICTING_PORTS,
                w.obj,
                "metadata.name",
                format!(
                    "This {} {} is associated with multiple services {} using targetPort {target:?} but different ports: {}. Services selecting the same pods must use the same port for a targetPort",
                    object.kind.to_ascii_lowercase(),
                    object.name,
                    services.into_iter().cloned().collect::<Vec<_>>().join(", "),
                    numbers.join(", ")
                ),
            );
        }
    }
}
