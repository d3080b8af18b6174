//! Inventory's store: stock per sku and the processed order ids, the stock change and the
//! processed row committed in one transaction (the dedup that makes a redelivery harmless).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{open, Db, StoreError};
use crate::domain::{Envelope, Event, InventoryFailed, InventoryReserved, OrderPlaced, Sku};
use crate::transport::queue::Route;

/// What Inventory did with one `OrderPlaced`: the event to publish, and whether this was the
/// first time (stock changed) or a repeat (the stored event, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub route: Route,
    pub event: Event,
    pub first: bool,
}

/// Inventory's state, for the accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryStats {
    pub reserved: u64,
    pub failed: u64,
    /// Times stock was taken for an order (one per reserved order when dedup works).
    pub stock_applications: u64,
    /// Reserved orders whose stock was taken more than once.
    pub double_reservations: u64,
    /// Repeated `OrderPlaced` (redelivered or duplicated) answered from the stored outcome.
    pub repeats: u64,
    /// Units taken in total, and the units the reserved orders asked for: equal when no order
    /// was reserved twice.
    pub units_taken: u64,
    pub units_of_reserved_orders: u64,
    pub stock: BTreeMap<String, u64>,
}

pub struct InventoryStore {
    db: Db,
    /// Only the lab's `--break dedup` turns this off, to show the checker catching it.
    dedup: bool,
}

impl InventoryStore {
    /// Opens the store; a new one starts with `per_sku` units of every menu item (an existing
    /// file keeps its levels: a restarted Inventory does not restock).
    pub fn open(path: Option<&Path>, per_sku: u32) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL, initial INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS processed (
                 order_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, units INTEGER NOT NULL, event BLOB NOT NULL,
                 repeats INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS applications (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, units INTEGER NOT NULL);",
        )?;
        for sku in Sku::all() {
            conn.execute("INSERT OR IGNORE INTO stock (sku, units, initial) VALUES (?1, ?2, ?2)", params![sku.as_str(), per_sku])?;
        }
        Ok(InventoryStore { db: Db(Mutex::new(conn)), dedup: true })
    }

    /// Turns idempotency off (lab only: `campus-sim explore --break dedup`).
    pub fn without_dedup(mut self) -> Self {
        self.dedup = false;
        self
    }

    /// Reserves `placed`'s order, or re-emits what was decided the first time.
    pub fn handle(&self, placed: &OrderPlaced) -> Result<Handled, StoreError> {
        let order = &placed.order;
        let id = order.order_id.as_str();
        let mut conn = self.db.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if self.dedup {
            let stored: Option<Vec<u8>> = tx.prepare_cached("SELECT event FROM processed WHERE order_id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
            if let Some(bytes) = stored {
                tx.prepare_cached("UPDATE processed SET repeats = repeats + 1 WHERE order_id = ?1")?.execute([id])?;
                tx.commit()?;
                let event = Envelope::decode(&bytes).map_err(|e| StoreError::Corrupt { order_id: id.into(), detail: e.to_string() })?;
                return Ok(Handled { route: route_of(&event), event, first: false });
            }
        }
        let mut levels = BTreeMap::new();
        for line in order.items.as_slice() {
            let units: i64 = tx.prepare_cached("SELECT units FROM stock WHERE sku = ?1")?.query_row([line.sku.as_str()], |r| r.get(0))?;
            levels.insert(line.sku.clone(), units as u32);
        }
        let event = match order.items.shortfall(|sku| levels[sku]) {
            Some(reason) => Event::InventoryFailed(InventoryFailed { order_id: order.order_id.clone(), reason, placed_at_ms: placed.placed_at_ms }),
            None => {
                for line in order.items.as_slice() {
                    tx.prepare_cached("UPDATE stock SET units = units - ?2 WHERE sku = ?1")?.execute(params![line.sku.as_str(), line.qty.get()])?;
                }
                tx.prepare_cached("INSERT INTO applications (order_id, units) VALUES (?1, ?2)")?.execute(params![id, order.items.units()])?;
                Event::InventoryReserved(InventoryReserved {
                    order_id: order.order_id.clone(),
                    student_id: order.student_id.clone(),
                    placed_at_ms: placed.placed_at_ms,
                })
            }
        };
        let outcome = if matches!(event, Event::InventoryReserved(_)) { "reserved" } else { "failed" };
        tx.prepare_cached("INSERT OR REPLACE INTO processed (order_id, outcome, units, event) VALUES (?1, ?2, ?3, ?4)")?.execute(
            params![id, outcome, order.items.units(), Envelope::new(event.clone()).encode()],
        )?;
        tx.commit()?;
        Ok(Handled { route: route_of(&event), event, first: true })
    }

    pub fn stats(&self) -> Result<InventoryStats, StoreError> {
        let conn = self.db.lock();
        let mut stats = conn.query_row(
            "SELECT (SELECT count(*) FROM processed WHERE outcome = 'reserved'),
                    (SELECT count(*) FROM processed WHERE outcome = 'failed'),
                    (SELECT count(*) FROM applications),
                    (SELECT count(*) FROM (SELECT order_id FROM applications GROUP BY order_id HAVING count(*) > 1)),
                    (SELECT coalesce(sum(repeats), 0) FROM processed),
                    (SELECT coalesce(sum(initial - units), 0) FROM stock),
                    (SELECT coalesce(sum(units), 0) FROM processed WHERE outcome = 'reserved')",
            [],
            |r| {
                Ok(InventoryStats {
                    reserved: r.get(0)?,
                    failed: r.get(1)?,
                    stock_applications: r.get(2)?,
                    double_reservations: r.get(3)?,
                    repeats: r.get(4)?,
                    units_taken: r.get(5)?,
                    units_of_reserved_orders: r.get(6)?,
                    stock: BTreeMap::new(),
                })
            },
        )?;
        let mut stmt = conn.prepare("SELECT sku, units FROM stock ORDER BY sku")?;
        stats.stock = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(stats)
    }

    /// Every processed order id with its outcome (`reserved` / `failed`).
    pub fn outcomes(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.db.lock();
        let mut stmt = conn.prepare("SELECT order_id, outcome FROM processed")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn route_of(event: &Event) -> Route {
    match event {
        Event::OrderPlaced(_) => Route::OrderPlaced,
        Event::InventoryReserved(_) => Route::InventoryReserved,
        Event::InventoryFailed(_) => Route::InventoryFailed,
    }
}
