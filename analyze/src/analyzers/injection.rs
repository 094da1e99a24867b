//! IST0102, IST0123, IST0103 and MSH0003: how namespaces and pods are labelled for injection,
//! and pods that should have the proxy but do not.

use serde_json::Value;

use mesh_inject::decide::switch;
use mesh_inject::names::{ANNOTATION_INJECT, LABEL_INJECT};

use crate::codes::*;
use crate::context::Context;
use crate::injection::{
    has_proxy, is_system_namespace, namespace_injection, pod_is_injected, NamespaceInjection,
    LABEL_INJECTION, LABEL_REVISION,
};
use crate::object::Origin;
use crate::report::Report;

pub fn run(cx: &Context, r: &mut Report) {
    namespaces(cx, r);
    pods(cx, r);
    switches(cx, r);
}

fn namespaces(cx: &Context, r: &mut Report) {
    for (&name, &i) in &cx.namespace_objects {
        if is_system_namespace(name) || name == cx.mesh.root_namespace {
            continue;
        }
        let labels = cx.object(i).labels();
        if labels.contains_key(LABEL_INJECTION) && labels.contains_key(LABEL_REVISION) {
            r.add(
                &NAMESPACE_MULTIPLE_INJECTION_LABELS,
                i,
                "metadata.labels",
                format!(
                    "The namespace has both injection labels ({LABEL_INJECTION}={}, {LABEL_REVISION}={}); {LABEL_INJECTION} wins and the revision is ignored. Keep one: `kubectl label namespace {name} {LABEL_INJECTION}-` to use the revision",
                    labels[LABEL_INJECTION].as_str().unwrap_or(""),
                    labels[LABEL_REVISION].as_str().unwrap_or("")
                ),
            );
        } else if namespace_injection(labels) == NamespaceInjection::Unlabelled {
            r.add(
                &NAMESPACE_NOT_INJECTED,
                i,
                "metadata.name",
                format!(
                    "The namespace is not enabled for injection: its pods get no proxy unless they ask for one. Run `kubectl label namespace {name} istio-injection=enabled` to enable it, or `kubectl label namespace {name} istio-injection=disabled` to mark it as deliberately outside the mesh"
                ),
            );
        }
    }
}

/// A pod from a file that was never created (no uid, no status) will be injected when it is;
/// only pods that exist can be missing the proxy.
fn was_created(cx: &Context, i: usize) -> bool {
    let o = cx.object(i);
    matches!(o.origin, Origin::Cluster)
        || o.value["metadata"]["uid"].is_string()
        || o.value["status"]["phase"].is_string()
}

fn pods(cx: &Context, r: &mut Report) {
    for &i in cx.by_kind.get("Pod").into_iter().flatten() {
        let o = cx.object(i);
        if !o.group.is_empty() || !was_created(cx, i) {
            continue;
        }
        let state = cx.namespace_injection(&o.namespace);
        if pod_is_injected(&o.value["metadata"], o.spec(), &o.namespace, &state)
            && !has_proxy(o.spec())
        {
            r.add(
                &POD_MISSING_PROXY,
                i,
                "spec.containers",
                format!(
                    "The pod {}/{} is missing the proxy although its namespace (or the pod) asks for injection: it was probably created before injection was enabled. Restart its workload (`kubectl rollout restart`), or label the pod {LABEL_INJECT}=false to keep it out of the mesh",
                    o.namespace, o.name
                ),
            );
        }
    }
}

fn switches(cx: &Context, r: &mut Report) {
    for w in &cx.workloads {
        let label = w.labels.get(LABEL_INJECT).and_then(Value::as_str);
        let annotation = w.annotations.get(ANNOTATION_INJECT).and_then(Value::as_str);
        let (Some(label), Some(annotation)) = (label, annotation) else {
            continue;
        };
        match (switch(label), switch(annotation)) {
            (Some(l), Some(a)) if l != a => r.add(
                &CONFLICTING_POD_INJECTION_SWITCHES,
                w.obj,
                &format!("{}.annotations[\"{ANNOTATION_INJECT}\"]", w.metadata_path()),
                format!(
                    "The pod's {LABEL_INJECT} label says {label:?} and its annotation says {annotation:?}; the label wins, so the pod {} injected. Remove the annotation",
                    if l { "is" } else { "is not" }
                ),
            ),
            _ => {}
        }
    }
}
