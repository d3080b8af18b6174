//! Part C, streaming over Kafka: the experiments, run over `SimLog` in virtual time or over a
//! real Apache Kafka. In both modes the services (the producer, Inventory, Analytics) are tasks
//! of this process: what differs between the modes is the log, which is the subject of Part C.
//!
//! | experiment | what happens                                                          |
//! |------------|-----------------------------------------------------------------------|
//! | `produce`  | `--events` `OrderPlaced` appended to `order-events`, timed, nothing consuming |
//! | `lag`      | Inventory and a throttled Analytics (`--throttle-per-s`) consume while the producer runs at full speed: lag per partition per second, its peak, the catch-up |
//! | `replay`   | Analytics catches up, its group is reset to the beginning through the log, a fresh Analytics recomputes: before and after compared, and against the workload |

pub mod deployment;
pub mod figures;
pub mod invariants;
pub mod output;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use campus::deploy::streaming_kafka as wiring;
use campus::domain::{Envelope, Event, Order, OrderPlaced};
use campus::services::analytics::{Analytics, Metrics, MinuteMetrics, MINUTE_MS};
use campus::services::order::OrderIds;
use campus::services::streaming::INVENTORY_GROUP;
use campus::store::{InventoryStats, InventoryStore};
use campus::transport::log::{EventLog, LogError, Topic};
use campus::Model;
use tokio::time::Instant;

pub use deployment::Deployment;

use crate::world::{self, Scope, Stream, World};
use crate::{workload, Mode};

/// Analytics' consumer group.
pub const ANALYTICS_GROUP: &str = "analytics";

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Append --events OrderPlaced, timed.
    Produce,
    /// A throttled Analytics falls behind a full-speed producer, then catches up.
    Lag,
    /// Metrics, reset the Analytics group to the beginning, metrics again.
    Replay,
    /// All three, in that order.
    All,
}

/// Everything a run depends on. [`Config::default`] is the assignment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub experiment: Experiment,
    /// `OrderPlaced` events produced.
    pub events: usize,
    /// Records per second the Analytics consumer may handle in `lag`.
    pub throttle_per_s: u32,
    /// Units of each item Inventory starts with: the default runs out late in the run, so
    /// the failure rate climbs in the last minutes.
    pub stock: u32,
    /// Records per append and per poll.
    pub batch: usize,
    /// A run that has not caught up this long after its last event fails.
    pub settle_within: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: crate::DEFAULT_SEED,
            experiment: Experiment::All,
            events: 10_000,
            throttle_per_s: 500,
            stock: 5000,
            batch: 500,
            settle_within: Duration::from_secs(300),
        }
    }
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.events == 0 || self.throttle_per_s == 0 || self.batch == 0 {
            bail!("--events, --throttle-per-s and --batch must be at least 1");
        }
        Ok(())
    }

    /// The experiments `--experiment` selects, in the order they run.
    pub fn scenarios(&self) -> Vec<Scenario> {
        match self.experiment {
            Experiment::All => Scenario::ALL.to_vec(),
            Experiment::Produce => vec![Scenario::Produce],
            Experiment::Lag => vec![Scenario::Lag],
            Experiment::Replay => vec![Scenario::Replay],
        }
    }

    pub fn experiments(&self) -> Vec<&'static str> {
        self.scenarios().into_iter().map(Scenario::name).collect()
    }

    /// The run's events: orders from the seed, with event times a seeded walk over a campus
    /// day — quiet, a lunch rush in the middle third (three times the rate), quiet again —
    /// about 85 orders per minute outside the rush, so 10,000 orders span about 80 minutes.
    pub fn events(&self) -> Vec<OrderPlaced> {
        let scope = Scope::Experiment("events");
        let requests = workload::orders(&mut world::stream(self.seed, Model::StreamingKafka, &scope, Stream::Workload), self.events);
        let mut gaps = world::stream(self.seed, Model::StreamingKafka, &scope, Stream::EventTime);
        let ids = OrderIds::seeded(self.seed);
        let mut t = 0u64;
        requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let rush = (self.events / 3..2 * self.events / 3).contains(&i);
                t += if rush { gaps.between(1, 470) } else { gaps.between(1, 1410) };
                OrderPlaced { order: Order::new(ids.next(), request), placed_at_ms: t }
            })
            .collect()
    }
}

/// One experiment of Part C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Produce,
    Lag,
    Replay,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Produce, Scenario::Lag, Scenario::Replay];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Produce => "produce",
            Scenario::Lag => "lag",
            Scenario::Replay => "replay",
        }
    }
}

/// What Analytics should find: the orders per minute straight from the workload.
pub fn expected_orders_per_minute(events: &[OrderPlaced]) -> BTreeMap<u64, u64> {
    let mut per_minute = BTreeMap::new();
    for e in events {
        *per_minute.entry(e.placed_at_ms / MINUTE_MS).or_insert(0) += 1;
    }
    per_minute
}

/// One lag sample: one partition of one topic, for the Analytics group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSample {
    pub t_ms: u64,
    pub topic: Topic,
    pub partition: u32,
    pub end_offset: u64,
    pub committed: u64,
}

