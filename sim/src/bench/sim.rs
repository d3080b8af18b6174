//! The simulation's own speed: simulated orders per wall second for each model, the wall
//! time of the assignment's two long phases (the 60 s outage, 10,000 events), each against its
//! 1 s budget, and `explore`'s schedules per wall second for each model against 5,000 (its
//! schedules are run on every core, up to `explore::SHARDS`) and, for Parts B and C, against
//! Part A's on the same machine in the same run (target: at least half as fast).

use std::time::Instant;

use super::{Row, Samples, Target};
use crate::explore;
use crate::{async_rabbitmq, streaming_kafka, sync_rest};

/// Schedules per model in one measured `explore` round. (At 2,000, Part A's round lasted a
/// quarter of a second, and its rate in rounds a minute apart differed by up to two fifths:
/// too short a run to hold a ratio to.)
const EXPLORE_CASES: u32 = 6_000;

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let started = Instant::now();
    let value = f()?;
    Ok((value, started.elapsed().as_secs_f64()))
}

pub fn run(repeats: usize, seed: u64) -> anyhow::Result<Vec<Row>> {
    let rest = sync_rest::Config { seed, experiment: sync_rest::Experiment::Baseline, ..sync_rest::Config::default() };
    let outage = async_rabbitmq::Config { seed, experiment: async_rabbitmq::Experiment::Outage, ..async_rabbitmq::Config::default() };
    let stream = streaming_kafka::Config { seed, experiment: streaming_kafka::Experiment::Lag, ..streaming_kafka::Config::default() };
    let (mut rest_rate, mut outage_wall, mut outage_rate, mut stream_wall, mut stream_rate) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    // One warm-up round, then the measured ones.
    for round in 0..=repeats {
        let (runs, wall) = timed(|| sync_rest::run_sim(&rest))?;
        let orders: usize = runs.iter().map(|r| r.answers.len()).sum();
        let (b, b_wall) = timed(|| async_rabbitmq::run_sim(&outage))?;
        let b_orders: usize = b.iter().map(|r| r.accepted).sum();
        let (c, c_wall) = timed(|| streaming_kafka::run_sim(&stream))?;
        let c_events: usize = c.iter().map(|r| r.events).sum();
        if round > 0 {
            rest_rate.0.push(orders as f64 / wall);
            outage_wall.0.push(b_wall);
            outage_rate.0.push(b_orders as f64 / b_wall);
            stream_wall.0.push(c_wall);
            stream_rate.0.push(c_events as f64 / c_wall);
        }
    }
    // Round by round, each model in turn: the ratio of Part B's or C's rate to Part A's
    // compares runs seconds apart, not minutes (this machine's speed drifts: Part A's rate
    // ranged from 5,400 to 9,600 schedules/s over one hour, which measuring all of one
    // model's rounds before the next's put in the ratio).
    let mut explored: Vec<(campus::Model, Samples)> = campus::Model::ALL.iter().map(|&model| (model, Samples::default())).collect();
    for round in 0..=repeats {
        for (model, rate) in &mut explored {
            let e = explore::explore(*model, seed + round as u64, EXPLORE_CASES, None);
            anyhow::ensure!(e.counterexample.is_none(), "explore {} broke an invariant while benchmarked", model.name());
            if round > 0 {
                rate.0.push(e.runs_per_s());
            }
        }
    }
    let budget = || Some(Samples(vec![1.0]));
    let row = |model, case: &str, metric, ours, floor, target, floor_is| Row {
        model,
        case: case.to_owned(),
        metric,
        ours,
        floor,
        target,
        floor_is,
    };
    let part_a = explored.iter().find(|(model, _)| *model == campus::Model::SyncRest).map(|(_, rate)| rate.clone());
    let explore_rows = explored.into_iter().flat_map(|(model, rate)| {
        let case = format!("explore {} ({} schedules)", model.name(), EXPLORE_CASES);
        let against_a = (model != campus::Model::SyncRest).then(|| {
            let floor_is = "explore sync-rest's schedules/s, same run";
            row("sim", &case, "schedules_per_wall_s_vs_sync_rest", rate.clone(), part_a.clone(), Some(Target::AtLeast(0.5)), floor_is)
        });
        let absolute =
            row("sim", &case, "schedules_per_wall_s", rate, Some(Samples(vec![5_000.0])), Some(Target::AtLeast(1.0)), "5,000 schedules/s");
        std::iter::once(absolute).chain(against_a)
    });
    Ok(vec![
        row("sim", "sync-rest baseline (1,000 requests)", "orders_per_wall_s", rest_rate, None, None, ""),
        row("sim", "async-rabbitmq outage (60 s virtual)", "orders_per_wall_s", outage_rate, None, None, ""),
        row("sim", "async-rabbitmq outage (60 s virtual)", "wall_s", outage_wall, budget(), Some(Target::AtMost(1.0)), "a 1 s budget"),
        row("sim", "streaming-kafka lag (10,000 events)", "events_per_wall_s", stream_rate, None, None, ""),
        row("sim", "streaming-kafka lag (10,000 events)", "wall_s", stream_wall, budget(), Some(Target::AtMost(1.0)), "a 1 s budget"),
    ]
    .into_iter()
    .chain(explore_rows)
    .collect())
}
