//! What Inventory decided, as a reader that is not Inventory sees it: `inventory-events` and
//! `dead-letters` read from the beginning, `read_committed` (an aborted transaction's records
//! are not there). Every order of the workload must have exactly one decision, the stock
//! Inventory took must be what the reserved orders asked for, and every malformed record of
//! `order-events` must be in `dead-letters`.

use std::collections::BTreeMap;

use campus::domain::{Envelope, Event, OrderPlaced};
use campus::streaming_kafka::consumers::DEAD_LETTER_REASON;
use campus::streaming_kafka::merge::WATERMARK_HEADER;
use campus::transport::log::{EventLog, LogError, Topic};

/// The decisions found in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Each decided order id of the workload: reserved (true) or failed.
    pub outcomes: BTreeMap<String, bool>,
    /// Decision records beyond the first for an order id.
    pub duplicates: usize,
    /// Orders of the workload without a decision.
    pub lost: usize,
    /// Units the orders decided `reserved` asked for.
    pub reserved_units: u64,
    /// The orders decided `failed`, by the reason their first decision gives.
    pub failure_reasons: BTreeMap<String, u64>,
    /// Dead letters by their reason header.
    pub dead_letters: BTreeMap<String, u64>,
    /// Records in `order-events` that are neither an `OrderPlaced` nor a watermark (each must
    /// be in `dead-letters`).
    pub malformed: u64,
}

impl Decisions {
    pub fn decided(&self) -> usize {
        self.outcomes.len()
    }
}

/// Reads `inventory-events` and `dead-letters` to their ends and counts against `events`.
pub async fn read(log: &dyn EventLog, events: &[OrderPlaced]) -> Result<Decisions, LogError> {
    let mut d = Decisions::default();
    for record in log.scan(Topic::InventoryEvents).await? {
        let (id, failed) = match Envelope::decode(&record.value) {
            Ok(Event::InventoryReserved(e)) => (e.order_id.to_string(), None),
            Ok(Event::InventoryFailed(e)) => (e.order_id.to_string(), Some(e.reason)),
            _ => continue,
        };
        if d.outcomes.contains_key(&id) {
            d.duplicates += 1;
            continue;
        }
        d.outcomes.insert(id, failed.is_none());
        if let Some(reason) = failed {
            *d.failure_reasons.entry(reason).or_insert(0) += 1;
        }
    }
    for record in log.scan(Topic::OrderEvents).await? {
        let readable = record.header(WATERMARK_HEADER).is_some() || matches!(Envelope::decode(&record.value), Ok(Event::OrderPlaced(_)));
        d.malformed += u64::from(!readable);
    }
    for record in log.scan(Topic::DeadLetters).await? {
        *d.dead_letters.entry(record.header(DEAD_LETTER_REASON).unwrap_or("unknown").to_owned()).or_insert(0) += 1;
    }
    for e in events {
        match d.outcomes.get(e.order.order_id.as_str()) {
            None => d.lost += 1,
            Some(true) => d.reserved_units += u64::from(e.order.items.units()),
            Some(false) => {}
        }
    }
    Ok(d)
}
