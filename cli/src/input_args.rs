//! The flags that shape an installation, shared by every command that renders one.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mesh_operator::{InstallInput, Overlay};

#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Overlay file(s) holding a MeshInstall, applied in order over the profile; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set a spec field, e.g. `meshConfig.accessLogFile=/dev/stdout` or
    /// `components.ingressGateways[name=mesh-ingressgateway].enabled=false`; applied last, in order.
    #[arg(short = 's', long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    /// Control-plane revision (same as `--set revision=REV`).
    #[arg(short = 'r', long = "revision", value_name = "REV")]
    pub revision: Option<String>,
}

impl InputArgs {
    pub fn to_input(&self, profile: Option<String>) -> anyhow::Result<InstallInput> {
        let mut overlays = Vec::new();
        for file in &self.files {
            if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the overlay from standard input")?;
                overlays.push(Overlay {
                    origin: "<stdin>".to_owned(),
                    text,
                });
            } else {
                overlays.push(Overlay::read(file)?);
            }
        }
        let mut sets = Vec::new();
        if let Some(rev) = &self.revision {
            sets.push(format!("revision={rev}"));
        }
        sets.extend(self.sets.iter().cloned());
        Ok(InstallInput {
            profile,
            overlays,
            sets,
        })
    }
}
