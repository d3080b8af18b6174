//! `campus-sim`: see `campus-sim --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = campus_sim::cli::Cli::parse();
    // In the simulation the services' own warnings (a broker outage the world injected, a
    // consumer resubscribing) are the experiment, traced and counted; on a terminal they would
    // only drown the results. Real services log them: they are what an operator must see.
    let default_filter = if cli.real_brokers || matches!(cli.command, Some(campus_sim::cli::Command::Serve(_))) { "warn" } else { "warn,campus=error" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()))
        .init();
    match campus_sim::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
