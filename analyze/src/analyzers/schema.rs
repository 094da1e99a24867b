//! IST0106: every Istio object against its CRD's schema, then against its Rust type (which
//! also refuses what the schema cannot express, such as a misspelt field inside a map value).

use std::collections::HashSet;

use crate::codes::SCHEMA_VALIDATION_ERROR;
use crate::context::Context;
use crate::report::Report;
use crate::schema;

fn is_istio(group: &str) -> bool {
    group == "networking.istio.io" || group == "security.istio.io"
}

pub fn run(cx: &Context, r: &mut Report) {
    let mut reported = HashSet::new();
    for (i, o) in cx.objects.iter().enumerate() {
        if !is_istio(&o.group) {
            continue;
        }
        for v in schema::validate(&o.kind, o.spec()) {
            reported.insert(i);
            let consequence = if v.message.starts_with("unknown field") {
                "the API server drops unknown fields, so this setting would be silently ignored; fix or remove it"
            } else {
                "the API server refuses the object until this is fixed"
            };
            r.add(
                &SCHEMA_VALIDATION_ERROR,
                i,
                &v.field,
                format!("Schema validation error: {}: {}; {consequence}", v.field, v.message),
            );
        }
    }
    for e in &cx.type_errors {
        if reported.contains(&e.obj) {
            continue;
        }
        r.add(
            &SCHEMA_VALIDATION_ERROR,
            e.obj,
            &e.field,
            format!(
                "Schema validation error: {}: {}; fix the field (no analyzer checked the rest of this {})",
                e.field,
                e.message,
                cx.object(e.obj).kind
            ),
        );
    }
}
