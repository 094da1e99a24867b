//! ServiceEntries: TCP ports without addresses (IST0134), and one host and port given
//! different protocols by different entries (MSH0002).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::codes::*;
use crate::context::Context;
use crate::report::Report;

pub fn addresses(cx: &Context, r: &mut Report) {
    if cx.mesh.dns_auto_allocate {
        return;
    }
    for se in &cx.service_entries {
        if se.spec.addresses.as_ref().is_some_and(|a| !a.is_empty()) {
            continue;
        }
        let tcp: Vec<String> = se
            .spec
            .ports
            .iter()
            .flatten()
            .filter(|p| {
                p.protocol
                    .as_deref()
                    .is_none_or(|proto| proto.eq_ignore_ascii_case("TCP"))
            })
            .map(|p| p.number.to_string())
            .collect();
        if tcp.is_empty() {
            continue;
        }
        r.add(
            &SERVICE_ENTRY_ADDRESSES_REQUIRED,
            se.obj,
            "spec",
            format!(
                "ServiceEntry addresses are required for this protocol: ports {} are TCP (or have no protocol), and without addresses the proxy cannot tell this service's TCP traffic from any other on the same port. Add spec.addresses (a virtual IP), set the port protocol, or enable DNS auto-allocation (ISTIO_META_DNS_AUTO_ALLOCATE)",
                tcp.join(", ")
            ),
        );
    }
}

pub fn conflicting_protocols(cx: &Context, r: &mut Report) {
    // (host, port) -> protocol -> ServiceEntries.
    let mut by_port: HashMap<(String, u32), BTreeMap<String, BTreeSet<usize>>> = HashMap::new();
    for (e, se) in cx.service_entries.iter().enumerate() {
        for host in &se.spec.hosts {
            for p in se.spec.ports.iter().flatten() {
                let protocol = p
                    .protocol
                    .as_deref()
                    .map_or_else(|| "(unset)".to_owned(), str::to_ascii_uppercase);
                by_port
                    .entry((host.to_ascii_lowercase(), p.number))
                    .or_default()
                    .entry(protocol)
                    .or_default()
                    .insert(e);
            }
        }
    }
    let mut keys: Vec<&(String, u32)> = by_port.keys().filter(|k| by_port[*k].len() > 1).collect();
    keys.sort();
    for key in keys {
        let protocols = &by_port[key];
        let listing: Vec<String> = protocols
            .iter()
            .map(|(p, es)| {
                let names: Vec<String> = es
                    .iter()
                    .map(|&e| cx.name_of(cx.service_entries[e].obj))
                    .collect();
                format!("{p} ({})", names.join(", "))
            })
            .collect();
        let involved: BTreeSet<usize> = protocols.values().flatten().copied().collect();
        for e in involved {
            r.add(
                &SERVICE_ENTRY_CONFLICTING_PROTOCOLS,
                cx.service_entries[e].obj,
                "spec.ports",
                format!(
                    "Host {} port {} is given different protocols by ServiceEntries: {}; the proxy uses only one of them. Give the port one protocol everywhere",
                    key.0,
                    key.1,
                    listing.join(", ")
                ),
            );
        }
    }
}
