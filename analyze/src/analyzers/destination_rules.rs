//! DestinationRules: TLS origination that does not verify the server (IST0128, IST0129), and
//! subsets whose labels match none of the service's pods (MSH0001).

use mesh_crds::istio::networking::{ClientTlsMode, ClientTlsSettings};

use crate::codes::*;
use crate::context::Context;
use crate::hosts;
use crate::labels;
use crate::report::Report;

/// The mode of TLS settings that originate TLS without verifying the server, if they do.
fn unverified(tls: &Option<ClientTlsSettings>) -> Option<&'static str> {
    let tls = tls.as_ref()?;
    let mode = match tls.mode? {
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        _ => return None,
    };
    let verifies = tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        || tls.credential_name.is_some()
        || tls.insecure_skip_verify == Some(true);
    (!verifies).then_some(mode)
}

pub fn ca_certificates(cx: &Context, r: &mut Report) {
    for dr in &cx.destination_rules {
        let o = cx.object(dr.obj);
        let host = &dr.spec.host;
        let mut policies = Vec::new();
        if let Some(tp) = &dr.spec.traffic_policy {
            policies.push(("spec.trafficPolicy".to_owned(), tp, String::new()));
        }
        for (i, s) in dr.spec.subsets.iter().flatten().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                policies.push((
                    format!("spec.subsets[{i}].trafficPolicy"),
                    tp,
                    format!(" (subset {})", s.name),
                ));
            }
        }
        for (path, tp, subset) in policies {
            if let Some(mode) = unverified(&tp.tls) {
                r.add(
                    &NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                    dr.obj,
                    &format!("{path}.tls.mode"),
                    format!("DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host}{subset}; set tls.caCertificates (or credentialName), or insecureSkipVerify: true if skipping verification is intended", o.name, o.namespace),
                );
            }
            for (j, p) in tp.port_level_settings.iter().flatten().enumerate() {
                if let Some(mode) = unverified(&p.tls) {
                    let port = p
                        .port
                        .as_ref()
                        .and_then(|p| p.number)
                        .map_or_else(|| "?".to_owned(), |n| n.to_string());
                    r.add(
                        &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                        dr.obj,
                        &format!("{path}.portLevelSettings[{j}].tls.mode"),
                        format!("DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host} at port {port}{subset}; set tls.caCertificates (or credentialName) for the port", o.name, o.namespace),
                    );
                }
            }
        }
    }
}

pub fn subset_pods(cx: &Context, r: &mut Report) {
    if !cx.knows_workloads() {
        return;
    }
    for dr in &cx.destination_rules {
        let ns = cx.object(dr.obj).namespace.as_str();
        let fqdn = hosts::fqdn(&dr.spec.host, ns);
        let Some((name, svc_ns)) = hosts::service_of(&fqdn) else {
            continue;
        };
        let Some(svc) = cx.service(svc_ns, name) else {
            continue;
        };
        if svc.selector.is_empty() || cx.select_ids(&svc.selector, Some(svc_ns)).is_empty() {
            // No pods at all is the Service's matter, not the subsets'.
            continue;
        }
        for (i, subset) in dr.spec.subsets.iter().flatten().enumerate() {
            let Some(labels) = subset.labels.as_ref().filter(|l| !l.is_empty()) else {
                continue;
            };
            let mut selector = svc.selector.clone();
            selector.extend(labels::selector_of(labels));
            if cx.select_ids(&selector, Some(svc_ns)).is_empty() {
                r.add(
                    &DESTINATION_RULE_SUBSET_SELECTS_NO_PODS,
                    dr.obj,
                    &format!("spec.subsets[{i}].labels"),
                    format!(
                        "Subset {} selects no pods: none of the pods of Service {svc_ns}/{name} ({}) carry {}, so traffic routed to the subset fails with 503; fix the subset's labels or label the pods",
                        subset.name,
                        labels::display(&svc.selector),
                        labels::display(&labels::selector_of(labels))
                    ),
                );
            }
        }
    }
}
