//! Part C, streaming over Kafka: the experiments, run over `SimLog` in virtual time or over a
//! real Apache Kafka. In both modes the services (the producer, Inventory, Analytics) are tasks
//! of this process: what differs between the modes is the log, which is the subject of Part C.
//!
//! | experiment | what happens                                                          |
//! |------------|-----------------------------------------------------------------------|
//! | `produce`  | `--events` `OrderPlaced` appended to `order-events`, timed, nothing consuming |
//! | `lag`      | Inventory and a throttled Analytics (`--throttle-per-s`) consume while the producer runs at full speed: lag per partition per second, its peak, the catch-up |
//! | `replay`   | Analytics catches up, its group is reset to the beginning through the log, a fresh Analytics recomputes: before and after compared, and against the workload |

pub mod output;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use campus::domain::{Envelope, Event, Order, OrderPlaced};
use campus::services::analytics::{Analytics, Metrics, MinuteMetrics, MINUTE_MS};
use campus::services::order::OrderIds;
use campus::services::streaming;
use campus::store::{InventoryStats, InventoryStore};
use campus::transport::kafka::KafkaLog;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::log::SimLog;
use crate::net::LinkModel;
use crate::rng::SimRng;
use crate::{workload, Mode};

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

    pub fn experiments(&self) -> Vec<&'static str> {
        match self.experiment {
            Experiment::All => vec!["produce", "lag", "replay"],
            Experiment::Produce => vec!["produce"],
            Experiment::Lag => vec!["lag"],
            Experiment::Replay => vec!["replay"],
        }
    }

    /// The run's events: orders from the seed, with event times a seeded walk over a campus
    /// day — quiet, a lunch rush in the middle third (three times the rate), quiet again —
    /// about 85 orders per minute outside the rush, so 10,000 orders span about 80 minutes.
    pub fn events(&self) -> Vec<OrderPlaced> {
        let rng = SimRng::new(self.seed).fork("streaming-kafka");
        let requests = workload::orders(&mut rng.fork("workload"), self.events);
        let mut gaps = rng.fork("event-time");
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

/// A finished experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub experiment: &'static str,
    pub mode: Mode,
    pub events: usize,
    /// How long appending the events took (the producer alone in `produce`; alongside the
    /// consumers in the others).
    pub produce: Duration,
    pub lag: Vec<LagSample>,
    /// Total lag (all partitions of both topics) at its highest.
    pub peak_lag: u64,
    /// From the last event appended to the Analytics lag back at 0.
    pub catch_up: Option<Duration>,
    /// Analytics' metrics (after the replay, in `replay`).
    pub metrics: Option<Metrics>,
    pub before_replay: Option<Metrics>,
    pub expected_orders: BTreeMap<u64, u64>,
    pub inventory: Option<InventoryStats>,
}

impl Run {
    pub fn replay_equal(&self) -> Option<bool> {
        Some(self.before_replay.as_ref()? == self.metrics.as_ref()?)
    }
}

/// The log a run uses, and how to clean it up.
pub enum Log {
    Sim(Arc<SimLog>),
    Kafka(Arc<KafkaLog>),
}

impl Log {
    fn as_dyn(&self) -> Arc<dyn EventLog> {
        match self {
            Log::Sim(l) => l.clone(),
            Log::Kafka(l) => l.clone(),
        }
    }
    fn mode(&self) -> Mode {
        match self {
            Log::Sim(_) => Mode::Sim,
            Log::Kafka(_) => Mode::Real,
        }
    }
    async fn teardown(self) {
        if let Log::Kafka(k) = self {
            if let Err(e) = k.delete_topics().await {
                tracing::warn!(error = %e, "could not delete the run's topics");
            }
        }
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
    let inventory_done = log.committed("inventory", Topic::OrderEvents).await?.iter().sum::<u64>() as usize >= events;
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

/// A consumer task and the switch that stops it.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), LogError>>,
}

impl Running {
    /// Asks the consumer to stop (it leaves its group) and waits for it.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("a consumer task panicked")?.context("a consumer failed")?;
        Ok(())
    }
}

fn start_inventory(log: Arc<dyn EventLog>, config: &Config) -> anyhow::Result<(Arc<InventoryStore>, Running)> {
    let (stop, stopped) = watch::channel(false);
    let store = Arc::new(InventoryStore::open(None, config.stock)?);
    let task = tokio::spawn(streaming::run_inventory(log, store.clone(), config.batch, stopped));
    Ok((store, Running { stop, task }))
}

fn start_analytics(log: Arc<dyn EventLog>, config: &Config, throttle: Option<u32>) -> (Arc<Mutex<Analytics>>, Running) {
    let state = Arc::new(Mutex::new(Analytics::default()));
    let (stop, stopped) = watch::channel(false);
    let task = {
        let (state, batch) = (state.clone(), config.batch);
        tokio::spawn(async move { streaming::run_analytics(log, "analytics", state, batch, throttle, stopped).await })
    };
    (state, Running { stop, task })
}

fn metrics_of(state: &Arc<Mutex<Analytics>>) -> Metrics {
    state.lock().expect("analytics lock").metrics()
}

