//! `campus-sim explore`: one exploration per model (or one replay), a summary line each, the
//! shrunk counterexample when there is one, and `explore_summary.csv`.

use std::path::Path;

use anyhow::Context;
use campus::Model;
use serde::Serialize;

use super::ExploreArgs;
use crate::explore::{self, RealCase, RealTarget};
use crate::hosts::broker::BrokerHost;
use crate::hosts::Place;
use crate::Mode;

/// `campus-sim explore`: one exploration per model (or one replay), a summary line each, the
/// shrunk counterexample when there is one, and `explore_summary.csv`; with --real-brokers,
/// `run_real`.
pub fn run(out: &Path, seed: u64, args: &ExploreArgs, mode: Mode) -> anyhow::Result<()> {
    if let (Some(broken), Some(model)) = (args.broken, args.model) {
        if !broken.models().contains(&model) {
            let fits: Vec<&str> = broken.models().iter().map(|m| m.name()).collect();
            anyhow::bail!("--break {} applies to {}, not to {}", broken.name(), fits.join(" and "), model.name());
        }
    }
    if mode == Mode::Real {
        return run_real(out, seed, args);
    }
    if args.cluster || (args.time_scale, args.shrink_budget) != (super::args::DEFAULT_TIME_SCALE, super::args::DEFAULT_SHRINK_BUDGET) {
        anyhow::bail!(
            "--cluster, --time-scale and --shrink-budget go with --real-brokers: the simulation has its node losses, runs in virtual time and shrinks without a budget"
        );
    }
    super::prepare_out(out)?;
    if let Some(json) = &args.replay {
        let model = args.model.expect("clap requires --model with --replay");
        let (schedule, outcome) = explore::replay(model, seed, json, args.broken)?;
        println!("schedule ({}, seed {seed}):\n{schedule}", model.name());
        println!("trace (virtual time):");
        for line in &outcome.trace {
            println!("  {line}");
        }
        if outcome.violations.is_empty() {
            println!("\nevery invariant holds");
            return Ok(());
        }
        println!("\nviolated:");
        for v in &outcome.violations {
            println!("  - {}", v.message);
        }
        anyhow::bail!("{} invariant(s) violated", outcome.violations.len());
    }
    let models: Vec<Model> = match (args.model, args.broken) {
        (Some(model), _) => vec![model],
        (None, Some(broken)) => broken.models().to_vec(),
        (None, None) => Model::ALL.to_vec(),
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for model in models {
        let broken = args.broken.map(|b| format!(" --break {}", b.name())).unwrap_or_default();
        println!("explore {}{broken}: seed {seed}, up to {} schedules", model.name(), args.cases);
        let e = explore::explore(model, seed, args.cases, args.broken);
        let speed = format!(
            "{} runs in {:.2} s wall: {:.0} schedules/s, {:.0} simulated events/s",
            e.runs,
            e.wall.as_secs_f64(),
            e.runs_per_s(),
            e.events_per_s()
        );
        match &e.counterexample {
            None => {
                println!("  every invariant held in {} schedules ({speed})", e.cases);
                if args.broken.is_some() {
                    failures.push(format!("{}: the checker did not catch{broken} in {} schedules", model.name(), e.cases));
                }
            }
            Some(c) => {
                println!("  a schedule broke an invariant after {} passed; shrunk to ({speed}):", e.cases);
                for line in c.schedule.lines() {
                    println!("    {line}");
                }
                println!("  violated:");
                for v in &c.violations {
                    println!("    - {v}");
                }
                println!("  replay it, with its trace:\n    {}", c.replay);
                if args.broken.is_none() {
                    failures.push(format!("{}: {}", model.name(), c.violations.join("; ")));
                }
            }
        }
        rows.push(e);
    }
    write_explore_summary(&out.join("explore_summary.csv"), &rows)?;
    println!("\nwritten: {}", out.join("explore_summary.csv").display());
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("\n"))
    }
}

/// One line of `explore_summary.csv`.
#[derive(Debug, Serialize)]
struct SummaryRow {
    model: &'static str,
    #[serde(rename = "break")]
    broken: &'static str,
    seed: u64,
    cases_passed: u32,
    runs: u64,
    wall_s: String,
    runs_per_s: String,
    events: u64,
    events_per_s: String,
    counterexample: String,
    replay: String,
}

