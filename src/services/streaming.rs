//! The services as log consumers (Part C). Each polls a batch, handles it, writes what follows
//! from it, and only then commits the batch's offsets: a crash before the commit means the
//! batch is read again (at-least-once), which Inventory's store and the Analytics state absorb.
//!
//! **When the broker goes away** every call to the log is retried where it failed (backoff
//! with jitter, [`Policy`]) — the poll, the append of the outcomes, the commit — so a batch is
//! never half done: its outcomes are appended and its offsets committed once the broker is
//! back. Nothing is fatal but a consumer the log does not know.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::analytics::Analytics;
use crate::domain::{Envelope, Event};
use crate::retry::Policy;
use crate::store::InventoryStore;
use crate::transport::log::{ConsumerId, EventLog, LogError, Position, Record, Topic};

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

/// What to do after a commit: go on, or — the group moved on without this member (a
/// rebalance, or a coordinator that forgot it across a broker restart) — join the group again
/// as a new member, which reads on from the group's committed offsets (the batch whose commit
/// was refused is read again; the stores absorb the repeat). Any other error stands.
fn rejoin_after(result: Result<(), LogError>) -> Result<bool, LogError> {
    match result {
        Ok(()) => Ok(false),
        Err(LogError::Rebalanced(detail)) => {
            tracing::warn!(%detail, "a commit was refused: the group moved on; joining it again");
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Leaves (as far as the log lets it) and joins `group` again as a new member.
async fn rejoin(log: &dyn EventLog, me: ConsumerId, group: &str, topics: &[Topic], policy: Policy, backoff: &mut crate::retry::Backoff) -> Result<ConsumerId, LogError> {
    if let Err(e) = log.leave(me).await {
        tracing::debug!(error = %e, "leaving the group before joining again");
    }
    policy.until_ok(backoff, "joining the group again", LogError::is_transient, || log.join(group, topics)).await
}

/// Inventory on the log: reserves each `OrderPlaced` (idempotently) and appends the outcome
/// to `inventory-events`, keyed by order id; commits after each batch. Stops when `stop` says
/// so, leaving the group.
pub async fn run_inventory(
    log: Arc<dyn EventLog>,
    store: Arc<InventoryStore>,
    batch: usize,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let mut backoff = policy.backoff("inventory");
    let retry = LogError::is_transient;
    let topics = [Topic::OrderEvents];
    let mut me = policy.until_ok(&mut backoff, "inventory joining its group", retry, || log.join(INVENTORY_GROUP, &topics)).await?;
    while !*stop.borrow_and_update() {
        let records = policy.until_ok(&mut backoff, "inventory polling", retry, || log.poll(me, batch, POLL_WAIT)).await?;
        if records.is_empty() {
            continue;
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for record in &records {
            let Some(Event::OrderPlaced(placed)) = decode(record) else { continue };
            let handled = store.handle(&placed).map_err(|e| LogError::Broker(format!("inventory store: {e}")))?;
            outcomes.push((record.key.clone(), Envelope::new(handled.event).encode().into()));
        }
        policy.until_ok(&mut backoff, "inventory appending outcomes", retry, || log.append(Topic::InventoryEvents, outcomes.clone())).await?;
        let next = positions(&records);
        if rejoin_after(policy.until_ok(&mut backoff, "inventory committing", retry, || log.commit(me, next.clone())).await)? {
            me = rejoin(log.as_ref(), me, INVENTORY_GROUP, &topics, policy, &mut backoff).await?;
        }
    }
    policy.until_ok(&mut backoff, "inventory leaving its group", retry, || log.leave(me)).await
}

/// Analytics on the log: reads both topics into `state`, at most `throttle` records per
/// second if given, committing after each batch. Stops when `stop` says so, leaving the group.
pub async fn run_analytics(
    log: Arc<dyn EventLog>,
    group: &str,
    state: Arc<Mutex<Analytics>>,
    batch: usize,
    throttle: Option<u32>,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let mut backoff = policy.backoff(group);
    let retry = LogError::is_transient;
    let topics = [Topic::OrderEvents, Topic::InventoryEvents];
    let mut me = policy.until_ok(&mut backoff, "analytics joining its group", retry, || log.join(group, &topics)).await?;
    let batch = throttle.map_or(batch, |rate| batch.min((rate as usize / 10).max(1)));
    let started = Instant::now();
    let mut handled: u64 = 0;
    while !*stop.borrow_and_update() {
        let records = policy.until_ok(&mut backoff, "analytics polling", retry, || log.poll(me, batch, POLL_WAIT)).await?;
        if records.is_empty() {
            continue;
        }
        {
            let mut state = state.lock().expect("analytics lock");
            for event in records.iter().filter_map(decode) {
                state.apply(&event);
            }
        }
        let next = positions(&records);
        if rejoin_after(policy.until_ok(&mut backoff, "analytics committing", retry, || log.commit(me, next.clone())).await)? {
            me = rejoin(log.as_ref(), me, group, &topics, policy, &mut backoff).await?;
        }
        handled += records.len() as u64;
        if let Some(rate) = throttle {
            tokio::time::sleep_until(started + Duration::from_secs_f64(handled as f64 / f64::from(rate))).await;
        }
    }
    policy.until_ok(&mut backoff, "analytics leaving its group", retry, || log.leave(me)).await
}
