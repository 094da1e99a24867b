//! IST0118 and IST0150: Service ports must tell the mesh their protocol, by a name
//! `<protocol>[-<suffix>]` or by `appProtocol`; otherwise the proxy sniffs it, which breaks
//! server-first protocols (MySQL, SMTP…) and costs latency.

use crate::codes::*;
use crate::context::{Context, ServicePort};
use crate::injection::is_system_namespace;
use crate::report::Report;

/// Protocols the mesh recognizes in port names and appProtocol.
const PROTOCOLS: &[&str] = &[
    "grpc-web", "grpc", "http2", "https", "http", "tcp", "tls", "mongo", "mysql", "redis", "udp",
];
/// appProtocol values Kubernetes defines.
const K8S_APP_PROTOCOLS: &[&str] = &["kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"];

/// The protocol a port declares, or None when the mesh must detect it.
pub fn declared_protocol<'p>(port: &ServicePort<'p>) -> Option<&'p str> {
    if let Some(app) = port.app_protocol {
        let lower = app.to_ascii_lowercase();
        return (PROTOCOLS.contains(&lower.as_str())
            || K8S_APP_PROTOCOLS.contains(&lower.as_str()))
        .then_some(app);
    }
    let name = port.name;
    PROTOCOLS
        .iter()
        .find(|p| {
            name.len() >= p.len()
                && name[..p.len()].eq_ignore_ascii_case(p)
                && (name.len() == p.len() || name.as_bytes()[p.len()] == b'-')
        })
        .map(|p| &name[..p.len()])
}

fn is_control_plane(cx: &Context, obj: usize) -> bool {
    let o = cx.object(obj);
    o.namespace == cx.mesh.root_namespace || o.is_mesh_component()
}

pub fn run(cx: &Context, r: &mut Report) {
    for svc in &cx.services {
        if is_system_namespace(svc.namespace) || is_control_plane(cx, svc.obj) {
            continue;
        }
        for port in &svc.ports {
            if port.protocol.eq_ignore_ascii_case("UDP")
                || port.protocol.eq_ignore_ascii_case("SCTP")
            {
                continue;
            }
            let field = format!("spec.ports[{}]", port.index);
            if svc.type_ == "ExternalName" {
                if port.name == "tcp" {
                    r.add(
                        &EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
                        svc.obj,
                        &format!("{field}.name"),
                        "Port name for ExternalName service is invalid: a port named tcp makes the proxy treat unmatched traffic as opaque TCP, which it may not forward; name the port after its protocol with a suffix (tcp-db, http-api)".to_owned(),
                    );
                }
                continue;
            }
            if declared_protocol(port).is_some() {
                continue;
            }
            let target = port
                .target_port
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                .unwrap_or_else(|| port.port.to_string());
            let why = match port.app_protocol {
                Some(app) => format!("its appProtocol {app:?} is not a protocol the mesh knows"),
                None if port.name.is_empty() => "it has no name".to_owned(),
                None => format!("its name {:?} does not start with a protocol", port.name),
            };
            let at = if port.app_protocol.is_some() {
                "appProtocol"
            } else {
                "name"
            };
            r.add(
                &PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                svc.obj,
                &format!("{field}.{at}"),
                format!(
                    "Port {} (port: {}, targetPort: {target}) doesn't follow the naming convention: {why}, so the proxy has to detect the protocol from the traffic, which fails for server-first protocols. Name it <protocol>[-<suffix>] (http, http2, https, grpc, grpc-web, tcp, tls, mongo, mysql, redis) or set appProtocol",
                    if port.name.is_empty() { "<unnamed>" } else { port.name },
                    port.port
                ),
            );
        }
    }
}
