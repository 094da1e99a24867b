//! `mesh-sample`: a Bookinfo-shaped demo application. One binary; the first argument picks the
//! role (details, reviews, ratings, productpage), so one image serves every Deployment of the
//! demo and the sidecars see real service-to-service HTTP with the tracing headers carried along.

mod app;
mod cli;
mod server;
mod upstream;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // One thread is plenty for a demo service and keeps the pod's footprint small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-sample: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-sample: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
