//! The install profiles of `profiles/`, embedded in the binary so that no cluster or checkout is
//! needed to render them.

use serde_json::Value;

use crate::error::InputError;
use crate::merge::merge;

/// The profile every other profile is layered on.
pub const BASE_PROFILE: &str = "default";

const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.yaml")),
    ("demo", include_str!("../../profiles/demo.yaml")),
    ("minimal", include_str!("../../profiles/minimal.yaml")),
    ("empty", include_str!("../../profiles/empty.yaml")),
];

const DESCRIPTION_ANNOTATION: &str = "install.meshctl.dev/description";

/// Names of the embedded profiles, in the order `profile list` shows them.
pub fn names() -> Vec<String> {
    EMBEDDED
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// The profile's own document, before it is layered on the default profile.
fn own_document(name: &str) -> Result<Value, InputError> {
    let (_, text) = EMBEDDED
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| InputError::UnknownProfile {
            name: name.to_owned(),
            known: names(),
        })?;
    // The embedded files are checked by the tests of this module, so a parse failure here is a
    // build defect; still report it as an input error rather than panic.
    serde_yaml_ng::from_str(text).map_err(|e| InputError::Parse {
        origin: format!("profiles/{name}.yaml"),
        line: e.location().map_or(0, |l| l.line()),
        column: e.location().map_or(0, |l| l.column()),
        field: String::new(),
        message: e.to_string(),
    })
}

/// The profile as a full MeshInstall document: the default profile with this one laid over it.
pub fn document(name: &str) -> Result<Value, InputError> {
    let own = own_document(name)?;
    if name == BASE_PROFILE {
        return Ok(own);
    }
    let mut doc = own_document(BASE_PROFILE)?;
    merge(&mut doc, own);
    Ok(doc)
}

/// The one-line description written in the profile's own file.
pub fn description(name: &str) -> Result<String, InputError> {
    let own = own_document(name)?;
    Ok(own
        .pointer(&format!(
            "/metadata/annotations/{}",
            DESCRIPTION_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_loads_with_a_description() {
        for name in names() {
            let doc = document(&name).expect("profile parses");
            assert_eq!(doc["spec"]["profile"], name.as_str());
            assert!(
                !description(&name).expect("description").is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let err = document("prod").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown profile \"prod\"; known profiles: default, demo, minimal, empty"
        );
    }
}
