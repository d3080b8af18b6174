//! The producer (Part C): appends `OrderPlaced` to `order-events` and, after each batch, a
//! watermark on every partition — the latest event time it has appended — which Inventory's
//! event-time merge waits for (see [`super::merge`]). When nothing has been appended for
//! [`IDLE`], it advances the watermark one millisecond past the latest event time, so that the
//! last orders of a burst are decided too.
//!
//! An event whose time is below the watermark already written (a late event: the lab's
//! explorer appends orders out of event-time order) keeps its time; Inventory decides it when
//! it reaches it, which is still the same place for every reader of the same partitions.
//! Appends are serialised (one batch and its watermarks at a time); a batch sorted by event
//! time. A batch the broker does not acknowledge is appended again when it is back (the merge
//! and Inventory absorb the duplicate).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Mutex, Notify};

use super::merge::WATERMARK_HEADER;
use crate::domain::{Envelope, Event, Order, OrderPlaced};
use crate::retry::Policy;
use crate::services::EventClock;
use crate::transport::log::{partition_for, EventLog, LogError, Outgoing, Topic};

/// How long the producer waits without appending before it advances the watermark past the
/// last event: about what an order with no order after it waits for its decision (a quiet
/// campus, where every order is the last one for a while). Cheap: one watermark per partition
/// per quiet spell.
pub const IDLE: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Clock {
    /// The last watermark written.
    floor: u64,
    /// The latest event time appended.
    latest: u64,
    /// When the last batch was appended.
    appended_at: Option<tokio::time::Instant>,
}

pub struct Producer {
    log: Arc<dyn EventLog>,
    clock: EventClock,
    policy: Policy,
    state: Mutex<Clock>,
    /// Wakes the idle-watermark task after an append (to time the quiet spell from it).
    appended: Notify,
    /// One key per partition, so that a watermark lands on each.
    watermark_keys: Vec<String>,
    /// Orders appended since the producer started.
    orders: std::sync::atomic::AtomicU64,
}

/// A key that Kafka's partitioner sends to `partition` of `partitions`.
fn key_for(partition: u32, partitions: u32) -> String {
    (0..)
        .map(|i| format!("watermark-{i}"))
        .find(|k| partition_for(k.as_bytes(), partitions) == partition)
        .expect("some key hits every partition")
}

impl Producer {
    pub fn new(log: Arc<dyn EventLog>, clock: EventClock, policy: Policy) -> Self {
        let partitions = log.partitions();
        let watermark_keys = (0..partitions).map(|p| key_for(p, partitions)).collect();
        Producer {
            log,
            clock,
            policy,
            state: Mutex::new(Clock::default()),
            appended: Notify::new(),
            watermark_keys,
            orders: Default::default(),
        }
    }

    /// Orders appended since the producer started (a repeat under the same key counts again:
    /// the log holds it twice, and its readers absorb it).
    pub fn orders_appended(&self) -> u64 {
        self.orders.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn watermarks(&self, ms: u64) -> impl Iterator<Item = Outgoing> + '_ {
        self.watermark_keys
            .iter()
            .map(move |key| Outgoing::new(Topic::OrderEvents, key.clone(), Bytes::new()).with_header(WATERMARK_HEADER, ms.to_string()))
    }

    /// Places one order now (event time from the producer's clock).
    pub async fn place(&self, order: Order) -> Result<OrderPlaced, LogError> {
        let placed = OrderPlaced { order, placed_at_ms: self.clock.now_ms() };
        Ok(self.append(vec![placed]).await?.remove(0))
    }

    /// Appends `events` in event-time order (stable for equal times) with a watermark on every
    /// partition after them; returns them as appended.
    pub async fn append(&self, mut events: Vec<OrderPlaced>) -> Result<Vec<OrderPlaced>, LogError> {
        let mut clock = self.state.lock().await;
        events.sort_by_key(|e| e.placed_at_ms);
        let Some(last) = events.last().map(|e| e.placed_at_ms.max(clock.floor)) else { return Ok(events) };
        let records: Vec<Outgoing> = events
            .iter()
            .map(|e| {
                Outgoing::new(
                    Topic::OrderEvents,
                    e.order.order_id.to_string(),
                    Bytes::from(Envelope::new(Event::OrderPlaced(e.clone())).encode()),
                )
            })
            .chain(self.watermarks(last))
            .collect();
        let mut backoff = self.policy.backoff("producer");
        self.policy.until_ok(&mut backoff, "the producer", LogError::is_transient, || self.log.append(records.clone())).await?;
        clock.floor = last;
        clock.latest = clock.latest.max(last);
        clock.appended_at = Some(tokio::time::Instant::now());
        self.orders.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.appended.notify_one();
        Ok(events)
    }

    /// Once nothing has been appended for [`IDLE`], advances the watermark past the last event
    /// (once per quiet spell). Ends when `stop` says so.
    pub async fn run_idle_watermarks(&self, mut stop: watch::Receiver<bool>) -> Result<(), LogError> {
        let mut backoff = self.policy.backoff("producer watermarks");
        // How long the quiet spell still has to last; `None`: nothing to advance (nothing
        // appended since the last watermark), so no look until the next append — a quiet
        // campus wakes nobody.
        let mut wait: Option<Duration> = None;
        loop {
            let quiet_long_enough = async move {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                _ = self.appended.notified() => {}
                _ = quiet_long_enough => {}
            }
            if *stop.borrow() {
                return Ok(());
            }
            let mut clock = self.state.lock().await;
            wait = match clock.appended_at {
                Some(at) if clock.floor <= clock.latest => Some((at + IDLE).saturating_duration_since(tokio::time::Instant::now())),
                _ => None,
            };
            match wait {
                Some(left) if left.is_zero() => {}
                _ => continue,
            }
            let next = clock.latest + 1;
            let records: Vec<Outgoing> = self.watermarks(next).collect();
            self.policy
                .until_ok(&mut backoff, "the producer's watermark", LogError::is_transient, || self.log.append(records.clone()))
                .await?;
            clock.floor = next;
            wait = None;
        }
    }
}
