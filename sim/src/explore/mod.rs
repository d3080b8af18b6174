//! `campus-sim explore`: property tests of the three models under generated fault schedules.
//!
//! A *schedule* is data: a small workload (orders, stock) and the faults to suffer — duplicate
//! deliveries, consumer crashes at any point of their handling, a service down for a while,
//! malformed messages, Inventory delays and failures, offset resets, a throttled consumer. proptest
//! generates schedules from one seed ([`explore`]); each runs in the simulation in virtual time
//! ([`rest::run`], [`rabbit::run`], [`stream::run`]) and the run is judged by the same
//! invariants the experiments use (each model's `invariants`). When a schedule breaks an invariant, proptest shrinks
//! it to a minimal one, and we print it with the seed and the `campus-sim explore --replay …`
//! command that runs exactly that schedule again, trace included.
//!
//! With `--real-brokers` ([`real`]) the same schedules also run on real processes and brokers
//! (Parts B and C: [`rabbit_real`], [`stream_real`], given a [`target`]), judged by the same
//! checker, and the two verdicts and business outcomes are compared case by case.
//!
//! The properties hold for the services as built. `--break` switches one safeguard off (in the
//! lab only) so a student can watch the checker catch the broken design:
//!
//! | `--break`     | model          | what is switched off                                   | caught as |
//! |---------------|----------------|--------------------------------------------------------|-----------|
//! | `dedup`       | async-rabbitmq, streaming-kafka | Inventory's processed-order check          | stock taken twice for one order |
//! | `auto-ack`    | async-rabbitmq | acks on receipt instead of after the work              | a crash loses an order |
//! | `ack-before-commit` | async-rabbitmq | every consumer acks its window when it takes it, before the window's commit | a crash between commit and publish loses the outcome: an order undecided until the reconciler publishes it again |
//! | `commit-first`| streaming-kafka| offsets committed on poll, before the work             | a crash loses an order |
//! | `no-timeout`  | sync-rest      | Order's timeout on its call to Inventory               | a request not answered within its bound |
//! | `no-reconnect`| async-rabbitmq, streaming-kafka | the loops' reconnect: they give up when the broker goes away | an order never decided |

pub mod rabbit;
pub mod rabbit_real;
pub mod real;
pub mod rest;
pub mod stream;
pub mod stream_real;
pub mod target;

pub use real::RealCase;
pub use target::RealTarget;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config as ProptestConfig, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use campus::safeguards::Safeguards;
use campus::{Model, Service};

use crate::fault::served::ServedFaults;
use crate::violation::Violation;

/// The safeguards a run has: all, but the one `broken` switches off (those the services hold;
/// `auto-ack` and `commit-first` are broken by the crashing transports, `no-timeout` by
/// Order's timeout).
pub fn safeguards(broken: Option<Break>) -> Safeguards {
    let on = Safeguards::ALL;
    match broken {
        Some(Break::Dedup) => Safeguards { dedup: false, ..on },
        Some(Break::NoReconnect) => Safeguards { reconnect: false, ..on },
        Some(Break::NoTransaction) => Safeguards { transactional: false, ..on },
        Some(Break::NoStallWatch) => Safeguards { stall_watch: false, ..on },
        Some(Break::AckBeforeCommit) => Safeguards { ack_after_commit: false, ..on },
        _ => on,
    }
}

/// Runs `main` to its end while `background` runs beside it (a supervisor that restarts what
/// crashes, borrowing the deployment); each is polled in its turn, on this task.
pub async fn while_running<T>(main: impl Future<Output = T>, background: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) -> T {
    let mut main = std::pin::pin!(main);
    let mut background: Vec<Option<Pin<Box<dyn Future<Output = ()> + '_>>>> = background.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = main.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        for slot in &mut background {
            if slot.as_mut().is_some_and(|f| f.as_mut().poll(cx).is_ready()) {
                *slot = None;
            }
        }
        Poll::Pending
    })
    .await
}

