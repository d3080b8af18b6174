//! A part end to end, as the graded run and `campus-sim <part>` run it, through one path
//! ([`run`]): the experiments (simulated or real), the CSV files, the report section, the
//! three-models table, the table on the terminal, and the checks — an error if any failed,
//! with the command that runs that part alone again.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::multi_thread;
use crate::violation::Violation;
use crate::{assignment_map, async_rabbitmq, cluster, compare, reporting, streaming_kafka, sync_rest, traces, Mode};

/// The parts the lab runs end to end, each with what it needs to run: the graded run is A, B
/// and C; `cluster` runs B and C beyond one broker and one instance.
#[derive(Debug, Clone)]
pub enum Part {
    SyncRest(sync_rest::Config),
    AsyncRabbitmq { config: async_rabbitmq::Config, amqp_url: String },
    StreamingKafka { config: streaming_kafka::Config, bootstrap: String },
    Cluster { config: cluster::Config, brokers: cluster::Brokers },
}

impl Part {
    /// Its subcommand: `campus-sim <command>` runs it alone.
    pub fn command(&self) -> &'static str {
        match self {
            Part::SyncRest(_) => "sync-rest",
            Part::AsyncRabbitmq { .. } => "async-rabbitmq",
            Part::StreamingKafka { .. } => "streaming-kafka",
            Part::Cluster { .. } => "cluster",
        }
    }

    /// How the graded run's summary names it.
    pub fn name(&self) -> &'static str {
        match self {
            Part::SyncRest(_) => "Part A",
            Part::AsyncRabbitmq { .. } => "Part B",
            Part::StreamingKafka { .. } => "Part C",
            Part::Cluster { .. } => "Cluster",
        }
    }

    fn seed(&self) -> u64 {
        match self {
            Part::SyncRest(config) => config.seed,
            Part::AsyncRabbitmq { config, .. } => config.seed,
            Part::StreamingKafka { config, .. } => config.seed,
            Part::Cluster { config, .. } => config.messaging.seed,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        match self {
            Part::SyncRest(config) => Ok(config.validate()?),
            Part::AsyncRabbitmq { config, .. } => config.validate(),
            Part::StreamingKafka { config, .. } => config.validate(),
            Part::Cluster { config, .. } => config.validate(),
        }
    }

    /// The heading and the plan printed before it runs.
    fn announce(&self, mode: Mode) {
        let experiments =
            |list: Vec<&str>| crate::reporting::wrapped("  experiments: ", &list.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        match self {
            Part::SyncRest(config) => {
                println!("\nPart A — synchronous REST and gRPC ({mode})");
                for case in config.cases() {
                    println!("  {:<13} inventory fault: {}; {} requests", case.scenario, case.fault, case.requests);
                }
            }
            Part::AsyncRabbitmq { config, .. } => {
                println!("\nPart B — asynchronous messaging, RabbitMQ ({mode})");
                println!("{}", experiments(config.experiments()));
            }
            Part::StreamingKafka { config, .. } => {
                println!("\nPart C — streaming, Kafka ({mode})");
                println!("{}", experiments(config.experiments()));
            }
            Part::Cluster { config, .. } => {
                println!("\nBeyond one broker and one instance — Parts B and C on a cluster ({mode})");
                println!("{}", crate::reporting::wrapped("  runs: ", &config.names()));
            }
        }
    }

    /// What the times in its terminal table are.
    fn units(&self, mode: Mode) -> String {
        let time = if mode == Mode::Sim { "virtual" } else { "real" };
        match self {
            Part::SyncRest(_) => format!("latencies in ms{}", if mode == Mode::Sim { ", virtual time" } else { "" }),
            Part::AsyncRabbitmq { .. } => format!("drain_s in {time} seconds"),
            Part::StreamingKafka { .. } | Part::Cluster { .. } => format!("seconds of {time} time"),
        }
    }

    /// Runs its experiments (simulated, or for real with the lab's own executable to start the
    /// services from); nothing is written yet.
    fn run(&self, mode: Mode) -> anyhow::Result<Runs<'_>> {
        Ok(match self {
            Part::SyncRest(config) => Runs::SyncRest(
                config,
                by_mode(mode, || sync_rest::run_sim(config), |exe| async move { sync_rest::run_real(config, &exe).await })?,
            ),
            Part::AsyncRabbitmq { config, amqp_url } => Runs::AsyncRabbitmq(
                config,
                by_mode(
                    mode,
                    || async_rabbitmq::run_sim(config),
                    |exe| async move { async_rabbitmq::run_real(config, &exe, amqp_url).await },
                )?,
            ),
            Part::StreamingKafka { config, bootstrap } => Runs::StreamingKafka(
                config,
                by_mode(
                    mode,
                    || streaming_kafka::run_sim(config),
                    |exe| async move { streaming_kafka::run_real(config, &exe, bootstrap).await },
                )?,
            ),
            Part::Cluster { config, brokers } => Runs::Cluster(
                config,
                by_mode(mode, || cluster::run_sim(config), |exe| async move { cluster::run_real(config, &exe, brokers).await })?,
            ),
        })
    }
}

