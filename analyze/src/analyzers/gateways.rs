//! Gateways: the selector must match gateway workloads whose Service exposes every server port
//! (IST0101, IST0162); Gateways on the same workloads and port must not serve the same host
//! (IST0145); the TLS Secrets they name must exist beside the workload and hold a certificate
//! (IST0101, IST0161).

use std::collections::{BTreeSet, HashMap};

use mesh_crds::istio::networking::GatewaySpec;

use crate::codes::*;
use crate::context::{Context, Typed};
use crate::hosts;
use crate::labels::{self, Selector};
use crate::report::Report;

fn selector_of<'a>(gw: &Typed<'a, GatewaySpec>) -> Selector<'a> {
    gw.spec
        .selector
        .as_ref()
        .map(labels::selector_of)
        .unwrap_or_default()
}

pub fn selectors_and_ports(cx: &Context, r: &mut Report) {
    if !cx.knows_workloads() {
        return;
    }
    for gw in &cx.gateways {
        let selector = selector_of(gw);
        let shown = labels::display(&selector);
        let workloads = cx.select_ids(&selector, None);
        if workloads.is_empty() {
            r.add(
                &REFERENCED_RESOURCE_NOT_FOUND,
                gw.obj,
                "spec.selector",
                format!("Referenced selector not found: {shown:?}: no gateway workload carries these labels, so no proxy serves this Gateway; fix the selector (the default ingress gateway has istio=ingressgateway)"),
            );
            continue;
        }
        if !cx.knows("Service") {
            continue;
        }
        let mut exposed: BTreeSet<u64> = BTreeSet::new();
        for &w in &workloads {
            for &s in cx.services_of(w) {
                for p in &cx.services[s].ports {
                    if p.protocol.eq_ignore_ascii_case("TCP") {
                        exposed.insert(p.port);
                        if let Some(t) = p.target_port.and_then(|t| t.as_u64()) {
                            exposed.insert(t);
                        }
                    }
                }
            }
        }
        for (i, server) in gw.spec.servers.iter().flatten().enumerate() {
            let port = u64::from(server.port.number);
            if !exposed.contains(&port) {
                r.add(
                    &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                    gw.obj,
                    &format!("spec.servers[{i}].port.number"),
                    format!("The gateway listens on port {port}, which no Service of its workload (pod selector {shown}) exposes (exposed: {:?}), so traffic cannot reach it through the gateway's Service; add the port to the Service or use one it has", exposed.iter().collect::<Vec<_>>()),
                );
            }
        }
    }
}

/// A server host without its `namespace/` part.
fn bare_host(host: &str) -> &str {
    host.split_once('/').map_or(host, |(_, h)| h)
}

