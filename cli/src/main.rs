//! `meshctl`: the command line of the mesh.

mod commands;
mod input_args;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshctl",
    version,
    about = "Install, configure and inspect the meshctl service mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show, dump and compare install profiles.
    #[command(subcommand)]
    Profile(commands::profile::ProfileCommand),
    /// Render the Kubernetes objects of an installation without a cluster.
    #[command(subcommand)]
    Manifest(commands::manifest::ManifestCommand),
    /// Print the version of meshctl.
    Version(commands::version::VersionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => commands::profile::run(cmd),
        Command::Manifest(cmd) => commands::manifest::run(cmd),
        Command::Version(args) => commands::version::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
