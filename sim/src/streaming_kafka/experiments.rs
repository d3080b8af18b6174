//! Part C's experiments, step by step: the producer, Inventory and Analytics as tasks, the lag
//! sampled every second, the reset of the Analytics group, and the wait until every consumer
//! caught up. The same code runs over the simulated log and a real Kafka; only the
//! [`Deployment`] differs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use campus::deploy::streaming_kafka as wiring;
use campus::domain::{Envelope, Event, OrderPlaced};
use campus::retry::Policy;
use campus::services::analytics::{Analytics, Metrics};
use campus::services::streaming::INVENTORY_GROUP;
use campus::store::InventoryStore;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::{Config, Deployment, Detail, Lag, LagSample, Run, Scenario, ANALYTICS_GROUP};

/// The producer: appends `events` in batches of `batch`, at most `rate` events per second if
/// given; a batch the broker does not acknowledge (it went away) is appended again once it is
/// back. `produced` counts the events appended so far.
pub(super) async fn produce(
    log: &dyn EventLog,
    events: &[OrderPlaced],
    batch: usize,
    rate: Option<u32>,
    policy: Policy,
    produced: &AtomicUsize,
) -> Result<Duration, LogError> {
    let started = Instant::now();
    let mut backoff = policy.backoff("producer");
    for chunk in events.chunks(batch) {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(produced.load(Ordering::Relaxed) as f64 / f64::from(rate));
            tokio::time::sleep_until(due).await;
        }
        let records: Vec<(String, Bytes)> = chunk
            .iter()
            .map(|e| (e.order.order_id.to_string(), Bytes::from(Envelope::new(Event::OrderPlaced(e.clone())).encode())))
            .collect();
        policy.until_ok(&mut backoff, "the producer", LogError::is_transient, || log.append(Topic::OrderEvents, records.clone())).await?;
        produced.fetch_add(chunk.len(), Ordering::Relaxed);
    }
    Ok(started.elapsed())
}

pub(super) async fn lag_of(log: &dyn EventLog, group: &str, t0: Instant) -> Result<Vec<LagSample>, LogError> {
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
pub(super) async fn caught_up(log: &dyn EventLog, group: &str, events: usize) -> Result<bool, LogError> {
    let outcomes: u64 = log.end_offsets(Topic::InventoryEvents).await?.iter().sum();
    let inventory_done = log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?.iter().sum::<u64>() as usize >= events;
    let lag: u64 = lag_of(log, group, Instant::now()).await?.iter().map(LagSample::lag).sum();
    Ok(inventory_done && outcomes as usize >= events && lag == 0)
}

async fn wait_caught_up(log: &dyn EventLog, group: &str, events: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    // An answer the broker cannot give now (it is restarting) means "not yet".
    while !caught_up(log, group, events).await.or_else(|e| if e.is_transient() { Ok(false) } else { Err(e) })? {
        if Instant::now() > deadline {
            bail!("{group} did not catch up within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub(super) fn start_inventory(log: Arc<dyn EventLog>, config: &Config, policy: Policy) -> anyhow::Result<(Arc<InventoryStore>, wiring::Consumer)> {
    let store = Arc::new(InventoryStore::open(None, config.stock)?);
    Ok((store.clone(), wiring::inventory(log, store, config.batch, policy)))
}

pub(super) fn start_analytics(log: Arc<dyn EventLog>, config: &Config, throttle: Option<u32>, policy: Policy) -> (Arc<Mutex<Analytics>>, wiring::Consumer) {
    let state = Arc::new(Mutex::new(Analytics::default()));
    (state.clone(), wiring::analytics(log, ANALYTICS_GROUP, state, config.batch, throttle, policy))
}

pub(super) fn metrics_of(state: &Arc<Mutex<Analytics>>) -> Metrics {
    state.lock().expect("analytics lock").metrics()
}

/// Runs one experiment on a fresh log (fresh topics in real mode).
pub async fn run_experiment(config: &Config, scenario: Scenario, deployment: Deployment<'_>) -> anyhow::Result<Run> {
    let events = config.events();
    let l = deployment.log();
    let policy = deployment.policy();
    let mut run = Run::new(deployment.mode(), &events, Detail::Produce);
    let result = async {
        match scenario {
            Scenario::Produce => {
                run.produce = produce(l.as_ref(), &events, config.batch, None, policy, &AtomicUsize::new(0)).await?;
                crate::progress::step(&format!("produce: {} events in {:.2} s", events.len(), run.produce.as_secs_f64()));
            }
            Scenario::Lag => lag(config, &l, policy, &events, &mut run).await?,
            Scenario::Replay => replay(config, &l, policy, &events, &mut run).await?,
            Scenario::BrokerRestart => super::broker_restart::run(config, &deployment, &events, &mut run).await?,
        }
        Ok(())
    }
    .await;
    deployment.teardown().await;
    result.map(|()| run)
}

async fn lag(config: &Config, log: &Arc<dyn EventLog>, policy: Policy, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config, policy)?;
    let (state, analytics) = start_analytics(log.clone(), config, Some(config.throttle_per_s), policy);
    let t0 = Instant::now();
    let producer = {
        let (log, events, batch) = (log.clone(), events.to_vec(), config.batch);
        tokio::spawn(async move { produce(log.as_ref(), &events, batch, None, policy, &AtomicUsize::new(0)).await })
    };
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut produced_at = None;
    let mut lag = Lag::default();
    let mut live = crate::progress::Progress::new("lag");
    loop {
        tick.tick().await;
        // A sample the broker cannot answer now (it is restarting) is skipped.
        let samples = match lag_of(log.as_ref(), ANALYTICS_GROUP, t0).await {
            Ok(samples) => samples,
            Err(e) if e.is_transient() && t0.elapsed() <= config.settle_within => continue,
            Err(e) => return Err(e.into()),
        };
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
        if produced_at.is_some() && total == 0 && caught_up(log.as_ref(), ANALYTICS_GROUP, events.len()).await.unwrap_or(false) {
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

async fn replay(config: &Config, log: &Arc<dyn EventLog>, policy: Policy, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config, policy)?;
    let (state, analytics) = start_analytics(log.clone(), config, None, policy);
    run.produce = produce(log.as_ref(), events, config.batch, None, policy, &AtomicUsize::new(0)).await?;
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
    let (state, analytics) = start_analytics(log.clone(), config, None, policy);
    wait_caught_up(log.as_ref(), ANALYTICS_GROUP, events.len(), config.settle_within).await?;
    analytics.stop().await.context("stopping analytics")?;
    inventory.stop().await.context("stopping inventory")?;
    run.detail = Detail::Replay { before };
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    Ok(())
}

