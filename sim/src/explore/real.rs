//! `explore --real-brokers`: schedules drawn by the same generators from the same seed, each
//! run twice — in the simulation and on real processes and brokers — and judged by the same
//! checker both times. A case reports both verdicts and whether the business outcome (each
//! order's end, the stock taken, the dead letters: [`super::Business`]) is the same; a
//! difference is a finding, printed with the schedule, both outcomes and the commands that run
//! it again.
//!
//! Parts played for real: async-rabbitmq ([`super::rabbit_real`]) and streaming-kafka
//! ([`super::stream_real`]); sync-rest's schedules are explored in the simulation only.

use std::time::{Duration, Instant};

use campus::Model;
use proptest::strategy::{Strategy, ValueTree};

use super::target::RealTarget;
use super::{rabbit, rabbit_real, replay_command, stream, stream_real, Break, Outcome, Schedule};

/// A model's schedules as `explore --real-brokers` plays them.
pub trait PlayedForReal: Schedule + PartialEq {
    /// The same schedule without what the deployment (`cluster`: the clustered one) cannot be
    /// made to suffer, and what was taken out (empty: nothing).
    fn for_real(&self, cluster: bool) -> (Self, String);
    /// Plays the schedule (as `for_real` left it) on real processes and brokers.
    fn run_real<'a>(&'a self, seed: u64, broken: Option<Break>, target: &'a RealTarget) -> BoxFuture<'a, anyhow::Result<Outcome>>;
}

impl PlayedForReal for rabbit::Schedule {
    fn for_real(&self, cluster: bool) -> (Self, String) {
        rabbit::Schedule::for_real(self, cluster)
    }
    fn run_real<'a>(&'a self, _seed: u64, broken: Option<Break>, target: &'a RealTarget) -> BoxFuture<'a, anyhow::Result<Outcome>> {
        Box::pin(rabbit_real::run(self, broken, target))
    }
}

impl PlayedForReal for stream::Schedule {
    fn for_real(&self, cluster: bool) -> (Self, String) {
        stream::Schedule::for_real(self, cluster)
    }
    fn run_real<'a>(&'a self, seed: u64, broken: Option<Break>, target: &'a RealTarget) -> BoxFuture<'a, anyhow::Result<Outcome>> {
        Box::pin(stream_real::run(self, seed, broken, target))
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// One schedule, run in the simulation and for real.
#[derive(Debug, Clone)]
pub struct RealCase {
    /// Its number among the cases drawn (0-based).
    pub case: u32,
    pub schedule: String,
    pub json: String,
    /// What was dropped from the drawn schedule because the deployment cannot suffer it
    /// ([`PlayedForReal::for_real`]); empty: nothing.
    pub dropped: String,
    pub sim: Outcome,
    pub real: Outcome,
    /// The real run's wall time.
    pub wall: Duration,
}

impl RealCase {
    /// The business lines that differ: `order #2: sim reserved, notified 1× | real failed, notified 0×`.
    pub fn differences(&self) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.sim.business.keys().chain(self.real.business.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (sim, real) = (self.sim.business.get(k), self.real.business.get(k));
                (sim != real).then(|| format!("{k}: sim {} | real {}", sim.map_or("—", String::as_str), real.map_or("—", String::as_str)))
            })
            .collect()
    }

    /// The commands that run this case again: in the simulation, and in both.
    pub fn reruns(&self, model: Model, broken: Option<Break>, seed: u64, cluster: bool) -> (String, String) {
        (replay_command(model, broken, seed, &self.json), rerun_for_real(model, broken, seed, cluster, &self.json))
    }
}

/// The command that runs the schedule `json` again in the simulation and on the real
/// deployment (the cluster, if `cluster`).
pub fn rerun_for_real(model: Model, broken: Option<Break>, seed: u64, cluster: bool, json: &str) -> String {
    let on = if cluster { "explore --cluster" } else { "explore" };
    replay_command(model, broken, seed, json).replacen("campus-sim explore", &format!("campus-sim --real-brokers {on}"), 1)
}

/// A real failure shrunk: the smallest schedule found that still fails for real.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub schedule: String,
    pub json: String,
    /// The real run of that schedule.
    pub real: Outcome,
    /// How it was found.
    pub how: String,
}