impl LagSample {
    pub fn lag(&self) -> u64 {
        self.end_offset.saturating_sub(self.committed)
    }
}

/// A finished experiment: what every experiment measures, and what only its kind does.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub mode: Mode,
    pub events: usize,
    /// How long appending the events took (the producer alone in `produce`; alongside the
    /// consumers in the others).
    pub produce: Duration,
    /// Analytics' metrics (after the replay, in `replay`); none in `produce`.
    pub metrics: Option<Metrics>,
    pub expected_orders: BTreeMap<u64, u64>,
    pub inventory: Option<InventoryStats>,
    pub detail: Detail,
}

/// What one kind of run measured besides the common counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Produce,
    Lag(Lag),
    /// The metrics before the Analytics group was reset (those after are [`Run::metrics`]).
    Replay { before: Metrics },
    /// One schedule of `campus-sim explore`.
    Explore,
}

/// The lag experiment's time series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lag {
    pub samples: Vec<LagSample>,
    /// Total lag (all partitions of both topics) at its highest.
    pub peak: u64,
    /// From the last event appended to the Analytics lag back at 0.
    pub catch_up: Option<Duration>,
}

impl Run {
    fn new(mode: Mode, events: &[OrderPlaced], detail: Detail) -> Self {
        Run { mode, events: events.len(), produce: Duration::ZERO, metrics: None, expected_orders: expected_orders_per_minute(events), inventory: None, detail }
    }

    /// The experiment's name, as the CSVs and checks name it.
    pub fn name(&self) -> &'static str {
        match self.detail {
            Detail::Produce => Scenario::Produce.name(),
            Detail::Lag(_) => Scenario::Lag.name(),
            Detail::Replay { .. } => Scenario::Replay.name(),
            Detail::Explore => "explore",
        }
    }

    pub fn lag(&self) -> Option<&Lag> {
        match &self.detail {
            Detail::Lag(lag) => Some(lag),
            _ => None,
        }
    }

    pub fn before_replay(&self) -> Option<&Metrics> {
        match &self.detail {
            Detail::Replay { before } => Some(before),
            _ => None,
        }
    }

    pub fn replay_equal(&self) -> Option<bool> {
        Some(self.before_replay()? == self.metrics.as_ref()?)
    }
}

async fn produce(log: &dyn EventLog, events: &[OrderPlaced], batch: usize) -> Result<Duration, LogError> {
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        let records: Vec<(String, Bytes)> = chunk
            .iter()
            .map(|e| (e.order.order_id.to_string(), Bytes::from(Envelope::new(Event::OrderPlaced(e.clone())).encode())))
            .collect();
        log.append(Topic::OrderEvents, records).await?;
    }
    Ok(started.elapsed())
}

async fn lag_of(log: &dyn EventLog, group: &str, t0: Instant) -> Result<Vec<LagSample>, LogError> {
    let t_ms = t0.elapsed().as_millis() as u64;
    let mut samples = Vec::new();
    for topic in Topic::ALL {
        let ends = log.end_offsets(topic).await?;
        let committed = log.committed(group, topic).await?;
        for (partition, (end_offset, committed)) in ends.into_iter().zip(committed).enumerate() {
            samples.push(LagSample { t_ms, topic, partition: partition as u32, end_offset, committed });
        }
    }
    Ok(samples)
}

/// True once `group` has committed every record of both topics and Inventory has answered
/// every event.
async fn caught_up(log: &dyn EventLog, group: &str, events: usize) -> Result<bool, LogError> {
    let outcomes: u64 = log.end_offsets(Topic::InventoryEvents).await?.iter().sum();
    let inventory_done = log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?.iter().sum::<u64>() as usize >= events;
    let lag: u64 = lag_of(log, group, Instant::now()).await?.iter().map(LagSample::lag).sum();
    Ok(inventory_done && outcomes as usize >= events && lag == 0)
}