/// A safeguard switched off to show the checker catching it (`--break`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Break {
    /// Inventory forgets which orders it processed (async-rabbitmq).
    Dedup,
    /// Inventory's deliveries are acked on receipt, before the work (async-rabbitmq).
    AutoAck,
    /// Every consumer acknowledges a window of deliveries as it takes it, before the window's
    /// store commit (async-rabbitmq).
    AckBeforeCommit,
    /// Inventory's offsets are committed on poll, before the work (streaming-kafka).
    CommitFirst,
    /// Inventory writes its outcomes, its changelog and its offsets in three calls instead of
    /// one transaction (streaming-kafka).
    NoTransaction,
    /// Order waits for Inventory without a timeout (sync-rest).
    NoTimeout,
    /// The services' loops give up when the broker (or, in Part B, their store) goes away
    /// instead of reconnecting (async-rabbitmq, streaming-kafka).
    NoReconnect,
    /// Part C's consumers keep a consumer whose fetches went silent instead of replacing it
    /// (streaming-kafka).
    NoStallWatch,
}

impl Break {
    pub fn name(self) -> &'static str {
        match self {
            Break::Dedup => "dedup",
            Break::AutoAck => "auto-ack",
            Break::AckBeforeCommit => "ack-before-commit",
            Break::CommitFirst => "commit-first",
            Break::NoTransaction => "no-transaction",
            Break::NoTimeout => "no-timeout",
            Break::NoReconnect => "no-reconnect",
            Break::NoStallWatch => "no-stall-watch",
        }
    }

    pub fn models(self) -> &'static [Model] {
        match self {
            Break::Dedup => &[Model::AsyncRabbitmq],
            Break::AutoAck => &[Model::AsyncRabbitmq],
            Break::AckBeforeCommit => &[Model::AsyncRabbitmq],
            Break::CommitFirst => &[Model::StreamingKafka],
            Break::NoTransaction => &[Model::StreamingKafka],
            Break::NoTimeout => &[Model::SyncRest],
            Break::NoReconnect => &[Model::AsyncRabbitmq, Model::StreamingKafka],
            Break::NoStallWatch => &[Model::StreamingKafka],
        }
    }

    /// A real process of `service` with `broken`'s safeguard off: its `--lab-*` switches (the
    /// simulation switches the same safeguards off through [`safeguards`] and its crashing
    /// transports). `auto-ack` and `commit-first` are Inventory's alone.
    pub(crate) fn served(broken: Option<Break>, service: Service) -> ServedFaults {
        let inventory = service == Service::Inventory;
        ServedFaults {
            auto_ack: broken == Some(Break::AutoAck) && inventory,
            commit_first: broken == Some(Break::CommitFirst) && inventory,
            ack_before_commit: broken == Some(Break::AckBeforeCommit),
            no_dedup: broken == Some(Break::Dedup),
            no_transaction: broken == Some(Break::NoTransaction),
            no_reconnect: broken == Some(Break::NoReconnect),
            no_stall_watch: broken == Some(Break::NoStallWatch),
            ..ServedFaults::default()
        }
    }
}

/// A schedule's count that is 1 unless the schedule says otherwise (Inventory instances, the
/// prefetch): its serde default, and left out of a schedule's JSON when it is 1, so that
/// replays written before the field existed still read.
pub(crate) fn one<T: From<u8>>() -> T {
    T::from(1)
}

pub(crate) fn is_one<T: From<u8> + PartialEq>(n: &T) -> bool {
    *n == T::from(1)
}

/// What one schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// Every message moved, every fault applied, with its virtual time.
    pub trace: Vec<String>,
    /// Messages the simulated transports moved (requests and replies, publishes and
    /// deliveries, records appended and polled): the "simulated events".
    pub events: u64,
    /// What the run decided, as [`Business`] lines (kept by the models that run on real
    /// brokers too; empty for sync-rest).
    pub business: Business,
}

impl Outcome {
    /// A run that could not be carried out: one violation saying why.
    pub fn failed(e: anyhow::Error) -> Outcome {
        let message = format!("the run failed: {e:#}");
        Outcome { violations: vec![Violation { experiment: "explore".into(), message }], ..Outcome::default() }
    }
}

/// A run's business outcome, a line per fact, named so that a simulated and a real run of one
/// schedule compare line by line: each order by its place in the schedule (`order #2` →
/// `reserved, notified once`), then the totals (stock taken, dead letters).
pub type Business = std::collections::BTreeMap<String, String>;