/// What `explore --real-brokers` found: each case, and the first real failure shrunk.
#[derive(Debug, Clone)]
pub struct RealExploration {
    pub cases: Vec<RealCase>,
    pub shrunk: Option<Shrunk>,
}

/// The first `cases` schedules of `model` drawn from `seed` (by the generator of the
/// exploration's first shard), each run in the simulation and on `target`; the first that
/// breaks an invariant for real is shrunk within `shrink_budget` more real runs.
pub fn explore_real(
    model: Model,
    seed: u64,
    cases: u32,
    broken: Option<Break>,
    (target, shrink_budget): (&RealTarget, u32),
    each: impl FnMut(&RealCase),
) -> anyhow::Result<RealExploration> {
    playable(model)?;
    match model {
        Model::AsyncRabbitmq => explore_real_of::<rabbit::Schedule>(seed, cases, broken, (target, shrink_budget), each),
        _ => explore_real_of::<stream::Schedule>(seed, cases, broken, (target, shrink_budget), each),
    }
}

/// Whether `model`'s schedules can be played for real, and if not, why: Part A is explored in
/// the simulation only.
pub fn playable(model: Model) -> anyhow::Result<()> {
    match model {
        Model::SyncRest => anyhow::bail!(
            "explore --real-brokers plays the messaging models (async-rabbitmq, streaming-kafka); sync-rest is explored in the simulation only (drop --real-brokers)"
        ),
        _ => Ok(()),
    }
}

fn explore_real_of<S: PlayedForReal>(
    seed: u64,
    cases: u32,
    broken: Option<Break>,
    (target, shrink_budget): (&RealTarget, u32),
    each: impl FnMut(&RealCase),
) -> anyhow::Result<RealExploration> {
    let runtime = real_runtime()?;
    let schedules = draw::<S>(seed, cases)?.into_iter().map(|tree| tree.current()).collect();
    let cases = run_cases::<S>(&runtime, schedules, seed, broken, target, each);
    let shrunk = match cases.iter().find(|c| !c.real.violations.is_empty()) {
        Some(first) if shrink_budget > 0 => {
            let tree = || draw::<S>(seed, first.case + 1).map(|mut trees| trees.pop().expect("the failed case was drawn"));
            Some(shrink(&runtime, (tree()?, tree()?), first.real.clone(), (seed, broken), (target, shrink_budget)))
        }
        _ => None,
    };
    Ok(RealExploration { cases, shrunk })
}

/// The first `cases` schedule trees the exploration's first shard draws from `seed`.
fn draw<S: Schedule>(seed: u64, cases: u32) -> anyhow::Result<Vec<Tree<S>>> {
    let mut runner = super::runner(seed, 0, cases, None);
    let strategy = S::strategy();
    (0..cases).map(|_| strategy.new_tree(&mut runner).map_err(|e| anyhow::anyhow!("drawing a schedule: {e}"))).collect()
}

/// A drawn schedule, which proptest can simplify.
type Tree<S> = Box<dyn ValueTree<Value = S>>;

/// Shrinks a schedule that fails for real, given its tree twice (one for each shrinking).
/// First the simulation's shrinker, which costs nothing real: if the real run agrees that its
/// smallest failing schedule fails, that is the answer. Otherwise proptest's shrinking again
/// with real runs as the judge, then its parts left out one at a time, at most `budget` real
/// runs in all; the smallest schedule that still failed for real is the answer.
/// `failed` is the real run of the schedule as drawn.
fn shrink<S: PlayedForReal>(
    runtime: &tokio::runtime::Runtime,
    (mut for_sim, mut tree): (Tree<S>, Tree<S>),
    failed: Outcome,
    (seed, broken): (u64, Option<Break>),
    (target, budget): (&RealTarget, u32),
) -> Shrunk {
    let cluster = target.cluster;
    let failing = |outcome: Outcome| Some(outcome).filter(|o| !o.violations.is_empty());
    let real = |s: &S| failing(runtime.block_on(s.run_real(seed, broken, target)).unwrap_or_else(Outcome::failed));
    let in_sim = |s: &S| failing(s.run_traced(seed, broken, false));
    let original = tree.current().for_real(cluster).0;
    let mut runs = 0;
    let sim_said = match in_sim(&original) {
        Some(outcome) => {
            let (candidate, _, _) = shrunk_by(&mut *for_sim, cluster, outcome, u32::MAX, in_sim);
            if candidate == original {
                "the simulation's shrinker found nothing smaller"
            } else {
                runs += 1;
                if let Some(outcome) = real(&candidate) {
                    return shrunk(&candidate, outcome, "by the simulation's shrinker; the real run fails on it too".into());
                }
                "the simulation's smallest failing schedule did not fail for real"
            }
        }
        None => "the simulation does not fail on it",
    };
    let (last, outcome, tried) = shrunk_by(&mut *tree, cluster, failed, budget.saturating_sub(runs), real);
    shrunk(&last, outcome, format!("{sim_said}; shrunk for real in {} real runs", runs + tried))
}

