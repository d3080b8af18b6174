//! Analytics (Part C): orders per minute of event time and the failure rate, overall and per
//! minute, from `OrderPlaced` and `InventoryReserved` / `InventoryFailed`.
//!
//! The state is keyed by order id, so a record read twice (at-least-once delivery, a replay
//! over a partly-read log) changes nothing: the metrics are a function of the set of events,
//! not of how often or in which order they were read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Event, OrderId};

/// Milliseconds of event time per bucket.
pub const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analytics {
    /// Each order's event minute.
    placed: BTreeMap<OrderId, u64>,
    /// Each order's outcome (true = reserved) and event minute.
    outcomes: BTreeMap<OrderId, (bool, u64)>,
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
        if decided == 0 { 0.0 } else { self.failed as f64 / decided as f64 }
    }
}

/// The analytics' answer: per minute (by event time) and overall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub per_minute: BTreeMap<u64, MinuteMetrics>,
    pub total: MinuteMetrics,
}

impl Analytics {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::OrderPlaced(e) => {
                self.placed.insert(e.order.order_id.clone(), e.placed_at_ms / MINUTE_MS);
            }
            Event::InventoryReserved(e) => {
                self.outcomes.insert(e.order_id.clone(), (true, e.placed_at_ms / MINUTE_MS));
            }
            Event::InventoryFailed(e) => {
                self.outcomes.insert(e.order_id.clone(), (false, e.placed_at_ms / MINUTE_MS));
            }
        }
    }

    /// Events seen (distinct orders placed, distinct outcomes).
    pub fn seen(&self) -> (usize, usize) {
        (self.placed.len(), self.outcomes.len())
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        for minute in self.placed.values() {
            m.per_minute.entry(*minute).or_default().orders += 1;
            m.total.orders += 1;
        }
        for (reserved, minute) in self.outcomes.values() {
            let bucket = m.per_minute.entry(*minute).or_default();
            if *reserved {
                bucket.reserved += 1;
                m.total.reserved += 1;
            } else {
                bucket.failed += 1;
                m.total.failed += 1;
            }
        }
        m
    }
}
