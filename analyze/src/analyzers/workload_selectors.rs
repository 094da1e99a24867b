//! IST0127 for the other policies with workload selectors: PeerAuthentication,
//! RequestAuthentication and DestinationRule (`workloadSelector`).

use std::collections::BTreeMap;

use crate::codes::NO_MATCHING_WORKLOADS_FOUND;
use crate::context::Context;
use crate::labels;
use crate::report::Report;

fn check(
    cx: &Context,
    r: &mut Report,
    obj: usize,
    field: &str,
    sel: Option<&BTreeMap<String, String>>,
) {
    let Some(sel) = sel.filter(|s| !s.is_empty()) else {
        return;
    };
    let selector = labels::selector_of(sel);
    if cx
        .select_for_policy(&selector, &cx.object(obj).namespace)
        .is_empty()
    {
        r.add(
            &NO_MATCHING_WORKLOADS_FOUND,
            obj,
            field,
            format!("No matching workloads for this resource with the following labels: {}; it applies to nothing. Fix the labels", labels::display(&selector)),
        );
    }
}

pub fn run(cx: &Context, r: &mut Report) {
    if !cx.knows_workloads() {
        return;
    }
    for pa in &cx.peer_authentications {
        check(
            cx,
            r,
            pa.obj,
            "spec.selector.matchLabels",
            pa.spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref()),
        );
    }
    for ra in &cx.request_authentications {
        check(
            cx,
            r,
            ra.obj,
            "spec.selector.matchLabels",
            ra.spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref()),
        );
    }
    for dr in &cx.destination_rules {
        check(
            cx,
            r,
            dr.obj,
            "spec.workloadSelector.matchLabels",
            dr.spec
                .workload_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref()),
        );
    }
}
