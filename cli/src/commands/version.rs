//! `meshctl version`.

use clap::Args;
use serde_json::json;

use crate::output::{self, Format};

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print only the version number.
    #[arg(long)]
    short: bool,
    /// Print as yaml or json instead of a sentence.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
}

pub fn run(args: VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if args.short {
        println!("{version}");
        return Ok(());
    }
    match args.output {
        None => println!(
            "meshctl version: {version} ({}-{})",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        Some(format) => {
            let info = json!({"clientVersion": {"version": version, "os": std::env::consts::OS, "arch": std::env::consts::ARCH}});
            print!("{}", output::render(&info, format)?);
        }
    }
    Ok(())
}
