//! Inventory's changelog (Part C): what `inventory-changelog` holds — each decision with the
//! items it took, and the event-time merge's floors — and how a starting Inventory restores
//! its state from it. Written in the same transaction as the outcomes and the offsets (see
//! `super::consumers`), so what a restore reads is exactly what a `read_committed` reader of
//! `inventory-events` sees decided. The topic is compacted: the last record per key is kept
//! (one per order id, and the latest floors).

use serde::{Deserialize, Serialize};

use crate::domain::{Items, OrderId};
use crate::services::inventory::{Inventory, ReserveOutcome};
use crate::transport::log::{EventLog, LogError, Record, Topic};

/// One decision as the changelog keeps it: enough to restore the stock it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub order_id: OrderId,
    pub items: Items,
    pub outcome: ReserveOutcome,
}

/// A record of `inventory-changelog`: a decision (keyed by its order id), or the merge's
/// floors (keyed [`FLOORS_KEY`], the latest one counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum ChangelogEntry {
    Decision(Decision),
    Floors { floors: Vec<u64> },
}

/// The changelog key of the merge's floors.
pub const FLOORS_KEY: &str = "merge-floors";

/// What Inventory restores: its stock and decisions, and where its merge stood.
#[derive(Debug, Clone)]
pub struct Restored {
    pub inventory: Inventory,
    pub floors: Vec<u64>,
}

fn entry_of(record: &Record) -> Result<ChangelogEntry, LogError> {
    serde_json::from_slice(&record.value)
        .map_err(|e| LogError::Corrupt(format!("inventory-changelog[{}]@{}: {e}", record.partition, record.offset)))
}

/// Reads the changelog from the beginning: a fresh Inventory with every decision re-applied,
/// and the merge's last floors.
pub async fn restore(log: &dyn EventLog, stock: u32) -> Result<Restored, LogError> {
    let mut restored = Restored { inventory: Inventory::with_stock(stock), floors: Vec::new() };
    let mut floors_offset = None;
    for record in log.scan(Topic::InventoryChangelog).await? {
        let entry = entry_of(&record)?;
        match entry {
            ChangelogEntry::Decision(d) => restored.inventory.restore(d.order_id, &d.items, d.outcome),
            // One key, so one partition: the highest offset is the latest.
            ChangelogEntry::Floors { floors } => {
                if floors_offset.is_none_or(|o| record.offset > o) {
                    floors_offset = Some(record.offset);
                    restored.floors = floors;
                }
            }
        }
    }
    Ok(restored)
}

/// Restores the Inventory of one partition of `order-events` (a scaled-out Inventory owns
/// whole partitions, each with its own stock): the decisions in the same partition of the
/// changelog — the same key on as many partitions goes to the same partition number. Floors
/// are not needed there (no merge across partitions).
pub async fn restore_partition(log: &dyn EventLog, stock: u32, partition: u32) -> Result<Inventory, LogError> {
    let mut inventory = Inventory::with_stock(stock);
    for record in log.scan_partition(Topic::InventoryChangelog, partition).await? {
        let entry = entry_of(&record)?;
        if let ChangelogEntry::Decision(d) = entry {
            inventory.restore(d.order_id, &d.items, d.outcome);
        }
    }
    Ok(inventory)
}
