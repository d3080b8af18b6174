//! `campus`: one service of the campus food-ordering workflow, as a process (what the compose
//! files' containers run). `campus --help` lists every flag and its `CAMPUS_*` variable, the
//! fault flags of Part A's Inventory among them; the lab's `campus-sim serve` is the same entry
//! inside the lab's binary.

use clap::Parser;

/// One service of the campus food-ordering workflow. Prints `READY <service> http://<addr>` once
/// listening, serves until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "campus", version)]
struct Cli {
    #[command(flatten)]
    args: campus::serve::Args,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Warnings and up; the broker clients' own logs off (our adapters log a broker's loss and
    // return once each).
    campus::telemetry::stderr::log_to_stderr("warn,lapin=off,librdkafka=off,rdkafka=off");
    // One thread: each request is a chain of short steps, and the services share the machine's
    // cores with the others (docs/benchmarks.md measured it against a multi-thread runtime).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(campus::serve::run(cli.args.config, cli.args.faults.plan())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
