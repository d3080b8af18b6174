//! `campus-sim explore`: one exploration per model (or one replay), a summary line each, the
//! shrunk counterexample when there is one, and `explore_summary.csv`.

use std::path::Path;

use anyhow::Context;
use campus::Model;
use serde::Serialize;

use super::ExploreArgs;
use crate::explore;

/// `campus-sim explore`: one exploration per model (or one replay), a summary line each, the
/// shrunk counterexample when there is one, and `explore_summary.csv`.
pub fn run(out: &Path, seed: u64, args: &ExploreArgs) -> anyhow::Result<()> {
    if let (Some(broken), Some(model)) = (args.broken, args.model) {
        if !broken.models().contains(&model) {
            let fits: Vec<&str> = broken.models().iter().map(|m| m.name()).collect();
            anyhow::bail!("--break {} applies to {}, not to {}", broken.name(), fits.join(" and "), model.name());
        }
    }
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
