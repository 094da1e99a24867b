//! IST0002: fields of the Istio API that are deprecated, with what replaces each.

use mesh_crds::istio::networking::{SimpleLb, TrafficPolicy};

use crate::codes::DEPRECATED;
use crate::context::Context;
use crate::report::Report;

fn deprecated(r: &mut Report, obj: usize, field: &str, instead: &str) {
    r.add(
        &DEPRECATED,
        obj,
        field,
        format!(
            "Deprecated: {field} is deprecated and may stop working in a future release; {instead}"
        ),
    );
}

fn traffic_policy(r: &mut Report, obj: usize, path: &str, tp: &TrafficPolicy) {
    let lb = |r: &mut Report,
              path: &str,
              lb: &Option<mesh_crds::istio::networking::LoadBalancerSettings>| {
        let Some(lb) = lb else { return };
        if lb.simple == Some(SimpleLb::LeastConn) {
            deprecated(
                r,
                obj,
                &format!("{path}.loadBalancer.simple"),
                "use LEAST_REQUEST, which is what LEAST_CONN means",
            );
        }
        if lb.warmup_duration_secs.is_some() {
            deprecated(
                r,
                obj,
                &format!("{path}.loadBalancer.warmupDurationSecs"),
                "use loadBalancer.warmup.duration",
            );
        }
        if lb
            .consistent_hash
            .as_ref()
            .is_some_and(|c| c.minimum_ring_size.is_some())
        {
            deprecated(
                r,
                obj,
                &format!("{path}.loadBalancer.consistentHash.minimumRingSize"),
                "use consistentHash.ringHash.minimumRingSize",
            );
        }
    };
    let od = |r: &mut Report,
              path: &str,
              od: &Option<mesh_crds::istio::networking::OutlierDetection>| {
        if od.as_ref().is_some_and(|o| o.consecutive_errors.is_some()) {
            deprecated(
                r,
                obj,
                &format!("{path}.outlierDetection.consecutiveErrors"),
                "use consecutive5xxErrors or consecutiveGatewayErrors",
            );
        }
    };
    lb(r, path, &tp.load_balancer);
    od(r, path, &tp.outlier_detection);
    for (i, p) in tp.port_level_settings.iter().flatten().enumerate() {
        let pp = format!("{path}.portLevelSettings[{i}]");
        lb(r, &pp, &p.load_balancer);
        od(r, &pp, &p.outlier_detection);
    }
}

pub fn run(cx: &Context, r: &mut Report) {
    for vs in &cx.virtual_services {
        for (i, http) in vs.spec.http.iter().flatten().enumerate() {
            if http.mirror_percent.is_some() {
                deprecated(
                    r,
                    vs.obj,
                    &format!("spec.http[{i}].mirrorPercent"),
                    "use mirrorPercentage: {value: N}",
                );
            }
            if http.mirror_percent_snake_case.is_some() {
                deprecated(
                    r,
                    vs.obj,
                    &format!("spec.http[{i}].mirror_percent"),
                    "use mirrorPercentage: {value: N}",
                );
            }
            if http
                .fault
                .as_ref()
                .and_then(|f| f.delay.as_ref())
                .is_some_and(|d| d.percent.is_some())
            {
                deprecated(
                    r,
                    vs.obj,
                    &format!("spec.http[{i}].fault.delay.percent"),
                    "use fault.delay.percentage: {value: N}",
                );
            }
        }
    }
    for dr in &cx.destination_rules {
        if let Some(tp) = &dr.spec.traffic_policy {
            traffic_policy(r, dr.obj, "spec.trafficPolicy", tp);
        }
        for (i, s) in dr.spec.subsets.iter().flatten().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                traffic_policy(r, dr.obj, &format!("spec.subsets[{i}].trafficPolicy"), tp);
            }
        }
    }
    for ap in &cx.authorization_policies {
        if ap.spec.target_ref.is_some() {
            deprecated(r, ap.obj, "spec.targetRef", "use targetRefs: [ ... ]");
        }
    }
    for ra in &cx.request_authentications {
        if ra.spec.target_ref.is_some() {
            deprecated(r, ra.obj, "spec.targetRef", "use targetRefs: [ ... ]");
        }
    }
    for gw in &cx.gateways {
        for (i, s) in gw.spec.servers.iter().flatten().enumerate() {
            if s.port.target_port.is_some() {
                deprecated(
                    r,
                    gw.obj,
                    &format!("spec.servers[{i}].port.targetPort"),
                    "remove it: the gateway's Service maps ports to the pod",
                );
            }
        }
    }
    for sc in &cx.sidecars {
        for (i, l) in sc.spec.ingress.iter().flatten().enumerate() {
            if l.port.target_port.is_some() {
                deprecated(
                    r,
                    sc.obj,
                    &format!("spec.ingress[{i}].port.targetPort"),
                    "use defaultEndpoint to say where traffic goes",
                );
            }
        }
    }
}
