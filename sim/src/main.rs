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
    use campus_sim::cli::Command;
    let exploring = match &cli.command {
        Some(Command::Explore(_)) => true,
        Some(Command::Serve(args)) => args.lab != campus_sim::fault::served::ServedFaults::default(),
        _ => false,
    };
    let default_filter = if !exploring && (cli.real_brokers || matches!(cli.command, Some(Command::Serve(_)))) {
        format!("warn,{CLIENTS}")
    } else {
        format!("warn,campus=error,{CLIENTS}")
    };
    // Colour only for a person at a terminal: a file, a pipe or CI gets plain text, and so does
    // anyone who sets NO_COLOR (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.as_str().into()))
        .init();
    match campus_sim::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
