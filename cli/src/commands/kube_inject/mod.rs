//! `meshctl kube-inject`: adds the sidecar to the workloads of a manifest, offline by default.

mod documents;
mod source;

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;

use crate::config_files::MeshConfigArgs;
use crate::kube_client::ClusterArgs;

#[derive(Args, Debug)]
pub struct KubeInjectArgs {
    /// Manifest to inject: a file, a directory (every .yaml/.yml/.json under it), or - for
    /// standard input. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    filename: Vec<PathBuf>,
    /// Write the result here instead of standard output (only when everything succeeded).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Control-plane revision whose sidecar settings to use.
    #[arg(short = 'r', long)]
    revision: Option<String>,
    /// Install profile whose sidecar settings to use, offline (default: the installed mesh's
    /// when a cluster with one answers, else the default profile).
    #[arg(long)]
    profile: Option<String>,
    /// Use the installed mesh's settings from the cluster, and fail when there are none.
    #[arg(long, conflicts_with = "profile")]
    from_cluster: bool,
    #[command(flatten)]
    mesh_config: MeshConfigArgs,
    /// Sidecar settings: the injector ConfigMap (data.values and data.config), or its values.
    #[arg(
        long = "injectConfigFile",
        alias = "inject-config-file",
        value_name = "FILE"
    )]
    inject_config_file: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: KubeInjectArgs) -> anyhow::Result<()> {
    let config = source::load(&source::Choice {
        profile: args.profile.as_deref(),
        revision: args.revision.as_deref(),
        from_cluster: args.from_cluster,
        inject_config_file: args.inject_config_file.as_deref(),
        mesh_config_file: args.mesh_config.mesh_config_file.as_deref(),
        cluster: &args.cluster,
    })?;
    let inputs = mesh_analyze::input::read_inputs(&args.filename)?;
    let mut out = String::with_capacity(inputs.iter().map(|i| i.text.len() * 2).sum());
    let mut report = documents::Report::default();
    for input in &inputs {
        documents::process(input, &config, &mut out, &mut report);
    }
    if !report.errors.is_empty() {
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        return Err(anyhow!(
            "{} document(s) could not be injected; nothing was written",
            report.errors.len()
        ));
    }
    match &args.output {
        Some(path) => write_atomically(path, &out)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| anyhow!("cannot write to standard output: {e}"))?;
        }
    }
    Ok(())
}

/// The output file is replaced whole or not at all. Devices and pipes (`-o /dev/stdout`) are
/// written directly: renaming over them would replace the device node.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::write(path, text)
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.meshctl-tmp"));
    std::fs::write(&tmp, text).map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}
