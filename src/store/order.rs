//! Order's store: each order and its `OrderPlaced` in the outbox, written in one transaction;
//! the relay reads the outbox and marks what the broker confirmed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{open, Db, StoreError};
use crate::domain::{Envelope, Event, Order, OrderId, OrderPlaced, StudentId};
use crate::transport::queue::Route;

/// An order as Order knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub student_id: StudentId,
    /// `accepted` (stored, maybe not yet published), then `reserved` or `failed`.
    pub status: String,
    pub placed_at_ms: u64,
}

/// Counts for the time series and the accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStats {
    pub accepted: u64,
    pub published: u64,
    pub reserved: u64,
    pub failed: u64,
}

/// One outbox row to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub route: Route,
    pub body: Vec<u8>,
}

pub struct OrderStore(Db);

impl OrderStore {
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS orders (
                 order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, items TEXT NOT NULL,
                 placed_at_ms INTEGER NOT NULL, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
                 body BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0);",
        )?;
        Ok(OrderStore(Db(Mutex::new(conn))))
    }

    /// Stores the order and its `OrderPlaced` in one transaction.
    pub fn accept(&self, order: &Order, placed_at_ms: u64) -> Result<(), StoreError> {
        let event = Envelope::new(Event::OrderPlaced(OrderPlaced { order: order.clone(), placed_at_ms })).encode();
        let mut conn = self.0.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO orders (order_id, student_id, items, placed_at_ms, status) VALUES (?1, ?2, ?3, ?4, 'accepted')")?.execute(
            params![
                order.order_id.as_str(),
                order.student_id.as_str(),
                serde_json::to_string(&order.items).expect("items serialize"),
                placed_at_ms as i64
            ],
        )?;
        tx.prepare_cached("INSERT INTO outbox (order_id, body) VALUES (?1, ?2)")?.execute(params![order.order_id.as_str(), event])?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` outbox rows not yet published, oldest first.
    pub fn unpublished(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.0.lock();
        let mut stmt = conn.prepare_cached("SELECT seq, body FROM outbox WHERE published = 0 ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| Ok(OutboxRow { seq: r.get(0)?, route: Route::OrderPlaced, body: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks the rows published, in one transaction.
    pub fn mark_published(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.0.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached("UPDATE outbox SET published = 1 WHERE seq = ?1")?;
            for seq in seqs {
                stmt.execute([seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records Inventory's verdict; a repeat (redelivery) changes nothing.
    pub fn record_outcome(&self, order_id: &OrderId, status: &str) -> Result<(), StoreError> {
        self.0
            .lock()
            .prepare_cached("UPDATE orders SET status = ?2 WHERE order_id = ?1 AND status = 'accepted'")?
            .execute(params![order_id.as_str(), status])?;
        Ok(())
    }

    pub fn get(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let conn = self.0.lock();
        let row = conn
            .query_row(
                "SELECT order_id, student_id, status, placed_at_ms FROM orders WHERE order_id = ?1",
                [order_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?)),
            )
            .optional()?;
        row.map(|(id, student, status, at)| {
            Ok(OrderRecord {
                order_id: OrderId::parse(id.clone()).map_err(|e| StoreError::Corrupt { order_id: id.clone(), detail: e.to_string() })?,
                student_id: StudentId::parse(student).map_err(|e| StoreError::Corrupt { order_id: id, detail: e.to_string() })?,
                status,
                placed_at_ms: at as u64,
            })
        })
        .transpose()
    }

    pub fn stats(&self) -> Result<OrderStats, StoreError> {
        let conn = self.0.lock();
        Ok(conn.query_row(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox WHERE published = 1),
                    (SELECT count(*) FROM orders WHERE status = 'reserved'),
                    (SELECT count(*) FROM orders WHERE status = 'failed')",
            [],
            |r| Ok(OrderStats { accepted: r.get(0)?, published: r.get(1)?, reserved: r.get(2)?, failed: r.get(3)? }),
        )?)
    }

    /// Every order id with its status.
    pub fn statuses(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.0.lock();
        let mut stmt = conn.prepare("SELECT order_id, status FROM orders")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
