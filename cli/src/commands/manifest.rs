//! `meshctl manifest generate`: every object an install would create, without a cluster.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use mesh_operator::render;

use crate::input_args::InputArgs;

#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Print the Kubernetes objects of an installation in apply order, as `kubectl apply -f -` takes them.
    Generate(GenerateArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Install profile: default, demo, minimal or empty.
    #[arg(short = 'p', long = "profile")]
    profile: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    /// Write one file per component into this directory instead of printing.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: Option<PathBuf>,
}

pub fn run(cmd: ManifestCommand) -> anyhow::Result<()> {
    match cmd {
        ManifestCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let install = args.input.to_input(args.profile)?.resolve()?;
    let manifests = render::render(&install);
    match args.output {
        None => {
            print!("{}", render::to_yaml(&manifests)?);
            Ok(())
        }
        Some(dir) => write_dir(&dir, &manifests),
    }
}

/// Writes every file before touching the old ones, then removes files of components this render
/// no longer has, so the directory always holds one complete installation.
fn write_dir(dir: &Path, manifests: &[render::Manifest]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = render::by_file(manifests);
    let mut staged = Vec::new();
    for (name, objects) in &files {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, render::to_yaml(objects)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        staged.push((tmp, dir.join(name)));
    }
    for (tmp, path) in &staged {
        std::fs::rename(tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let current: Vec<&String> = files.iter().map(|(name, _)| name).collect();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_component_file(&name) && !current.contains(&&name) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove stale {}", entry.path().display()))?;
        }
    }
    for (name, objects) in &files {
        eprintln!(
            "wrote {} ({} objects)",
            dir.join(name).display(),
            objects.len()
        );
    }
    Ok(())
}

/// Files `-o DIR` writes: `NN-<component>.yaml`.
fn is_component_file(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".yaml") else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() > 3
        && bytes[0].is_ascii_digit()
        && bytes[1].is_ascii_digit()
        && bytes[2] == b'-'
        && [
            "base",
            "control-plane",
            "ingress-gateway-",
            "egress-gateway-",
            "addon-",
        ]
        .iter()
        .any(|p| rest[3..].starts_with(p))
}
