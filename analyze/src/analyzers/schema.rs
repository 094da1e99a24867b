//! IST0106: every Istio object against its CRD's schema, then against its Rust type (which
//! also refuses what the schema cannot express), then against the rules of meshd's validation
//! webhook (`mesh_crds::validate`, Istio's semantic validation). The checks ran when the object
//! was made (see `spec.rs`); this reports what they found.

use crate::codes::SCHEMA_VALIDATION_ERROR;
use crate::context::Context;
use crate::report::Report;

pub fn run(cx: &Context, r: &mut Report) {
    for (i, o) in cx.objects.iter().enumerate() {
        for p in &o.spec_problems {
            let consequence = if p.semantic {
                "meshd's validation webhook refuses the object, and the proxies could not use it"
            } else if p.unknown_field {
                "the API server drops unknown fields, so this setting would be silently ignored; fix or remove it"
            } else if o.istio.is_none() {
                "the API server refuses the object until this is fixed (no other analyzer checked it)"
            } else {
                "the API server refuses the object until this is fixed"
            };
            r.add(
                &SCHEMA_VALIDATION_ERROR,
                i,
                &p.field,
                format!(
                    "Schema validation error: {}: {}; {consequence}",
                    p.field, p.message
                ),
            );
        }
    }
}
