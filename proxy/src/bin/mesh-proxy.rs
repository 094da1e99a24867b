//! `mesh-proxy`: the data plane's binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_proxy::iptables::{self, CaptureOptions};

#[derive(Parser)]
#[command(name = "mesh-proxy", version, about = "The meshctl data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the nat-table rules that capture the pod's TCP traffic (the init container's job).
    Iptables(IptablesArgs),
}

#[derive(clap::Args)]
struct IptablesArgs {
    #[command(flatten)]
    options: CaptureOptions,
    /// Print the rules (iptables-restore input) instead of loading them.
    #[arg(long)]
    dry_run: bool,
    /// Remove the rules an earlier run wrote, and nothing else.
    #[arg(long, conflicts_with = "dry_run")]
    cleanup: bool,
}

fn run_iptables(args: IptablesArgs) -> anyhow::Result<()> {
    if args.cleanup {
        let removed = iptables::cleanup()?;
        eprintln!(
            "{}",
            if removed {
                "removed the capture rules"
            } else {
                "no capture rules to remove"
            }
        );
        return Ok(());
    }
    let plan = args.options.plan()?;
    if args.dry_run {
        print!("{}", iptables::restore_script(&plan));
        return Ok(());
    }
    let outcome = iptables::apply(&plan)?;
    eprintln!(
        "{} {} nat rules: outbound TCP → {}, inbound TCP → {}, uid {} exempt",
        if outcome.replaced {
            "replaced the capture rules with"
        } else {
            "loaded"
        },
        outcome.rules,
        plan.outbound_port,
        plan.inbound_port,
        plan.proxy_uid
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Iptables(args) => run_iptables(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
