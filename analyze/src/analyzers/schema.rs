//! IST0106: every Istio object against its CRD's schema, then against its Rust type (which
//! also refuses what the schema cannot express). Both checks ran when the object was made
//! (see `spec.rs`); this reports what they found.

use crate::codes::SCHEMA_VALIDATION_ERROR;
use crate::context::Context;
use crate::report::Report;

pub fn run(cx: &Context, r: &mut Report) {
    for (i, o) in cx.objects.iter().enumerate() {
        for p in &o.spec_problems {
            let consequence = if p.unknown_field {
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
