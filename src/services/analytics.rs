//! Analytics (Part C): orders per minute of event time and the failure rate, overall and per
//! minute, from `OrderPlaced` and `InventoryReserved` / `InventoryFailed`.
//!
//! An order is counted once, by its id, so a record read twice (at-least-once delivery, a
//! replay over a partly-read log) changes nothing: the metrics are a function of the set of
//! events, not of how often or in which order they were read. The counts are kept per minute;
//! the ids, to recognise a record read again, for the last [`REMEMBERED`] orders and outcomes
//! ([`super::recent`]), so memory stays flat however many orders pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::completions::Completions;
use super::recent::{Recent, REMEMBERED};
use super::EventClock;
use crate::domain::{Event, OrderId};

/// Milliseconds of event time per bucket.
pub const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analytics {
    /// The orders placed and the outcomes counted recently, by order id.
    placed: Recent<OrderId, ()>,
    outcomes: Recent<OrderId, ()>,
    metrics: Metrics,
    /// Distinct orders placed and distinct outcomes counted.
    seen: (usize, usize),
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics { placed: Recent::new(REMEMBERED), outcomes: Recent::new(REMEMBERED), metrics: Metrics::default(), seen: (0, 0) }
    }
}

/// What Analytics' loop counts into, shared with its HTTP face: the metrics, and when each
/// order's outcome was first counted (its completion, for the lab's completion latency).
#[derive(Clone)]
pub struct Counting {
    pub analytics: Arc<Mutex<Analytics>>,
    pub completions: Completions,
}

impl Counting {
    pub fn new(clock: EventClock) -> Self {
        Counting { analytics: Arc::new(Mutex::new(Analytics::default())), completions: Completions::new(clock) }
    }

    /// Counts `events`; an outcome counted for the first time completes its order now.
    pub fn count(&self, events: impl IntoIterator<Item = Event>) {
        let mut analytics = self.analytics.lock().expect("analytics lock");
        for event in events {
            let outcome = !matches!(event, Event::OrderPlaced(_));
            if analytics.apply(&event) && outcome {
                self.completions.record(event.order_id());
            }
        }
    }
}

/// One minute of event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteMetrics {
    pub orders: u64,
    pub reserved: u64,
    pub failed: u64,
}

impl MinuteMetrics {
    /// failed / (reserved + failed); 0 when nothing was decided.
    pub fn failure_rate(&self) -> f64 {
        let decided = self.reserved + self.failed;
        if decided == 0 {
            0.0
        } else {
            self.failed as f64 / decided as f64
        }
    }
}

/// The analytics' answer: per minute (by event time) and overall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub per_minute: BTreeMap<u64, MinuteMetrics>,
    pub total: MinuteMetrics,
}

impl Analytics {
    /// Counts `event`; false (and nothing changed) when its order, or its outcome, was
    /// counted before.
    pub fn apply(&mut self, event: &Event) -> bool {
        let (id, minute, outcome) = match event {
            Event::OrderPlaced(e) => (&e.order.order_id, e.placed_at_ms / MINUTE_MS, None),
            Event::InventoryReserved(e) => (&e.order_id, e.placed_at_ms / MINUTE_MS, Some(true)),
            Event::InventoryFailed(e) => (&e.order_id, e.placed_at_ms / MINUTE_MS, Some(false)),
        };
        let seen = match outcome {
            None => &mut self.placed,
            Some(_) => &mut self.outcomes,
        };
        if !seen.insert(id.clone(), ()) {
            return false;
        }
        let bucket = self.metrics.per_minute.entry(minute).or_default();
        let total = &mut self.metrics.total;
        match outcome {
            None => {
                bucket.orders += 1;
                total.orders += 1;
                self.seen.0 += 1;
            }
            Some(reserved) => {
                if reserved {
                    bucket.reserved += 1;
                    total.reserved += 1;
                } else {
                    bucket.failed += 1;
                    total.failed += 1;
                }
                self.seen.1 += 1;
            }
        }
        true
    }

    /// Events seen (distinct orders placed, distinct outcomes).
    pub fn seen(&self) -> (usize, usize) {
        self.seen
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }
}
