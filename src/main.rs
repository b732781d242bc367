//! The `consentry` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use consentry::{
    cli::{self, Cli, Command},
    config::Config,
    telemetry,
};

fn main() -> ExitCode {
    let args = Cli::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("consentry: {e}");
            return ExitCode::from(2);
        }
    };
    let _logs = telemetry::init(&config.log);
    for note in &config.ignored_variables {
        tracing::warn!("{note}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consentry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = args.command.unwrap_or(Command::Serve);
    match runtime.block_on(cli::run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consentry: {e}");
            e.exit_code()
        }
    }
}