async fn wait_caught_up(log: &dyn EventLog, group: &str, events: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !caught_up(log, group, events).await? {
        if Instant::now() > deadline {
            bail!("{group} did not catch up within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn start_inventory(log: Arc<dyn EventLog>, config: &Config) -> anyhow::Result<(Arc<InventoryStore>, wiring::Consumer)> {
    let store = Arc::new(InventoryStore::open(None, config.stock)?);
    Ok((store.clone(), wiring::inventory(log, store, config.batch)))
}

fn start_analytics(log: Arc<dyn EventLog>, config: &Config, throttle: Option<u32>) -> (Arc<Mutex<Analytics>>, wiring::Consumer) {
    let state = Arc::new(Mutex::new(Analytics::default()));
    (state.clone(), wiring::analytics(log, ANALYTICS_GROUP, state, config.batch, throttle))
}

fn metrics_of(state: &Arc<Mutex<Analytics>>) -> Metrics {
    state.lock().expect("analytics lock").metrics()
}

/// Runs one experiment on a fresh log (fresh topics in real mode).
pub async fn run_experiment(config: &Config, scenario: Scenario, deployment: Deployment) -> anyhow::Result<Run> {
    let events = config.events();
    let l = deployment.log();
    let mut run = Run::new(deployment.mode(), &events, Detail::Produce);
    let result = async {
        match scenario {
            Scenario::Produce => {
                run.produce = produce(l.as_ref(), &events, config.batch).await?;
                crate::progress::step(&format!("produce: {} events in {:.2} s", events.len(), run.produce.as_secs_f64()));
            }
            Scenario::Lag => lag(config, &l, &events, &mut run).await?,
            Scenario::Replay => replay(config, &l, &events, &mut run).await?,
        }
        Ok(())
    }
    .await;
    deployment.teardown().await;
    result.map(|()| run)
}

async fn lag(config: &Config, log: &Arc<dyn EventLog>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config)?;
    let (state, analytics) = start_analytics(log.clone(), config, Some(config.throttle_per_s));
    let t0 = Instant::now();
    let producer = {
        let (log, events, batch) = (log.clone(), events.to_vec(), config.batch);
        tokio::spawn(async move { produce(log.as_ref(), &events, batch).await })
    };
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut produced_at = None;
    let mut lag = Lag::default();
    let mut live = crate::progress::Progress::new("lag");
    loop {
        tick.tick().await;
        let samples = lag_of(log.as_ref(), ANALYTICS_GROUP, t0).await?;
        let total: u64 = samples.iter().map(LagSample::lag).sum();
        lag.peak = lag.peak.max(total);
        let t = t0.elapsed();
        lag.samples.extend(samples);
        if produced_at.is_none() && producer.is_finished() {
            produced_at = Some(t);
        }
        live.update(|| {
            let phase = if produced_at.is_some() { "catching up" } else { "producing" };
            format!("t={:>3} s ({phase}): analytics lag {total} records (peak {})", t.as_secs(), lag.peak)
        });
        if produced_at.is_some() && total == 0 && caught_up(log.as_ref(), ANALYTICS_GROUP, events.len()).await? {
            lag.catch_up = produced_at.map(|p| t.saturating_sub(p));
            live.finish(&format!("caught up at {} s (peak lag {})", t.as_secs(), lag.peak));
            break;
        }
        if t > config.settle_within {
            bail!("lag: analytics did not catch up within {} s (lag {total})", config.settle_within.as_secs());
        }
    }
    run.produce = producer.await.context("the producer panicked")??;
    analytics.stop().await.context("stopping analytics")?;
    inventory.stop().await.context("stopping inventory")?;
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    run.detail = Detail::Lag(lag);
    Ok(())
}

async fn replay(config: &Config, log: &Arc<dyn EventLog>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config)?;
    let (state, analytics) = start_analytics(log.clone(), config, None);
    run.produce = produce(log.as_ref(), events, config.batch).await?;
    wait_caught_up(log.as_ref(), ANALYTICS_GROUP, events.len(), config.settle_within).await?;
    let before = metrics_of(&state);
    analytics.stop().await.context("stopping analytics")?;
    crate::progress::step("replay: analytics stopped; resetting its group to the beginning");

    // The group has just lost its only member; a broker may take a moment to see it empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.reset_to_beginning(ANALYTICS_GROUP, &Topic::ALL).await {
            Ok(()) => break,
            Err(LogError::GroupActive { .. }) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(e).context("resetting the analytics group"),
        }
    }
    let lag_after_reset: u64 = lag_of(log.as_ref(), ANALYTICS_GROUP, Instant::now()).await?.iter().map(LagSample::lag).sum();
    crate::progress::step(&format!("replay: group reset, {lag_after_reset} records to read again"));
    if lag_after_reset == 0 {
        bail!("replay: the reset left nothing to re-read");
    }
    let (state, analytics) = start_analytics(log.clone(), config, None);
    wait_caught_up(log.as_ref(), ANALYTICS_GROUP, events.len(), config.settle_within).await?;
    analytics.stop().await.context("stopping analytics")?;
    inventory.stop().await.context("stopping inventory")?;
    run.detail = Detail::Replay { before };
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    Ok(())
}

/// Runs the selected experiments over `SimLog`, each in a fresh world.
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    config
        .scenarios()
        .into_iter()
        .map(|scenario| {
            let world = World::new(config.seed, Model::StreamingKafka, Scope::Experiment(scenario.name()));
            world.block_on(run_experiment(config, scenario, Deployment::sim(&world)))
        })
        .collect()
}

/// Runs the selected experiments against the Kafka at `bootstrap`, each on fresh topics.
pub async fn run_real(config: &Config, bootstrap: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for scenario in config.scenarios() {
        let deployment = Deployment::real(bootstrap, scenario.name()).await?;
        runs.push(run_experiment(config, scenario, deployment).await?);
    }
    Ok(runs)
}

/// Per-minute metrics as (minute, metrics) rows.
pub fn minutes(metrics: &Metrics) -> Vec<(u64, MinuteMetrics)> {
    metrics.per_minute.iter().map(|(m, v)| (*m, *v)).collect()
}