fn write_explore_summary(path: &Path, rows: &[explore::Exploration]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    for e in rows {
        let (schedule, replay) = e
            .counterexample
            .as_ref()
            .map_or((String::new(), String::new()), |c| (c.schedule.trim_end().replace('\n', " | "), c.replay.clone()));
        w.serialize(SummaryRow {
            model: e.model.name(),
            broken: e.broken.map_or("none", |b| b.name()),
            seed: e.seed,
            cases_passed: e.cases,
            runs: e.runs,
            wall_s: format!("{:.3}", e.wall.as_secs_f64()),
            runs_per_s: format!("{:.1}", e.runs_per_s()),
            events: e.events,
            events_per_s: format!("{:.0}", e.events_per_s()),
            counterexample: schedule,
            replay,
        })?;
    }
    w.flush()?;
    Ok(())
}

/// `campus-sim --real-brokers explore`: each case (or the one `--replay` names) in the
/// simulation and on the real deployment; a line per case with both verdicts and whether the
/// business outcome is the same, each difference and failure with the schedule and the
/// commands that run it again; `explore_real.csv`. Fails when a real or simulated run breaks
/// an invariant (with `--break`: when no real case catches the break); a difference in
/// business outcome alone is reported, not failed (see docs/explore.md).
fn run_real(out: &Path, seed: u64, args: &ExploreArgs) -> anyhow::Result<()> {
    let model = args.model.unwrap_or(Model::AsyncRabbitmq);
    // Refused before any broker is looked for.
    explore::real::playable(model)?;
    let place = match (model, args.cluster) {
        (Model::StreamingKafka, true) => {
            super::preflight::cluster("", "", &args.cluster_bootstrap_servers, Some(model))?;
            Place { bootstrap: args.cluster_bootstrap_servers.clone(), ..Place::default() }
        }
        (Model::StreamingKafka, false) => {
            super::preflight::kafka(&args.bootstrap_servers, BrokerHost::Script)?;
            Place { bootstrap: args.bootstrap_servers.clone(), ..Place::default() }
        }
        (_, true) => {
            super::preflight::cluster(&args.cluster_amqp_url, &args.cluster_store, "", Some(model))?;
            Place { store: Some(args.cluster_store.clone()), ..Place::new(&args.cluster_amqp_url, "", BrokerHost::Script) }
        }
        _ => {
            super::preflight::rabbitmq(&args.amqp_url, BrokerHost::Script)?;
            Place { amqp_url: args.amqp_url.clone(), ..Place::default() }
        }
    };
    // Written to only once what it needs answers.
    super::prepare_out(out)?;
    let target = RealTarget {
        exe: std::env::current_exe().context("locating the campus-sim executable")?,
        place,
        cluster: args.cluster,
        scale: args.time_scale,
    };
    let broken = args.broken;
    let shown = broken.map(|b| format!(" --break {}", b.name())).unwrap_or_default();
    let show = |c: &RealCase| show_case(model, broken, seed, args.cluster, c);
    let (cases, shrunk) = match &args.replay {
        Some(json) => {
            let case = explore::real::replay_real(model, seed, json, broken, &target)?;
            show(&case);
            println!("\nsimulation's trace (virtual ms):");
            case.sim.trace.iter().for_each(|l| println!("  {l}"));
            println!("real run's steps (wall ms):");
            case.real.trace.iter().for_each(|l| println!("  {l}"));
            (vec![case], None)
        }
        None => {
            let on = match (model, args.cluster) {
                (Model::StreamingKafka, true) => format!("the 3-broker Kafka cluster at {}", target.place.bootstrap),
                (Model::StreamingKafka, false) => format!("Kafka at {}", target.place.bootstrap),
                (_, true) => {
                    format!("the 3-node RabbitMQ cluster and PostgreSQL at {}", campus::transport::amqp::redacted(&target.place.amqp_url))
                }
                _ => format!("RabbitMQ at {}", campus::transport::amqp::redacted(&target.place.amqp_url)),
            };
            println!(
                "explore {}{shown} on real processes and {on}: seed {seed}, {} schedules, 1 virtual ms = {} wall ms",
                model.name(),
                args.cases,
                args.time_scale
            );
            println!("  case  sim     real    outcome  wall");
            let e = explore::real::explore_real(model, seed, args.cases, broken, (&target, args.shrink_budget), show)?;
            (e.cases, e.shrunk)
        }
    };
    if let Some(s) = &shrunk {
        println!("\nthe first real failure, shrunk ({}):", s.how);
        s.schedule.lines().for_each(|l| println!("    {l}"));
        s.real.violations.iter().for_each(|v| println!("    real violated: {}", v.message));
        let rerun = explore::real::rerun_for_real(model, broken, seed, args.cluster, &s.json);
        println!("  rerun in both: {rerun}");
    }
    let path = out.join("explore_real.csv");
    write_explore_real(&path, (model, broken, seed, args.cluster), &cases)?;
    println!("\nwritten: {}", path.display());
    let broke = |o: &explore::Outcome| !o.violations.is_empty();
    let same = cases.iter().filter(|c| c.differences().is_empty()).count();
    println!(
        "{} cases: the simulation's verdict broken in {}, the real one in {}; the same business outcome in {same} of {}",
        cases.len(),
        cases.iter().filter(|c| broke(&c.sim)).count(),
        cases.iter().filter(|c| broke(&c.real)).count(),
        cases.len()
    );
    match broken {
        None => {
            let failed: Vec<String> =
                cases.iter().filter(|c| broke(&c.sim) || broke(&c.real)).map(|c| format!("case {}", c.case)).collect();
            if !failed.is_empty() {
                anyhow::bail!("{}: an invariant broke in {}", model.name(), failed.join(", "));
            }
        }
        Some(b) => {
            if !cases.iter().any(|c| broke(&c.real)) {
                anyhow::bail!("{}: no real case caught --break {} in {} schedules", model.name(), b.name(), cases.len());
            }
        }
    }
    Ok(())
}

