//! Notification's store: one row per confirmed order, so a repeat sends nothing twice.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{open, Db, StoreError};
use crate::domain::{OrderId, StudentId};

pub struct NotificationStore(Db);

impl NotificationStore {
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sent (order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL);",
        )?;
        Ok(NotificationStore(Db(Mutex::new(conn))))
    }

    /// Records the confirmation; false (and nothing sent) if this order was confirmed before.
    pub fn send(&self, order_id: &OrderId, student_id: &StudentId) -> Result<bool, StoreError> {
        let conn = self.0.lock();
        let message = format!("Order {order_id} confirmed: your food is being prepared.");
        let inserted = conn
            .prepare_cached(
                "INSERT INTO sent (order_id, student_id, message, attempts) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(order_id) DO UPDATE SET attempts = attempts + 1",
            )?
            .execute(params![order_id.as_str(), student_id.as_str(), message],
        )?;
        let attempts: i64 = conn.prepare_cached("SELECT attempts FROM sent WHERE order_id = ?1")?.query_row([order_id.as_str()], |r| r.get(0))?;
        Ok(inserted == 1 && attempts == 1)
    }

    /// Orders confirmed, and how many `InventoryReserved` arrived for them in total.
    pub fn stats(&self) -> Result<NotificationStats, StoreError> {
        let conn = self.0.lock();
        Ok(conn.query_row("SELECT count(*), coalesce(sum(attempts), 0) FROM sent", [], |r| {
            Ok(NotificationStats { notified: r.get(0)?, received: r.get(1)? })
        })?)
    }

    pub fn notified(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.0.lock();
        let mut stmt = conn.prepare("SELECT order_id FROM sent ORDER BY order_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationStats {
    /// Confirmations sent: one per order.
    pub notified: u64,
    /// `InventoryReserved` messages handled, repeats included.
    pub received: u64,
}