/// The schedules of one model: how they are generated, run and shown.
pub trait Schedule: fmt::Debug + fmt::Display + Clone + Serialize + DeserializeOwned + 'static {
    fn strategy() -> proptest::strategy::BoxedStrategy<Self>;
    /// Runs the schedule; `traced` keeps its trace (replays and counterexamples), which the
    /// search itself does without.
    fn run_traced(&self, seed: u64, broken: Option<Break>, traced: bool) -> Outcome;
    /// Runs the schedule, keeping its trace.
    fn run(&self, seed: u64, broken: Option<Break>) -> Outcome {
        self.run_traced(seed, broken, true)
    }
    /// The schedule with one of its parts left out (a fault, an order, a broker window, the
    /// extra instances), one schedule per part; none where it has no part to spare.
    fn without_one_part(&self) -> Vec<Self> {
        Vec::new()
    }
}

/// A time `at_ms` of a schedule whose order `i` is left out, its orders `gap_ms` apart: the
/// orders after it come one gap earlier, and so does what is timed after it, so that each
/// fault keeps its place among the orders (1 ms after the last order stays 1 ms after it).
pub(crate) fn without_order_at(at_ms: u64, i: usize, gap_ms: u64) -> u64 {
    let cut = i as u64 * gap_ms;
    if at_ms > cut {
        at_ms.saturating_sub(gap_ms).max(cut)
    } else {
        at_ms
    }
}

/// `items` with each one left out in turn.
pub(crate) fn each_left_out<T: Clone>(items: &[T]) -> impl Iterator<Item = Vec<T>> + '_ {
    (0..items.len()).map(|i| {
        let mut left = items.to_vec();
        left.remove(i);
        left
    })
}

/// The order a duplicate of `order` (modulo `n` orders) names once order `i` is left out: a
/// later order one number down.
pub(crate) fn without_order_named(order: usize, i: usize, n: usize) -> usize {
    let order = order % n;
    order - usize::from(order > i)
}

/// The last step of shrinking, after proptest's: each part of `schedule` left out in turn
/// ([`Schedule::without_one_part`]), the first smaller schedule that `judge` still finds
/// failing taken, until leaving out any one part makes it pass or `budget` judgements are
/// spent. proptest shrinks a tuple's parts in order and does not come back to an earlier one,
/// so it can stop at a schedule with a part the failure does not need (a broker outage it
/// could not drop while an order it has since cut was still there). `judge` returns the
/// failing outcome, `None` when the schedule passes. Returns the schedule, its outcome and the
/// judgements made.
pub(crate) fn leave_out_parts<S: Schedule, O>(
    (mut schedule, mut outcome): (S, O),
    budget: u32,
    mut judge: impl FnMut(&S) -> Option<O>,
) -> (S, O, u32) {
    let mut runs = 0;
    'smaller: loop {
        for candidate in schedule.without_one_part() {
            if runs >= budget {
                break 'smaller;
            }
            runs += 1;
            if let Some(failed) = judge(&candidate) {
                (schedule, outcome) = (candidate, failed);
                continue 'smaller;
            }
        }
        break;
    }
    (schedule, outcome, runs)
}

/// A schedule that broke an invariant, shrunk.
#[derive(Debug, Clone)]
pub struct Counterexample {
    pub schedule: String,
    pub json: String,
    pub violations: Vec<String>,
    pub replay: String,
}

/// The result of `explore`.
#[derive(Debug, Clone)]
pub struct Exploration {
    pub model: Model,
    pub broken: Option<Break>,
    pub seed: u64,
    /// Schedules generated and passed before a failure (all of them when none failed).
    pub cases: u32,
    /// Schedules run in all, shrinking included.
    pub runs: u64,
    pub events: u64,
    pub wall: Duration,
    pub counterexample: Option<Counterexample>,
}

