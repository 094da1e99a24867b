//! What VirtualServices refer to: destination hosts, ports and subsets (IST0101, IST0112), the
//! Gateways they bind to (IST0101, IST0132), and hosts claimed twice on the mesh gateway
//! (IST0109).

use std::collections::{BTreeMap, HashMap};

use mesh_crds::istio::common::Destination;
use mesh_crds::istio::networking::VirtualServiceSpec;

use crate::codes::*;
use crate::context::{Context, Typed};
use crate::hosts;
use crate::report::Report;

/// Every destination of a VirtualService with its field path.
fn all_destinations(vs: &VirtualServiceSpec) -> Vec<(String, &Destination)> {
    let mut out = Vec::new();
    for (i, http) in vs.http.iter().flatten().enumerate() {
        for (j, d) in http.route.iter().flatten().enumerate() {
            out.push((
                format!("spec.http[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
        if let Some(m) = &http.mirror {
            out.push((format!("spec.http[{i}].mirror"), m));
        }
        for (j, m) in http.mirrors.iter().flatten().enumerate() {
            out.push((
                format!("spec.http[{i}].mirrors[{j}].destination"),
                &m.destination,
            ));
        }
    }
    for (i, tcp) in vs.tcp.iter().flatten().enumerate() {
        for (j, d) in tcp.route.iter().flatten().enumerate() {
            out.push((
                format!("spec.tcp[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
    }
    for (i, tls) in vs.tls.iter().flatten().enumerate() {
        for (j, d) in tls.route.iter().flatten().enumerate() {
            out.push((
                format!("spec.tls[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
    }
    out
}

pub fn destinations(cx: &Context, r: &mut Report) {
    if !(cx.knows("Service") || cx.knows("ServiceEntry")) {
        return;
    }
    for vs in &cx.virtual_services {
        let ns = cx.object(vs.obj).namespace.as_str();
        for (path, d) in all_destinations(vs.spec) {
            if d.host.contains('*') {
                continue;
            }
            let Some(target) = cx.destination(&d.host, ns) else {
                let fqdn = hosts::fqdn(&d.host, ns);
                let meaning = if fqdn == d.host {
                    let parts: Vec<&str> = d.host.split('.').collect();
                    if parts.len() == 2 && cx.service(parts[1], parts[0]).is_some() {
                        format!(
                            " (for the Service {} write {}.{}.svc.cluster.local)",
                            d.host, parts[0], parts[1]
                        )
                    } else {
                        String::new()
                    }
                } else {
                    format!(" (the short name means {fqdn})")
                };
                r.add(
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    vs.obj,
                    &format!("{path}.host"),
                    format!(
                        "Referenced host not found: {:?}: no Service or ServiceEntry visible from namespace {ns} has it{meaning}; fix the host, or add the Service or a ServiceEntry",
                        d.host
                    ),
                );
                continue;
            };
            let ports = target.ports();
            match d.port.as_ref().and_then(|p| p.number) {
                None if ports.len() > 1 => r.add(
                    &VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                    vs.obj,
                    &format!("{path}.host"),
                    format!(
                        "This VirtualService routes to {:?}, which exposes several ports {ports:?}: say which with destination.port.number",
                        d.host
                    ),
                ),
                Some(n) if !ports.is_empty() && !ports.contains(&u64::from(n)) => r.add(
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    vs.obj,
                    &format!("{path}.port.number"),
                    format!(
                        "Referenced host:port not found: \"{}:{n}\": the service's ports are {ports:?}; use one of them",
                        d.host
                    ),
                ),
                _ => {}
            }
        }
    }
}

pub fn subsets(cx: &Context, r: &mut Report) {
    if !cx.knows("DestinationRule") {
        return;
    }
    for vs in &cx.virtual_services {
        let ns = cx.object(vs.obj).namespace.as_str();
        for (path, d) in all_destinations(vs.spec) {
            let Some(subset) = &d.subset else { continue };
            let fqdn = hosts::fqdn(&d.host, ns);
            let rules = cx.destination_rules_for(&fqdn, ns);
            let defined = rules
                .iter()
                .any(|dr| dr.spec.subsets.iter().flatten().any(|s| &s.name == subset));
            if !defined {
                let why = if rules.is_empty() {
                    format!("no DestinationRule for {fqdn} is visible from namespace {ns}")
                } else {
                    let known: Vec<&str> = rules
                        .iter()
                        .flat_map(|dr| dr.spec.subsets.iter().flatten().map(|s| s.name.as_str()))
                        .collect();
                    format!("the DestinationRule for {fqdn} defines {known:?}")
                };
                r.add(
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    vs.obj,
                    &format!("{path}.subset"),
                    format!(
                        "Referenced host+subset in destinationrule not found: \"{}+{subset}\": {why}; requests routed here fail with 503 until the subset is defined",
                        d.host
                    ),
                );
            }
        }
    }
}

/// `(namespace, name)` of a gateway reference as written in namespace `ns`.
fn gateway_ref<'s>(reference: &'s str, ns: &'s str) -> (&'s str, &'s str) {
    reference.split_once('/').unwrap_or((ns, reference))
}

/// Whether a Gateway server host (`[namespace/]host`) admits host `host` of a VirtualService
/// in `vs_ns`, for a Gateway in `gw_ns`.
fn server_admits(server_host: &str, host: &str, vs_ns: &str, gw_ns: &str) -> bool {
    let (scope, name) = server_host.split_once('/').unwrap_or(("*", server_host));
    let scope_ok = match scope {
        "*" => true,
        "." => vs_ns == gw_ns,
        ns => ns == vs_ns,
    };
    scope_ok && (hosts::overlap(name, host) || hosts::overlap(name, &hosts::fqdn(host, vs_ns)))
}

pub fn gateways(cx: &Context, r: &mut Report) {
    for vs in &cx.virtual_services {
        let ns = cx.object(vs.obj).namespace.as_str();
        let mut refs: Vec<(String, &str, bool)> = Vec::new();
        for (i, g) in vs.spec.gateways.iter().flatten().enumerate() {
            refs.push((format!("spec.gateways[{i}]"), g, true));
        }
        for (i, http) in vs.spec.http.iter().flatten().enumerate() {
            for (j, m) in http.match_.iter().flatten().enumerate() {
                for (k, g) in m.gateways.iter().flatten().enumerate() {
                    refs.push((format!("spec.http[{i}].match[{j}].gateways[{k}]"), g, false));
                }
            }
        }
        for (path, reference, top_level) in refs {
            if reference == "mesh" {
                continue;
            }
            let (gw_ns, gw_name) = gateway_ref(reference, ns);
            let Some(gw) = cx.gateway(gw_ns, gw_name) else {
                if cx.knows("Gateway") {
                    r.add(
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        vs.obj,
                        &path,
                        format!(
                            "Referenced gateway not found: {reference:?}: there is no Gateway {gw_ns}/{gw_name}; fix the name (namespace/name for a Gateway of another namespace) or add the Gateway"
                        ),
                    );
                }
                continue;
            };
            if !top_level {
                continue;
            }
            let servers: Vec<&str> = gw
                .spec
                .servers
                .iter()
                .flatten()
                .flat_map(|s| s.hosts.iter().map(String::as_str))
                .collect();
            let missing: Vec<&String> = vs
                .spec
                .hosts
                .iter()
                .flatten()
                .filter(|h| !servers.iter().any(|s| server_admits(s, h, ns, gw_ns)))
                .collect();
            if !missing.is_empty() {
                r.add(
                    &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                    vs.obj,
                    "spec.hosts",
                    format!(
                        "One or more hosts {missing:?} of this VirtualService are not served by Gateway {gw_ns}/{gw_name} (its hosts: {servers:?}), so the gateway ignores their routes; add the hosts to a server of the Gateway or remove them here"
                    ),
                );
            }
        }
    }
}

/// Whether a VirtualService applies to sidecars (the reserved `mesh` gateway).
fn bound_to_mesh(vs: &Typed<'_, VirtualServiceSpec>) -> bool {
    vs.spec
        .gateways
        .as_ref()
        .is_none_or(|g| g.is_empty() || g.iter().any(|g| g == "mesh"))
}

pub fn conflicting_mesh_hosts(cx: &Context, r: &mut Report) {
    // host -> namespace scope ("" = every namespace) -> VirtualServices claiming it there.
    let mut claims: HashMap<String, BTreeMap<&str, Vec<usize>>> = HashMap::new();
    for (id, vs) in cx.virtual_services.iter().enumerate() {
        if !bound_to_mesh(vs) {
            continue;
        }
        let ns = cx.object(vs.obj).namespace.as_str();
        let local = vs
            .spec
            .export_to
            .as_ref()
            .is_some_and(|e| e.len() == 1 && e[0] == ".");
        let scope = if local { ns } else { "" };
        for host in vs.spec.hosts.iter().flatten() {
            claims
                .entry(hosts::fqdn(host, ns).to_ascii_lowercase())
                .or_default()
                .entry(scope)
                .or_default()
                .push(id);
        }
    }
    let mut hosts: Vec<&String> = claims.keys().collect();
    hosts.sort();
    for host in hosts {
        let scopes = &claims[host];
        let everywhere: &[usize] = scopes.get("").map_or(&[], Vec::as_slice);
        let mut groups: Vec<Vec<usize>> = Vec::new();
        if everywhere.len() > 1 {
            groups.push(everywhere.to_vec());
        }
        for (scope, ids) in scopes.iter().filter(|(s, _)| !s.is_empty()) {
            let mut group: Vec<usize> = everywhere
                .iter()
                .copied()
                .filter(|&g| cx.object(cx.virtual_services[g].obj).namespace == *scope)
                .collect();
            group.extend(ids);
            if group.len() > 1 {
                groups.push(group);
            }
        }
        for group in groups {
            let names: Vec<String> = group
                .iter()
                .map(|&g| cx.name_of(cx.virtual_services[g].obj))
                .collect();
            for &g in &group {
                r.add(
                    &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                    cx.virtual_services[g].obj,
                    "spec.hosts",
                    format!(
                        "The VirtualServices {} associated with mesh gateway define the same host {host}, so which rules apply is undefined; merge them into one VirtualService",
                        names.join(",")
                    ),
                );
            }
        }
    }
}