fn verdict(o: &explore::Outcome) -> &'static str {
    if o.violations.is_empty() {
        "holds"
    } else {
        "BROKEN"
    }
}

/// One case's line; its schedule, violations, differences and reruns when it is a finding.
fn show_case(model: Model, broken: Option<explore::Break>, seed: u64, cluster: bool, c: &RealCase) {
    let differences = c.differences();
    let same = if differences.is_empty() { "same" } else { "DIFFERS" };
    println!("  {:>4}  {:<6}  {:<6}  {same:<7}  {:.1} s", c.case, verdict(&c.sim), verdict(&c.real), c.wall.as_secs_f64());
    if differences.is_empty() && c.sim.violations.is_empty() && c.real.violations.is_empty() {
        return;
    }
    for line in c.schedule.lines() {
        println!("        {line}");
    }
    if !c.dropped.is_empty() {
        println!("        (dropped: {})", c.dropped);
    }
    for (who, o) in [("sim", &c.sim), ("real", &c.real)] {
        for v in &o.violations {
            println!("        {who} violated: {}", v.message);
        }
    }
    for d in &differences {
        println!("        {d}");
    }
    let (sim, real) = c.reruns(model, broken, seed, cluster);
    println!("        rerun in the simulation: {sim}\n        rerun in both: {real}");
}

/// One line of `explore_real.csv`: a case, both verdicts, the outcome's differences.
#[derive(Debug, Serialize)]
struct RealRow {
    model: &'static str,
    #[serde(rename = "break")]
    broken: &'static str,
    seed: u64,
    case: u32,
    schedule: String,
    dropped: String,
    sim_violations: String,
    real_violations: String,
    same_outcome: bool,
    differences: String,
    real_wall_s: String,
    replay: String,
}

fn write_explore_real(
    path: &Path,
    (model, broken, seed, cluster): (Model, Option<explore::Break>, u64, bool),
    cases: &[RealCase],
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let joined = |o: &explore::Outcome| o.violations.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("; ");
    for c in cases {
        let differences = c.differences();
        w.serialize(RealRow {
            model: model.name(),
            broken: broken.map_or("none", |b| b.name()),
            seed,
            case: c.case,
            schedule: c.schedule.trim_end().replace('\n', " | "),
            dropped: c.dropped.clone(),
            sim_violations: joined(&c.sim),
            real_violations: joined(&c.real),
            same_outcome: differences.is_empty(),
            differences: differences.join("; "),
            real_wall_s: format!("{:.1}", c.wall.as_secs_f64()),
            replay: c.reruns(model, broken, seed, cluster).1,
        })?;
    }
    w.flush()?;
    Ok(())
}
