//! The `campus-sim` command line: parsing (clap) and dispatch. The work is in the modules.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::serve::ServeArgs;
use crate::sync_rest::{self, Experiment};
use crate::{checker, Mode, DEFAULT_SEED};

const ABOUT: &str = "A lab that runs one campus food-ordering workflow (Order → Inventory → \
Notification) over different communication models and measures how each behaves under faults.";

const LONG_ABOUT: &str = "A lab that runs one campus food-ordering workflow (Order → Inventory → \
Notification) over different communication models and measures how each behaves under faults.

Without a subcommand, runs every part built so far with the assignment's parameters and writes \
out/ (CSV files and report.md). By default everything runs in a deterministic simulation: every \
service is a task of one process, the network is in memory and time is virtual, so a 2 s delay \
costs no wall time and one --seed reproduces a run byte for byte. With --real-brokers the same \
service code runs as separate processes over real sockets.

Parts built so far:
  A  sync-rest   synchronous REST: baseline, 2 s delay, timeout, failure";

#[derive(Debug, Parser)]
#[command(name = "campus-sim", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Run over real processes and sockets (and, for the messaging parts, real brokers) instead
    /// of the simulation.
    #[arg(long, global = true)]
    pub real_brokers: bool,
    /// Seed of everything random in a run: workload, simulated latencies, fault timings.
    #[arg(long, global = true, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Directory for the CSV files and report.md (created if missing).
    #[arg(long, global = true, default_value = "out")]
    pub out: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Part A: synchronous REST. Order calls Inventory, then Notification, over HTTP; measures
    /// latency and throughput with Inventory healthy, delayed, timing out, down and failing.
    SyncRest(SyncRestArgs),
    /// Run one service as its own process (what --real-brokers starts, and what compose runs).
    Serve(ServeArgs),
}

/// `campus-sim sync-rest …`
#[derive(Debug, Clone, clap::Args)]
pub struct SyncRestArgs {
    /// Which experiment(s): baseline, delay (Inventory 2 s slower), timeout (Order gives up
    /// after 1 s: 504), failure (Inventory down, then answering 500: 503), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub experiment: Experiment,
    /// Requests sent in `baseline` and in each `failure` case.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Requests sent in `delay` and `timeout`, where each takes 1–2 s (of virtual time in the
    /// simulation, of real time with --real-brokers).
    #[arg(long, default_value_t = 100)]
    pub slow_requests: usize,
    /// Clients sending at once, each sending its next order when the last one is answered.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Inventory's injected delay in `delay` and `timeout`, in ms.
    #[arg(long, default_value_t = 2000)]
    pub delay_ms: u64,
    /// Order's timeout on its calls in `timeout`, in ms (must be below --delay-ms).
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Order's timeout on its calls in the other experiments, in ms (must be above --delay-ms).
    #[arg(long, default_value_t = 5000)]
    pub patient_timeout_ms: u64,
    /// Units of each menu item Inventory starts with (enough that `baseline` never runs out).
    #[arg(long, default_value_t = 5000)]
    pub stock: u32,
}

impl Default for SyncRestArgs {
    fn default() -> Self {
        SyncRestArgs::parse_from_defaults()
    }
}

impl SyncRestArgs {
    fn parse_from_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: SyncRestArgs,
        }
        Only::parse_from(["sync-rest"]).args
    }

    pub fn config(&self, seed: u64) -> sync_rest::Config {
        sync_rest::Config {
            seed,
            experiment: self.experiment,
            requests: self.requests,
            slow_requests: self.slow_requests,
            concurrency: self.concurrency,
            delay: Duration::from_millis(self.delay_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            patient_timeout: Duration::from_millis(self.patient_timeout_ms),
            stock: self.stock,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mode = if cli.real_brokers { Mode::Real } else { Mode::Sim };
    match cli.command {
        Some(Command::Serve(args)) => multi_thread()?.block_on(crate::serve::run(args)),
        Some(Command::SyncRest(args)) => {
            prepare_out(&cli.out)?;
            println!("campus-sim: seed={} mode={mode} out={}", cli.seed, cli.out.display());
            run_sync_rest(&cli.out, mode, &args.config(cli.seed))
        }
        None => {
            prepare_out(&cli.out)?;
            println!("campus-sim: seed={} mode={mode} out={}", cli.seed, cli.out.display());
            run_sync_rest(&cli.out, mode, &SyncRestArgs::default().config(cli.seed))?;
            println!("\nreport: {}", cli.out.join("report.md").display());
            Ok(())
        }
    }
}

fn prepare_out(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating the output directory {}", out.display()))
}

fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")
}

/// Part A end to end: run, write CSVs, print the table, write the report, check.
pub fn run_sync_rest(out: &std::path::Path, mode: Mode, config: &sync_rest::Config) -> anyhow::Result<()> {
    config.validate()?;
    println!("\nPart A — synchronous REST ({mode})");
    for case in config.cases() {
        println!("  {:<13} inventory fault: {}; {} requests", case.experiment, case.fault, case.requests);
    }
    let wall = Instant::now();
    let runs = match mode {
        Mode::Sim => sync_rest::run_sim(config),
        Mode::Real => {
            let exe = std::env::current_exe().context("locating the campus-sim executable")?;
            multi_thread()?.block_on(sync_rest::run_real(config, &exe))?
        }
    };
    let summaries: Vec<_> = runs.iter().map(sync_rest::output::Summary::of).collect();
    sync_rest::output::write_csv(out, mode, &runs, &summaries)?;
    let violations = checker::sync_rest(&runs, config);
    sync_rest::output::write_report(out, config, mode, &summaries, &violations)?;
    println!("\n{}", sync_rest::output::table(&summaries));
    println!("(latencies in ms{}; wall time {:.2} s)", if mode == Mode::Sim { ", virtual time" } else { "" }, wall.elapsed().as_secs_f64());
    if violations.is_empty() {
        println!("checks: all passed");
        Ok(())
    } else {
        for v in &violations {
            eprintln!("check FAILED: {v}");
        }
        anyhow::bail!("{} check(s) failed (also written to {})", violations.len(), out.join("report.md").display())
    }
}
