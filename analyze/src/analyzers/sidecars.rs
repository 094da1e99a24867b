//! Sidecar resources: at most one per namespace without a workload selector (IST0111), every
//! selector matching workloads (IST0101), and no workload selected by two (IST0110).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::codes::*;
use crate::context::Context;
use crate::labels;
use crate::report::Report;

fn selector_labels<'a>(
    sc: &crate::context::Typed<'a, mesh_crds::istio::SidecarSpec>,
) -> Option<&'a std::collections::BTreeMap<String, String>> {
    sc.spec
        .workload_selector
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .filter(|l| !l.is_empty())
}

pub fn default_selectors(cx: &Context, r: &mut Report) {
    let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for sc in &cx.sidecars {
        if selector_labels(sc).is_none() {
            by_namespace
                .entry(cx.object(sc.obj).namespace.as_str())
                .or_default()
                .push(sc.obj);
        }
    }
    for (ns, objs) in by_namespace.into_iter().filter(|(_, o)| o.len() > 1) {
        let names: Vec<&str> = objs.iter().map(|&o| cx.object(o).name.as_str()).collect();
        for &o in &objs {
            r.add(
                &MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                o,
                "spec",
                format!("The Sidecars {names:?} in namespace {ns:?} have no workload selector, so which one is the namespace default is undefined; keep one without a selector and give the others a workloadSelector"),
            );
        }
    }
}

pub fn selectors(cx: &Context, r: &mut Report) {
    if !cx.knows_workloads() {
        return;
    }
    let mut selected_by: HashMap<usize, Vec<usize>> = HashMap::new();
    for sc in &cx.sidecars {
        let Some(sel) = selector_labels(sc) else {
            continue;
        };
        let selector = labels::selector_of(sel);
        let ns = cx.object(sc.obj).namespace.as_str();
        let ids = cx.select_ids(&selector, Some(ns));
        if ids.is_empty() {
            r.add(
                &REFERENCED_RESOURCE_NOT_FOUND,
                sc.obj,
                "spec.workloadSelector.labels",
                format!("Referenced selector not found: {:?}: no workload in namespace {ns} carries these labels, so this Sidecar applies to nothing; fix the labels", labels::display(&selector)),
            );
        }
        for id in ids {
            selected_by.entry(id).or_default().push(sc.obj);
        }
    }
    let mut conflicts: Vec<(usize, Vec<usize>)> = selected_by
        .into_iter()
        .filter(|(_, s)| s.len() > 1)
        .collect();
    conflicts.sort();
    for (id, sidecars) in conflicts {
        let w = &cx.workloads[id];
        let workload = cx.object(w.obj);
        let names: BTreeSet<&str> = sidecars
            .iter()
            .map(|&o| cx.object(o).name.as_str())
            .collect();
        for &o in &sidecars {
            r.add(
                &CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                o,
                "spec.workloadSelector",
                format!(
                    "The Sidecars {names:?} in namespace {:?} select the same workload {} {:?}, so which one applies is undefined; make their workload selectors disjoint",
                    w.namespace, workload.kind, workload.name
                ),
            );
        }
    }
}
