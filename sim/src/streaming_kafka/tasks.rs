//! What Part C's experiments run and read, whichever experiment: the producer, Inventory and
//! Analytics as tasks, each group's lag, and the wait until every consumer caught up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use campus::deploy::streaming_kafka as wiring;
use campus::domain::{Envelope, Event, OrderPlaced};
use campus::retry::Policy;
use campus::services::analytics::{Analytics, Metrics};
use campus::services::streaming::INVENTORY_GROUP;
use campus::store::InventoryStore;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::{Config, LagSample, ANALYTICS_GROUP};

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

pub(super) async fn wait_caught_up(log: &dyn EventLog, group: &str, events: usize, within: Duration) -> anyhow::Result<()> {
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
