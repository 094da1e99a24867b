//! The base: the mesh namespace and the Istio API CRDs every other part reads.

use serde_json::Value;

use super::context::{sort_map, Context};
use super::{Component, Manifest};

pub fn render(ctx: &Context, out: &mut Vec<Manifest>) {
    let component = Component::Base;
    if ctx.anything_enabled() {
        out.push(Manifest {
            component: component.clone(),
            object: ctx.namespace_object(&ctx.namespace, &component),
        });
    }
    if ctx.base().is_none() {
        return;
    }
    for crd in mesh_crds::istio::crds() {
        let mut object = serde_json::to_value(&crd).unwrap_or(Value::Null);
        let labels = object["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut merged = ctx.labels(&component);
        merged.extend(labels);
        sort_map(&mut merged);
        object["metadata"]["labels"] = Value::Object(merged);
        out.push(Manifest {
            component: component.clone(),
            object,
        });
    }
}