/// A part's experiments, run, with the configuration they ran with.
enum Runs<'a> {
    SyncRest(&'a sync_rest::Config, Vec<sync_rest::CaseRun>),
    AsyncRabbitmq(&'a async_rabbitmq::Config, Vec<async_rabbitmq::Run>),
    StreamingKafka(&'a streaming_kafka::Config, Vec<streaming_kafka::Run>),
    Cluster(&'a cluster::Config, Vec<cluster::Run>),
}

impl Runs<'_> {
    /// Writes the part's CSV files and report section; its terminal table and the checks that
    /// failed.
    fn write(self, out: &Path, mode: Mode) -> anyhow::Result<Written> {
        Ok(match self {
            Runs::SyncRest(config, runs) => {
                let summaries: Vec<_> = runs.iter().map(sync_rest::rows::Summary::of).collect();
                sync_rest::rows::write_csv(out, mode, &runs, &summaries)?;
                let traced: Vec<_> = runs.iter().map(|r| (r.case.scenario.name(), &r.traced)).collect();
                traces::write(out, campus::Model::SyncRest, mode, &traced)?;
                let violations = sync_rest::invariants::check(&runs, config);
                let left_behind: Vec<_> = runs.iter().filter_map(|r| r.left_behind.clone()).collect();
                sync_rest::output::write_report(out, config, mode, &summaries, &left_behind, &violations)?;
                Written { table: sync_rest::output::table(&summaries), violations }
            }
            Runs::AsyncRabbitmq(config, runs) => {
                let summaries: Vec<_> = runs.iter().map(async_rabbitmq::rows::Summary::of).collect();
                async_rabbitmq::rows::write_csv(out, mode, &runs, &summaries)?;
                let traced: Vec<_> = runs.iter().map(|r| (r.name(), &r.traced)).collect();
                traces::write(out, campus::Model::AsyncRabbitmq, mode, &traced)?;
                let violations: Vec<_> = runs.iter().flat_map(async_rabbitmq::invariants::check).collect();
                async_rabbitmq::output::write_report(out, config, mode, &runs, &summaries, &violations)?;
                Written { table: async_rabbitmq::output::table(&summaries), violations }
            }
            Runs::StreamingKafka(config, runs) => {
                streaming_kafka::rows::write_csv(out, mode, &runs)?;
                let traced: Vec<_> = runs.iter().map(|r| (r.name(), &r.traced)).collect();
                traces::write(out, campus::Model::StreamingKafka, mode, &traced)?;
                let mut violations: Vec<_> = runs.iter().flat_map(streaming_kafka::invariants::check).collect();
                violations.extend(streaming_kafka::invariants::same_across_runs(&runs).1);
                if let (Some(metrics), Some(other)) =
                    (streaming_kafka::rows::final_metrics(&runs), streaming_kafka::output::other_mode_metrics(out, mode)?)
                {
                    violations.extend(streaming_kafka::invariants::same_as_other_mode(metrics, &other));
                }
                streaming_kafka::output::write_report(out, config, mode, &runs, &violations)?;
                Written { table: streaming_kafka::output::table(&runs), violations }
            }
            Runs::Cluster(config, runs) => {
                let summaries: Vec<_> = runs.iter().map(cluster::rows::Summary::of).collect();
                cluster::rows::write_csv(out, mode, &runs, &summaries)?;
                let violations: Vec<_> = runs.iter().flat_map(cluster::Run::violations).collect();
                cluster::output::write_report(out, config, mode, &runs, &summaries, &violations)?;
                Written { table: cluster::output::table(&summaries), violations }
            }
        })
    }
}

/// What a part's run leaves for the end of the path.
struct Written {
    table: String,
    violations: Vec<Violation>,
}

/// `part` end to end: run, write its CSVs and report section, update the three-models table,
/// print its table, check. A failed check is an error that ends with the command running this
/// part alone again.
pub fn run(out: &Path, mode: Mode, part: &Part) -> anyhow::Result<()> {
    part.validate()?;
    part.announce(mode);
    let wall = Instant::now();
    let runs = part.run(mode)?;
    // From here on the part writes to `out`: one run at a time (several may run into it at once).
    let writing = reporting::writing(out)?;
    let written = runs.write(out, mode)?;
    compare::update(out)?;
    traces::update(out)?;
    assignment_map::update(out)?;
    drop(writing);
    println!("\n{}", written.table);
    println!("({}; wall time {:.2} s)", part.units(mode), wall.elapsed().as_secs_f64());
    if written.violations.is_empty() {
        println!("checks: all passed");
        return Ok(());
    }
    for v in &written.violations {
        eprintln!("check FAILED: {v}");
    }
    let rerun = rerun(part.command(), part.seed(), std::env::args().skip(1));
    eprintln!("rerun: {rerun}");
    anyhow::bail!("{} check(s) failed (also written to {}); rerun: {rerun}", written.violations.len(), out.join("report.md").display())
}

/// The experiments of one part, in the simulation or for real.
fn by_mode<T, F: Future<Output = anyhow::Result<T>>>(
    mode: Mode,
    sim: impl FnOnce() -> anyhow::Result<T>,
    real: impl FnOnce(PathBuf) -> F,
) -> anyhow::Result<T> {
    match mode {
        Mode::Sim => sim(),
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(real(exe))
        }
    }
}

/// The command line that runs the part `command` alone as this one ran it (`args`, without the
/// program's name): the part's subcommand where the graded run had none, the seed spelled out.
pub fn rerun(command: &str, seed: u64, args: impl IntoIterator<Item = String>) -> String {
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                args.next();
            }
            _ if arg.starts_with("--seed=") => {}
            _ => rest.push(arg),
        }
    }
    let mut line = vec!["campus-sim".to_owned()];
    if !rest.iter().any(|a| a == command) {
        line.push(command.to_owned());
    }
    line.extend(rest);
    line.extend(["--seed".to_owned(), seed.to_string()]);
    line.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ")
}

