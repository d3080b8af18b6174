//! The services as log consumers (Part C). Each polls a batch, handles it, writes what follows
//! from it, and only then commits the batch's offsets: a crash before the commit means the
//! batch is read again (at-least-once), which Inventory's store and the Analytics state absorb.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::analytics::Analytics;
use crate::domain::{Envelope, Event};
use crate::store::InventoryStore;
use crate::transport::log::{EventLog, LogError, Position, Record, Topic};

/// Inventory's consumer group.
pub const INVENTORY_GROUP: &str = "inventory";

/// How long a poll waits for the first record before the loop checks whether to stop.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// The next offsets after `records`, per partition: what a commit stores.
fn positions(records: &[Record]) -> Vec<Position> {
    let mut next = std::collections::BTreeMap::new();
    for r in records {
        let entry = next.entry((r.topic, r.partition)).or_insert(0);
        *entry = (*entry).max(r.offset + 1);
    }
    next.into_iter().map(|((topic, partition), next)| Position { topic, partition, next }).collect()
}

fn decode(record: &Record) -> Option<Event> {
    match Envelope::decode(&record.value) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "skipping an undecodable record");
            None
        }
    }
}

/// Inventory on the log: reserves each `OrderPlaced` (idempotently) and appends the outcome
/// to `inventory-events`, keyed by order id; commits after each batch. Stops when `stop` says
/// so, leaving the group.
pub async fn run_inventory(
    log: Arc<dyn EventLog>,
    store: Arc<InventoryStore>,
    batch: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let me = log.join(INVENTORY_GROUP, &[Topic::OrderEvents]).await?;
    while !*stop.borrow_and_update() {
        let records = log.poll(me, batch, POLL_WAIT).await?;
        if records.is_empty() {
            continue;
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for record in &records {
            let Some(Event::OrderPlaced(placed)) = decode(record) else { continue };
            let handled = store.handle(&placed).map_err(|e| LogError::Broker(format!("inventory store: {e}")))?;
            outcomes.push((record.key.clone(), Envelope::new(handled.event).encode().into()));
        }
        log.append(Topic::InventoryEvents, outcomes).await?;
        log.commit(me, positions(&records)).await?;
    }
    log.leave(me).await
}

/// Analytics on the log: reads both topics into `state`, at most `throttle` records per
/// second if given, committing after each batch. Stops when `stop` says so, leaving the group.
pub async fn run_analytics(
    log: Arc<dyn EventLog>,
    group: &str,
    state: Arc<Mutex<Analytics>>,
    batch: usize,
    throttle: Option<u32>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let me = log.join(group, &[Topic::OrderEvents, Topic::InventoryEvents]).await?;
    let batch = throttle.map_or(batch, |rate| batch.min((rate as usize / 10).max(1)));
    let started = Instant::now();
    let mut handled: u64 = 0;
    while !*stop.borrow_and_update() {
        let records = log.poll(me, batch, POLL_WAIT).await?;
        if records.is_empty() {
            continue;
        }
        {
            let mut state = state.lock().expect("analytics lock");
            for event in records.iter().filter_map(decode) {
                state.apply(&event);
            }
        }
        log.commit(me, positions(&records)).await?;
        handled += records.len() as u64;
        if let Some(rate) = throttle {
            tokio::time::sleep_until(started + Duration::from_secs_f64(handled as f64 / f64::from(rate))).await;
        }
    }
    log.leave(me).await
}