/// Runs one experiment on a fresh log (fresh topics in real mode).
pub async fn run_experiment(config: &Config, experiment: &'static str, log: Log) -> anyhow::Result<Run> {
    let events = config.events();
    let mode = log.mode();
    let l = log.as_dyn();
    let mut run = Run {
        experiment,
        mode,
        events: events.len(),
        produce: Duration::ZERO,
        lag: Vec::new(),
        peak_lag: 0,
        catch_up: None,
        metrics: None,
        before_replay: None,
        expected_orders: expected_orders_per_minute(&events),
        inventory: None,
    };
    let result = async {
        match experiment {
            "produce" => {
                run.produce = produce(l.as_ref(), &events, config.batch).await?;
                crate::progress(&format!("produce: {} events in {:.2} s", events.len(), run.produce.as_secs_f64()));
            }
            "lag" => lag(config, &l, &events, &mut run).await?,
            "replay" => replay(config, &l, &events, &mut run).await?,
            other => bail!("no experiment {other}"),
        }
        Ok(())
    }
    .await;
    log.teardown().await;
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
    let mut live = crate::Progress::new("lag");
    loop {
        tick.tick().await;
        let samples = lag_of(log.as_ref(), "analytics", t0).await?;
        let total: u64 = samples.iter().map(LagSample::lag).sum();
        run.peak_lag = run.peak_lag.max(total);
        let t = t0.elapsed();
        run.lag.extend(samples);
        if produced_at.is_none() && producer.is_finished() {
            produced_at = Some(t);
        }
        live.update(|| {
            let phase = if produced_at.is_some() { "catching up" } else { "producing" };
            format!("t={:>3} s ({phase}): analytics lag {total} records (peak {})", t.as_secs(), run.peak_lag)
        });
        if produced_at.is_some() && total == 0 && caught_up(log.as_ref(), "analytics", events.len()).await? {
            run.catch_up = produced_at.map(|p| t.saturating_sub(p));
            live.finish(&format!("caught up at {} s (peak lag {})", t.as_secs(), run.peak_lag));
            break;
        }
        if t > config.settle_within {
            bail!("lag: analytics did not catch up within {} s (lag {total})", config.settle_within.as_secs());
        }
    }
    run.produce = producer.await.context("the producer panicked")??;
    analytics.stop().await?;
    inventory.stop().await?;
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    Ok(())
}

async fn replay(config: &Config, log: &Arc<dyn EventLog>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config)?;
    let (state, analytics) = start_analytics(log.clone(), config, None);
    run.produce = produce(log.as_ref(), events, config.batch).await?;
    wait_caught_up(log.as_ref(), "analytics", events.len(), config.settle_within).await?;
    let before = metrics_of(&state);
    analytics.stop().await?;
    crate::progress("replay: analytics stopped; resetting its group to the beginning");

    // The group has just lost its only member; a broker may take a moment to see it empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.reset_to_beginning("analytics", &Topic::ALL).await {
            Ok(()) => break,
            Err(LogError::GroupActive { .. }) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(e).context("resetting the analytics group"),
        }
    }
    let lag_after_reset: u64 = lag_of(log.as_ref(), "analytics", Instant::now()).await?.iter().map(LagSample::lag).sum();
    crate::progress(&format!("replay: group reset, {lag_after_reset} records to read again"));
    if lag_after_reset == 0 {
        bail!("replay: the reset left nothing to re-read");
    }
    let (state, analytics) = start_analytics(log.clone(), config, None);
    wait_caught_up(log.as_ref(), "analytics", events.len(), config.settle_within).await?;
    analytics.stop().await?;
    inventory.stop().await?;
    run.before_replay = Some(before);
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    Ok(())
}

/// Runs the selected experiments over `SimLog`, each in a fresh virtual world.
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    config
        .experiments()
        .into_iter()
        .map(|experiment| {
            crate::world::block_on(async {
                let rng = SimRng::new(config.seed).fork("streaming-kafka/log").fork(experiment);
                run_experiment(config, experiment, Log::Sim(Arc::new(SimLog::new(rng, LinkModel::default())))).await
            })
        })
        .collect()
}

/// Runs the selected experiments against the Kafka at `bootstrap`, each on fresh topics.
pub async fn run_real(config: &Config, bootstrap: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for experiment in config.experiments() {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let kafka = KafkaLog::connect(bootstrap, &namespace).await.with_context(|| {
            format!("Kafka is not reachable at {bootstrap}; start it with `scripts/brokers.sh up kafka` (or set KAFKA_BOOTSTRAP_SERVERS)")
        })?;
        crate::progress(&format!("{experiment}: topics {namespace}.*"));
        runs.push(run_experiment(config, experiment, Log::Kafka(Arc::new(kafka))).await?);
    }
    Ok(runs)
}

/// Per-minute metrics as (minute, metrics) rows.
pub fn minutes(metrics: &Metrics) -> Vec<(u64, MinuteMetrics)> {
    metrics.per_minute.iter().map(|(m, v)| (*m, *v)).collect()
}