/// `word` as a shell reads it back: quoted when it holds anything but plain characters.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::rerun;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_part_of_the_graded_run_is_rerun_alone_with_its_seed_and_the_global_flags() {
        assert_eq!(
            rerun("async-rabbitmq", 2026, args("--real-brokers --out x")),
            "campus-sim async-rabbitmq --real-brokers --out x --seed 2026"
        );
        assert_eq!(rerun("sync-rest", 2026, Vec::new()), "campus-sim sync-rest --seed 2026");
    }

    #[test]
    fn a_part_run_alone_is_rerun_with_its_own_flags_and_the_seed_given_once() {
        assert_eq!(
            rerun("streaming-kafka", 7, args("--seed 7 streaming-kafka --events 500")),
            "campus-sim streaming-kafka --events 500 --seed 7"
        );
        assert_eq!(
            rerun("cluster", 9, args("cluster --seed=9 --model async-rabbitmq")),
            "campus-sim cluster --model async-rabbitmq --seed 9"
        );
    }

    #[test]
    fn a_word_with_spaces_or_quotes_is_quoted_for_the_shell() {
        assert_eq!(rerun("sync-rest", 1, vec!["--out".into(), "my out's".into()]), r"campus-sim sync-rest --out 'my out'\''s' --seed 1");
    }
}
