//! Configuration files users pass to several commands (`--meshConfigFile`): read, parsed with
//! file:line:column errors.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use serde_json::Value;

/// `--meshConfigFile`, for the commands that read the mesh config.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MeshConfigArgs {
    /// Mesh config: a file with the mesh config, or the mesh ConfigMap (its data.mesh).
    #[arg(
        long = "meshConfigFile",
        alias = "mesh-config-file",
        value_name = "FILE"
    )]
    pub mesh_config_file: Option<PathBuf>,
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn parse_yaml(path: &Path, text: &str) -> anyhow::Result<Value> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow!("{}{at}: {e}", path.display())
    })
}

/// A mesh ConfigMap (its `mesh`), or the mesh config itself.
pub fn mesh_file(path: &Path) -> anyhow::Result<String> {
    let text = read(path)?;
    let doc = parse_yaml(path, &text)?;
    if doc["kind"] == "ConfigMap" {
        return doc["data"]["mesh"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{}: the ConfigMap has no data.mesh", path.display()));
    }
    Ok(text)
}
