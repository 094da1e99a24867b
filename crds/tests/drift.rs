//! The committed CRD YAML in `crds/generated/` is what the Rust types generate, file for file.

use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn committed_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("generated");
    let mut expected = BTreeSet::new();
    for crd in mesh_crds::all() {
        let name = mesh_crds::file_name(&crd);
        let generated = mesh_crds::to_yaml(&crd).expect("serializes");
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/generated/{name} differs from the types: run `cargo run -p meshctl-crds --bin crdgen` and commit the result"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("crds/generated exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present, expected,
        "crds/generated holds files no type generates"
    );
}

#[test]
fn meshinstall_crd_has_the_promised_shape() {
    let crd = mesh_crds::meshinstall::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("meshinstalls.install.meshctl.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["mi".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Profile", "Revision", "Status", "Age"]);
}
