//! `campus-sim`: see `campus-sim --help`.

fn main() -> std::process::ExitCode {
    let cli = campus_sim::cli::parse();
    // In the simulation the services' own warnings (a broker outage the world injected, a
    // consumer resubscribing) are the experiment, traced and counted; on a terminal they would
    // only drown the results. Real services log them: they are what an operator must see.
    // The clients' own logs are off by default (RUST_LOG brings them back): lapin reports a
    // broker that went away as an I/O error on every connection, librdkafka as a burst of
    // "all brokers down" per client, where our adapters and loops log the loss and the return
    // once each.
    const CLIENTS: &str = "lapin=off,librdkafka=off,rdkafka=off";
    // `explore --real-brokers` is the simulation's exploration played for real: there too the
    // faults are the experiment, and the services it starts (with the lab's flags) keep quiet.
    // `bench --real-brokers` times the simulation's exploration too, 6,000 schedules of faults
    // per model in this process: their warnings were 206,000 lines of the test script's output;
    // its real services are processes of their own, which log as they always do.
    use campus_sim::cli::Command;
    let exploring = match &cli.command {
        Some(Command::Explore(_) | Command::Bench(_)) => true,
        Some(Command::Serve(args)) => args.lab != campus_sim::fault::served::ServedFaults::default(),
        _ => false,
    };
    let default_filter = if !exploring && (cli.real_brokers || matches!(cli.command, Some(Command::Serve(_)))) {
        format!("warn,{CLIENTS}")
    } else {
        format!("warn,campus=error,{CLIENTS}")
    };
    campus::telemetry::stderr::log_to_stderr(&default_filter);
    match campus_sim::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
