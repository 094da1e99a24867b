//! Writes the CRD YAML of every type into `crds/generated/`, or with `--check` fails when the
//! committed files differ from what the types generate.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("generated");
    let mut stale = Vec::new();
    for crd in mesh_crds::all() {
        let path = dir.join(mesh_crds::file_name(&crd));
        let yaml = match mesh_crds::to_yaml(&crd) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("error: cannot serialize {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "error: these CRDs differ from the types: {}\nrun `cargo run -p meshctl-crds --bin crdgen` and commit the result",
            stale.join(", ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