/// The smallest schedule of `tree` that `judge` finds failing, the current one failing with
/// `failed`: proptest's shrinking (simplify while it fails, complicate when it no longer
/// does), then its parts left out one at a time ([`super::leave_out_parts`]), at most
/// `budget` judgements in all. Returns it, its failing outcome and the judgements made.
fn shrunk_by<S: PlayedForReal>(
    tree: &mut dyn ValueTree<Value = S>,
    cluster: bool,
    failed: Outcome,
    budget: u32,
    mut judge: impl FnMut(&S) -> Option<Outcome>,
) -> (S, Outcome, u32) {
    let (mut last, mut outcome, mut failing, mut runs) = (tree.current().for_real(cluster).0, failed, true, 0);
    while runs < budget {
        let stepped = if failing { tree.simplify() } else { tree.complicate() };
        if !stepped {
            break;
        }
        let candidate = tree.current().for_real(cluster).0;
        runs += 1;
        failing = match judge(&candidate) {
            Some(tried) => {
                (last, outcome) = (candidate, tried);
                true
            }
            None => false,
        };
    }
    let (last, outcome, left_out) = super::leave_out_parts((last, outcome), budget - runs, judge);
    (last, outcome, runs + left_out)
}

fn shrunk<S: Schedule>(schedule: &S, real: Outcome, how: String) -> Shrunk {
    Shrunk { schedule: schedule.to_string(), json: serde_json::to_string(schedule).expect("schedules serialize"), real, how }
}

/// Runs the schedule `json` (what `--replay` takes) in the simulation and on `target`.
pub fn replay_real(model: Model, seed: u64, json: &str, broken: Option<Break>, target: &RealTarget) -> anyhow::Result<RealCase> {
    fn one<S: PlayedForReal>(model: Model, seed: u64, json: &str, broken: Option<Break>, target: &RealTarget) -> anyhow::Result<RealCase> {
        let schedule: S = serde_json::from_str(json).map_err(|e| anyhow::anyhow!("--replay is not a {} schedule: {e}", model.name()))?;
        let mut cases = run_cases(&real_runtime()?, vec![schedule], seed, broken, target, |_| {});
        Ok(cases.remove(0))
    }
    playable(model)?;
    match model {
        Model::AsyncRabbitmq => one::<rabbit::Schedule>(model, seed, json, broken, target),
        _ => one::<stream::Schedule>(model, seed, json, broken, target),
    }
}

/// The runtime the real runs go on (the simulated ones make their own).
fn real_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn run_cases<S: PlayedForReal>(
    runtime: &tokio::runtime::Runtime,
    schedules: Vec<S>,
    seed: u64,
    broken: Option<Break>,
    target: &RealTarget,
    mut each: impl FnMut(&RealCase),
) -> Vec<RealCase> {
    let mut cases = Vec::new();
    for (case, schedule) in schedules.into_iter().enumerate() {
        let (schedule, dropped) = schedule.for_real(target.cluster);
        let sim = schedule.run(seed, broken);
        let started = Instant::now();
        let real = runtime.block_on(schedule.run_real(seed, broken, target)).unwrap_or_else(Outcome::failed);
        let json = serde_json::to_string(&schedule).expect("schedules serialize");
        let case = RealCase { case: case as u32, schedule: schedule.to_string(), json, dropped, sim, real, wall: started.elapsed() };
        each(&case);
        cases.push(case);
    }
    cases
}