impl Exploration {
    pub fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The schedules of one exploration are drawn by this many generators, each from its own
/// stream of the seed and with its share of the cases, run side by side on up to as many
/// threads as the machine has cores. The count is fixed, so the schedules depend on the seed
/// alone, never on the machine.
pub const SHARDS: u32 = 8;

/// The simulated runs the last step of shrinking may spend ([`leave_out_parts`]): a schedule
/// has at most a dozen parts, so this is a dozen rounds.
const LEAVE_OUT_BUDGET: u32 = 150;

/// proptest's generator for shard `shard`, seeded from the run's seed: the same seed generates
/// the same schedules. With `regressions`, proptest first re-runs the schedules recorded in that
/// file (each by the generator state that produced it) and records any new failure there.
fn runner(seed: u64, shard: u32, cases: u32, regressions: Option<&'static str>) -> TestRunner {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&crate::simulator::rng::SimRng::new(seed).fork(&format!("explore/{shard}/{i}")).next_u64().to_le_bytes());
    }
    let failure_persistence =
        regressions.map(|path| Box::new(FileFailurePersistence::Direct(path)) as Box<dyn proptest::test_runner::FailurePersistence>);
    let config = ProptestConfig { cases, failure_persistence, max_shrink_iters: 4096, ..ProptestConfig::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// The command that runs `json` again.
pub fn replay_command(model: Model, broken: Option<Break>, seed: u64, json: &str) -> String {
    let broken = broken.map(|b| format!(" --break {}", b.name())).unwrap_or_default();
    format!("campus-sim explore --model {}{broken} --seed {seed} --replay '{json}'", model.name())
}

/// What one shard found.
struct Shard<S> {
    passed: u64,
    runs: u64,
    events: u64,
    result: Result<(), TestError<S>>,
}

/// Runs shard `shard`'s `cases` schedules, and shrinks its first failure. Once a shard before
/// it has failed, its remaining schedules are not run (that failure is the one reported).
fn explore_shard<S: Schedule>(
    seed: u64,
    shard: u32,
    cases: u32,
    broken: Option<Break>,
    regressions: Option<&'static str>,
    first_failed: &AtomicU32,
) -> Shard<S> {
    let (runs, events, passed, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
    let result = runner(seed, shard, cases, regressions).run(&S::strategy(), |schedule| {
        if first_failed.load(Ordering::Relaxed) < shard {
            return Ok(());
        }
        let outcome = schedule.run_traced(seed, broken, false);
        runs.fetch_add(1, Ordering::Relaxed);
        events.fetch_add(outcome.events, Ordering::Relaxed);
        if outcome.violations.is_empty() {
            if !failed.load(Ordering::Relaxed) {
                passed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        } else {
            failed.store(true, Ordering::Relaxed);
            first_failed.fetch_min(shard, Ordering::Relaxed);
            Err(TestCaseError::fail(outcome.violations.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("; ")))
        }
    });
    Shard { passed: passed.into_inner(), runs: runs.into_inner(), events: events.into_inner(), result }
}

fn explore_schedules<S: Schedule + Send>(
    model: Model,
    seed: u64,
    cases: u32,
    broken: Option<Break>,
    regressions: Option<&'static str>,
) -> Exploration {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(SHARDS as usize);
    let next = AtomicU32::new(0);
    let first_failed = AtomicU32::new(u32::MAX);
    let started = Instant::now();
    // Each thread takes the next shard until none is left; shard `k` gets its share of the
    // cases (the first `cases % SHARDS` one more), and only shard 0 re-runs the recorded
    // regressions.
    let mut shards: Vec<(u32, Shard<S>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let shard = next.fetch_add(1, Ordering::Relaxed);
                        if shard >= SHARDS {
                            return done;
                        }
                        let share = cases / SHARDS + u32::from(shard < cases % SHARDS);
                        if share > 0 {
                            let recorded = if shard == 0 { regressions } else { None };
                            done.push((shard, explore_shard::<S>(seed, shard, share, broken, recorded, &first_failed)));
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("an exploring thread panicked")).collect()
    });
    let wall = started.elapsed();
    shards.sort_by_key(|(shard, _)| *shard);
    let (mut passed, mut runs, mut events) = (0, 0, 0);
    for (_, shard) in &shards {
        passed += shard.passed;
        runs += shard.runs;
        events += shard.events;
    }
    // The first shard's failure, by shard number: the same one whichever thread finished first.
    let counterexample = shards.into_iter().find_map(|(_, shard)| shard.result.err()).map(|error| match error {
        TestError::Abort(reason) => Counterexample {
            schedule: String::new(),
            json: String::new(),
            violations: vec![format!("proptest gave up: {reason}")],
            replay: String::new(),
        },
        TestError::Fail(_, minimal) => {
            let fails = |s: &S| Some(()).filter(|_| !s.run_traced(seed, broken, false).violations.is_empty());
            let (minimal, (), tried) = leave_out_parts((minimal, ()), LEAVE_OUT_BUDGET, fails);
            runs += u64::from(tried);
            let json = serde_json::to_string(&minimal).expect("schedules serialize");
            let outcome = minimal.run(seed, broken);
            Counterexample {
                schedule: minimal.to_string(),
                violations: outcome.violations.iter().map(|v| v.message.clone()).collect(),
                replay: replay_command(model, broken, seed, &json),
                json,
            }
        }
    });
    Exploration { model, broken, seed, cases: passed as u32, runs, events, wall, counterexample }
}

/// Generates `cases` schedules for `model` from `seed`, runs each, and shrinks the first that
/// breaks an invariant.
pub fn explore(model: Model, seed: u64, cases: u32, broken: Option<Break>) -> Exploration {
    explore_recording(model, seed, cases, broken, None)
}

/// [`explore`], re-running first the failures recorded in the proptest regression file
/// `regressions` and recording new ones there (the test suite's files are committed).
pub fn explore_recording(model: Model, seed: u64, cases: u32, broken: Option<Break>, regressions: Option<&'static str>) -> Exploration {
    match model {
        Model::SyncRest => explore_schedules::<rest::Schedule>(model, seed, cases, broken, regressions),
        Model::AsyncRabbitmq => explore_schedules::<rabbit::Schedule>(model, seed, cases, broken, regressions),
        Model::StreamingKafka => explore_schedules::<stream::Schedule>(model, seed, cases, broken, regressions),
    }
}

/// Runs one schedule given as JSON (what `--replay` takes), returning it as text and what it did.
pub fn replay(model: Model, seed: u64, json: &str, broken: Option<Break>) -> anyhow::Result<(String, Outcome)> {
    fn one<S: Schedule>(seed: u64, json: &str, broken: Option<Break>) -> anyhow::Result<(String, Outcome)> {
        let schedule: S =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("--replay is not a {} schedule: {e}", std::any::type_name::<S>()))?;
        let outcome = schedule.run(seed, broken);
        Ok((schedule.to_string(), outcome))
    }
    match model {
        Model::SyncRest => one::<rest::Schedule>(seed, json, broken),
        Model::AsyncRabbitmq => one::<rabbit::Schedule>(seed, json, broken),
        Model::StreamingKafka => one::<stream::Schedule>(seed, json, broken),
    }
}

/// A broker outage: down at `at_ms`, back `for_ms` later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub at_ms: u64,
    pub for_ms: u64,
}

/// Strategy for a schedule's broker outage: none, or down at 0–300 ms for 0.1–3 s.
pub(crate) fn window_strategy() -> impl Strategy<Value = Option<Window>> {
    proptest::option::of((0u64..300, 100u64..3000).prop_map(|(at_ms, for_ms)| Window { at_ms, for_ms }))
}

/// Short readable lines for an order's items: `pho×2 + bao×1`.
pub(crate) fn items_text(items: &campus::domain::Items) -> String {
    items.as_slice().iter().map(|l| format!("{}×{}", l.sku, l.qty.get())).collect::<Vec<_>>().join(" + ")
}

/// Strategy for one order's items: 1–2 distinct menu skus, 1–3 units each.
pub(crate) fn items_strategy() -> impl Strategy<Value = campus::domain::Items> {
    use proptest::prelude::*;
    let menu = campus::domain::MENU;
    (0..menu.len(), 1u32..=3, proptest::option::of((0..menu.len(), 1u32..=3))).prop_map(move |(a, qa, b)| {
        use campus::domain::{Items, OrderItem, Qty, Sku};
        let line = |i: usize, q: u32| OrderItem { sku: Sku::parse(menu[i]).expect("menu"), qty: Qty::parse(i64::from(q)).expect("1..=3") };
        let mut lines = vec![line(a, qa)];
        if let Some((b, qb)) = b.filter(|(b, _)| *b != a) {
            lines.push(line(b, qb));
        }
        Items::parse(lines).expect("distinct skus, 1 or 2 lines")
    })
}
