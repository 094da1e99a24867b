//! IST0113: a DestinationRule that sends plaintext (`tls.mode: DISABLE`) to workloads whose
//! PeerAuthentication requires mutual TLS (STRICT): every such request is refused.

use mesh_crds::istio::networking::{ClientTlsMode, TrafficPolicy};
use mesh_crds::istio::security::{MtlsMode, PeerAuthenticationSpec};

use crate::codes::MTLS_POLICY_CONFLICT;
use crate::context::{Context, Typed};
use crate::hosts;
use crate::labels;
use crate::report::Report;
use crate::workloads::Workload;

fn mode(pa: &Typed<'_, PeerAuthenticationSpec>) -> Option<MtlsMode> {
    pa.spec
        .mtls
        .as_ref()
        .and_then(|m| m.mode)
        .filter(|m| *m != MtlsMode::Unset)
}

/// The effective mode for a workload of `namespace` (None: no workload known): the most
/// specific PeerAuthentication wins (workload, then namespace, then mesh), PERMISSIVE by default.
fn effective(cx: &Context, namespace: &str, w: Option<&Workload>) -> (MtlsMode, String) {
    let mut namespace_wide = None;
    let mut mesh_wide = None;
    for pa in &cx.peer_authentications {
        let o = cx.object(pa.obj);
        let Some(m) = mode(pa) else { continue };
        let named = format!("{}/{}", o.namespace, o.name);
        match pa
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .filter(|l| !l.is_empty())
        {
            Some(sel)
                if o.namespace == namespace
                    && w.is_some_and(|w| labels::matches(&labels::selector_of(sel), w.labels)) =>
            {
                return (m, named);
            }
            Some(_) => {}
            None if o.namespace == namespace => namespace_wide = Some((m, named)),
            None if o.namespace == cx.mesh.root_namespace => mesh_wide = Some((m, named)),
            None => {}
        }
    }
    namespace_wide
        .or(mesh_wide)
        .unwrap_or((MtlsMode::Permissive, "the default".to_owned()))
}

fn disables(tp: &TrafficPolicy) -> Vec<String> {
    let mut out = Vec::new();
    if tp.tls.as_ref().and_then(|t| t.mode) == Some(ClientTlsMode::Disable) {
        out.push("tls.mode".to_owned());
    }
    for (i, p) in tp.port_level_settings.iter().flatten().enumerate() {
        if p.tls.as_ref().and_then(|t| t.mode) == Some(ClientTlsMode::Disable) {
            out.push(format!("portLevelSettings[{i}].tls.mode"));
        }
    }
    out
}

pub fn run(cx: &Context, r: &mut Report) {
    if cx.peer_authentications.is_empty() {
        return;
    }
    for dr in &cx.destination_rules {
        let o = cx.object(dr.obj);
        let mut fields = Vec::new();
        if let Some(tp) = &dr.spec.traffic_policy {
            fields.extend(
                disables(tp)
                    .into_iter()
                    .map(|f| format!("spec.trafficPolicy.{f}")),
            );
        }
        for (i, s) in dr.spec.subsets.iter().flatten().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                fields.extend(
                    disables(tp)
                        .into_iter()
                        .map(|f| format!("spec.subsets[{i}].trafficPolicy.{f}")),
                );
            }
        }
        if fields.is_empty() {
            continue;
        }
        let fqdn = hosts::fqdn(&dr.spec.host, &o.namespace);
        let Some((name, svc_ns)) = hosts::service_of(&fqdn) else {
            continue;
        };
        let workloads = cx
            .service(svc_ns, name)
            .map(|svc| cx.select(&svc.selector, Some(svc_ns)))
            .unwrap_or_default();
        let strict = if workloads.is_empty() {
            Some(effective(cx, svc_ns, None)).filter(|(m, _)| *m == MtlsMode::Strict)
        } else {
            workloads
                .into_iter()
                .map(|w| effective(cx, svc_ns, Some(w)))
                .find(|(m, _)| *m == MtlsMode::Strict)
        };
        let Some((_, policy)) = strict else { continue };
        for field in fields {
            r.add(
                &MTLS_POLICY_CONFLICT,
                dr.obj,
                &field,
                format!(
                    "A DestinationRule and Policy are in conflict with regards to mTLS for host {fqdn}: the DestinationRule {:?} disables TLS ({field}) but the PeerAuthentication {policy:?} requires STRICT mutual TLS, so every request is refused. Use tls.mode ISTIO_MUTUAL (or remove it: mutual TLS is automatic), or relax the PeerAuthentication",
                    o.name
                ),
            );
        }
    }
}
