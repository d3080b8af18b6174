//! A part end to end, as the graded run and `campus-sim <part>` run it: the experiments, the
//! CSV files, the table on the terminal, the report section, and the checks (an error if any
//! failed).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use super::multi_thread;
use crate::violation::Violation;
use crate::{async_rabbitmq, cluster, compare, streaming_kafka, sync_rest, Mode};

/// Part B end to end: run, write CSVs, print the table, write the report, check.
pub fn async_rabbitmq(out: &Path, mode: Mode, config: &async_rabbitmq::Config, amqp_url: &str) -> anyhow::Result<()> {
    config.validate()?;
    println!("\nPart B — asynchronous messaging, RabbitMQ ({mode})");
    println!("{}", crate::report::wrapped("  experiments: ", &config.experiments().iter().map(|e| e.to_string()).collect::<Vec<_>>()));
    let wall = Instant::now();
    let runs = match mode {
        Mode::Sim => async_rabbitmq::run_sim(config)?,
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(async_rabbitmq::run_real(config, &exe, amqp_url))?
        }
    };
    let summaries: Vec<_> = runs.iter().map(async_rabbitmq::rows::Summary::of).collect();
    async_rabbitmq::rows::write_csv(out, mode, &runs, &summaries)?;
    let violations: Vec<_> = runs.iter().flat_map(async_rabbitmq::invariants::check).collect();
    async_rabbitmq::output::write_report(out, config, mode, &runs, &summaries, &violations)?;
    compare::update(out)?;
    println!("\n{}", async_rabbitmq::output::table(&summaries));
    println!(
        "(drain_s in {} seconds; wall time {:.2} s)",
        if mode == Mode::Sim { "virtual" } else { "real" },
        wall.elapsed().as_secs_f64()
    );
    report_checks(out, &violations)
}

/// Part C end to end: run, write CSVs, print the table, write the report, check.
pub fn streaming_kafka(out: &Path, mode: Mode, config: &streaming_kafka::Config, bootstrap: &str) -> anyhow::Result<()> {
    config.validate()?;
    println!("\nPart C — streaming, Kafka ({mode})");
    println!("{}", crate::report::wrapped("  experiments: ", &config.experiments().iter().map(|e| e.to_string()).collect::<Vec<_>>()));
    let wall = Instant::now();
    let runs = match mode {
        Mode::Sim => streaming_kafka::run_sim(config)?,
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(streaming_kafka::run_real(config, &exe, bootstrap))?
        }
    };
    streaming_kafka::rows::write_csv(out, mode, &runs)?;
    let mut violations: Vec<_> = runs.iter().flat_map(streaming_kafka::invariants::check).collect();
    violations.extend(streaming_kafka::invariants::same_across_runs(&runs).1);
    if let (Some(metrics), Some(other)) =
        (streaming_kafka::rows::final_metrics(&runs), streaming_kafka::output::other_mode_metrics(out, mode)?)
    {
        violations.extend(streaming_kafka::invariants::same_as_other_mode(metrics, &other));
    }
    streaming_kafka::output::write_report(out, config, mode, &runs, &violations)?;
    compare::update(out)?;
    println!("\n{}", streaming_kafka::output::table(&runs));
    println!("(seconds of {} time; wall time {:.2} s)", if mode == Mode::Sim { "virtual" } else { "real" }, wall.elapsed().as_secs_f64());
    report_checks(out, &violations)
}

/// The clustered deployment end to end: run, write CSVs, print the table, write the report,
/// check.
pub fn cluster(out: &Path, mode: Mode, config: &cluster::Config, brokers: &cluster::Brokers) -> anyhow::Result<()> {
    config.validate()?;
    println!("\nBeyond one broker and one instance — Parts B and C on a cluster ({mode})");
    println!("{}", crate::report::wrapped("  runs: ", &config.names()));
    let wall = Instant::now();
    let runs = match mode {
        Mode::Sim => cluster::run_sim(config)?,
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(cluster::run_real(config, &exe, brokers))?
        }
    };
    let summaries: Vec<_> = runs.iter().map(cluster::rows::Summary::of).collect();
    cluster::rows::write_csv(out, mode, &runs, &summaries)?;
    let violations: Vec<_> = runs.iter().flat_map(cluster::Run::violations).collect();
    cluster::output::write_report(out, config, mode, &runs, &summaries, &violations)?;
    compare::update(out)?;
    println!("\n{}", cluster::output::table(&summaries));
    println!("(seconds of {} time; wall time {:.2} s)", if mode == Mode::Sim { "virtual" } else { "real" }, wall.elapsed().as_secs_f64());
    report_checks(out, &violations)
}

fn report_checks(out: &Path, violations: &[Violation]) -> anyhow::Result<()> {
    if violations.is_empty() {
        println!("checks: all passed");
        Ok(())
    } else {
        for v in violations {
            eprintln!("check FAILED: {v}");
        }
        anyhow::bail!("{} check(s) failed (also written to {})", violations.len(), out.join("report.md").display())
    }
}

/// Part A end to end: run, write CSVs, print the table, write the report, check.
pub fn sync_rest(out: &Path, mode: Mode, config: &sync_rest::Config) -> anyhow::Result<()> {
    config.validate()?;
    println!("\nPart A — synchronous REST ({mode})");
    for case in config.cases() {
        println!("  {:<13} inventory fault: {}; {} requests", case.scenario, case.fault, case.requests);
    }
    let wall = Instant::now();
    let runs = match mode {
        Mode::Sim => sync_rest::run_sim(config)?,
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(sync_rest::run_real(config, &exe))?
        }
    };
    let summaries: Vec<_> = runs.iter().map(sync_rest::rows::Summary::of).collect();
    sync_rest::rows::write_csv(out, mode, &runs, &summaries)?;
    let violations = sync_rest::invariants::check(&runs, config);
    sync_rest::output::write_report(out, config, mode, &summaries, &violations)?;
    compare::update(out)?;
    println!("\n{}", sync_rest::output::table(&summaries));
    println!("(latencies in ms{}; wall time {:.2} s)", if mode == Mode::Sim { ", virtual time" } else { "" }, wall.elapsed().as_secs_f64());
    report_checks(out, &violations)
}