pub fn conflicts(cx: &Context, r: &mut Report) {
    // (selector, port) -> entries (gateway, server, host).
    type Entries<'h> = Vec<(usize, usize, &'h str)>;
    let mut groups: HashMap<(String, u32), Entries> = HashMap::new();
    for (g, gw) in cx.gateways.iter().enumerate() {
        let selector = labels::display(&selector_of(gw));
        for (s, server) in gw.spec.servers.iter().flatten().enumerate() {
            for host in &server.hosts {
                groups
                    .entry((selector.clone(), server.port.number))
                    .or_default()
                    .push((g, s, bare_host(host)));
            }
        }
    }
    let mut keys: Vec<&(String, u32)> = groups.keys().collect();
    keys.sort();
    for key in keys {
        let entries = &groups[key];
        let gateways: BTreeSet<usize> = entries.iter().map(|e| e.0).collect();
        if gateways.len() < 2 {
            continue;
        }
        // Exact hosts through a map; wildcards (few) against every entry.
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        for (e, (_, _, host)) in entries.iter().enumerate() {
            if !host.starts_with('*') {
                exact.entry(host.to_ascii_lowercase()).or_default().push(e);
            }
        }
        let wild: Vec<usize> = (0..entries.len())
            .filter(|&e| entries[e].2.starts_with('*'))
            .collect();
        // (gateway, server) -> the other gateways it conflicts with.
        let mut found: HashMap<(usize, usize), BTreeSet<usize>> = HashMap::new();
        for (e, &(g, s, host)) in entries.iter().enumerate() {
            let others: Vec<usize> = if host.starts_with('*') {
                (0..entries.len())
                    .filter(|&o| hosts::overlap(host, entries[o].2))
                    .collect()
            } else {
                let mut o = exact
                    .get(&host.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default();
                o.extend(
                    wild.iter()
                        .copied()
                        .filter(|&w| hosts::overlap(host, entries[w].2)),
                );
                o
            };
            for o in others {
                if o != e && entries[o].0 != g {
                    found.entry((g, s)).or_default().insert(entries[o].0);
                }
            }
        }
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort();
        for ((g, s), others) in found {
            let gw = &cx.gateways[g];
            let names: Vec<String> = others
                .iter()
                .map(|&o| cx.name_of(cx.gateways[o].obj))
                .collect();
            let server = &gw.spec.servers.as_deref().unwrap_or_default()[s];
            r.add(
                &CONFLICTING_GATEWAYS,
                gw.obj,
                &format!("spec.servers[{s}]"),
                format!(
                    "Conflict with gateways {} (workload selector {}, port {}, hosts {}): the same workloads would serve these hosts twice on one port and only one configuration wins; merge the servers into one Gateway or use different hosts",
                    names.join(","),
                    key.0,
                    key.1,
                    server.hosts.join(",")
                ),
            );
        }
    }
}

/// A Secret holds a certificate and key under the names gateways read.
fn has_certificate(cx: &Context, secret: usize) -> bool {
    let data = &cx.object(secret).value["data"];
    let has =
        |k: &str| data.get(k).is_some() || cx.object(secret).value["stringData"].get(k).is_some();
    (has("tls.crt") && has("tls.key")) || (has("cert") && has("key"))
}

pub fn secrets(cx: &Context, r: &mut Report) {
    if !cx.knows("Secret") {
        return;
    }
    for gw in &cx.gateways {
        let own_ns = cx.object(gw.obj).namespace.as_str();
        let selector = selector_of(gw);
        // Gateways read Secrets from their workload's namespace.
        let mut namespaces: BTreeSet<&str> = cx
            .select(&selector, None)
            .into_iter()
            .map(|w| w.namespace)
            .collect();
        if namespaces.is_empty() {
            namespaces.insert(own_ns);
        }
        for (i, server) in gw.spec.servers.iter().flatten().enumerate() {
            let Some(tls) = &server.tls else { continue };
            let mut names: Vec<(String, &str)> = Vec::new();
            if let Some(n) = tls.credential_name.as_deref() {
                names.push((format!("spec.servers[{i}].tls.credentialName"), n));
            }
            for (j, n) in tls.credential_names.iter().flatten().enumerate() {
                names.push((format!("spec.servers[{i}].tls.credentialNames[{j}]"), n));
            }
            for (field, name) in names {
                if name.contains("://") {
                    continue;
                }
                let found = namespaces
                    .iter()
                    .find_map(|ns| cx.secrets.get(&(*ns, name)));
                match found {
                    None => r.add(
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        gw.obj,
                        &field,
                        format!(
                            "Referenced credentialName not found: {name:?}: there is no Secret {name} in {} (the namespace of the gateway workload); create it there, e.g. `kubectl create secret tls {name} -n {} --cert=... --key=...`",
                            namespaces.iter().copied().collect::<Vec<_>>().join(", "),
                            namespaces.iter().next().copied().unwrap_or(own_ns)
                        ),
                    ),
                    Some(&secret) if !has_certificate(cx, secret) => r.add(
                        &INVALID_GATEWAY_CREDENTIAL,
                        gw.obj,
                        &field,
                        format!("The credential referenced by the Gateway {}/{} is invalid: Secret {name} has neither tls.crt and tls.key nor cert and key, so the gateway cannot serve TLS; recreate it with `kubectl create secret tls`", own_ns, cx.object(gw.obj).name),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}
