//! `meshctl profile list | dump | diff`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use mesh_operator::{profile, render};

use crate::input_args::InputArgs;
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// List the install profiles, one line each, with what each installs.
    List,
    /// Print the fully merged MeshInstall of a profile (with any -f and --set applied).
    Dump(DumpArgs),
    /// Show, path by path, how two profiles differ.
    Diff {
        /// The profile to compare from.
        from: String,
        /// The profile to compare to.
        to: String,
    },
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Profile to dump; `default` when neither this nor an overlay names one.
    profile: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

pub fn run(cmd: ProfileCommand) -> anyhow::Result<()> {
    match cmd {
        ProfileCommand::List => list(),
        ProfileCommand::Dump(args) => dump(args),
        ProfileCommand::Diff { from, to } => diff(&from, &to),
    }
}

fn list() -> anyhow::Result<()> {
    let names = profile::names();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for name in names {
        let install = mesh_operator::InstallInput {
            profile: Some(name.clone()),
            ..Default::default()
        }
        .resolve()?;
        let components: std::collections::BTreeSet<_> =
            render(&install).into_iter().map(|m| m.component).collect();
        let parts: Vec<String> = components.iter().map(|c| c.status_key()).collect();
        let installs = if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        };
        println!(
            "{name:<width$}  {} — installs: {installs}",
            profile::description(&name)?
        );
    }
    Ok(())
}

fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let install = args.input.to_input(args.profile)?.resolve()?;
    print!("{}", output::render(&install, args.output)?);
    Ok(())
}

fn diff(from: &str, to: &str) -> anyhow::Result<()> {
    let resolve = |name: &str| -> anyhow::Result<serde_json::Value> {
        let install = mesh_operator::InstallInput {
            profile: Some(name.to_owned()),
            ..Default::default()
        }
        .resolve()?;
        serde_json::to_value(&install.spec)
            .with_context(|| format!("cannot compare profile {name}"))
    };
    let changes = mesh_operator::diff::diff(&resolve(from)?, &resolve(to)?);
    if changes.is_empty() {
        println!("profiles {from} and {to} are the same");
    }
    for change in changes {
        println!("{change}");
    }
    Ok(())
}
