//! Order's store: each order and its `OrderPlaced` in the outbox, written in one transaction;
//! the relay reads the outbox and marks what the broker confirmed.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{open, sqlite_params, Backend, Db, Postgres, StoreError};
use crate::domain::{Envelope, Event, Order, OrderId, OrderPlaced, OrderStatus, StudentId};

/// An order as Order knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub student_id: StudentId,
    pub status: OrderStatus,
    pub placed_at_ms: u64,
}

/// Counts for the time series and the accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStats {
    pub accepted: u64,
    pub published: u64,
    pub reserved: u64,
    pub failed: u64,
    /// `OrderPlaced` published again by Order's reconciler (the service's count since it
    /// started, not the store's; see `AsyncOrderService::run_reconciler`).
    #[serde(default)]
    pub republished: u64,
}

/// One outbox row to publish: an encoded `OrderPlaced`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub body: Vec<u8>,
    /// The `traceparent` of the request that placed the order (`None`: not traced), for the
    /// relay to publish under.
    pub trace: Option<String>,
}

pub struct OrderStore(Backend);

/// The counts of [`OrderStats`] (the same query on both engines).
const STATS: &str = "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox WHERE published = 1),
        (SELECT count(*) FROM orders WHERE status = 'reserved'),
        (SELECT count(*) FROM orders WHERE status = 'failed')";

impl OrderStore {
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS orders (
                 order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, items TEXT NOT NULL,
                 placed_at_ms INTEGER NOT NULL, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
                 body BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0, trace TEXT);",
        )?;
        // A store written before traces were kept has no `trace` column: it gets one.
        let traced: bool = conn.query_row("SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'trace'", [], |r| r.get(0))?;
        if !traced {
            conn.execute_batch("ALTER TABLE outbox ADD COLUMN trace TEXT;")?;
        }
        Ok(OrderStore(Backend::Sqlite(Db::new(conn))))
    }

    /// The same embedded store with no order and no outbox row in it, its sequence back at 1
    /// (the lab's `explore` reuses one).
    pub fn emptied(self) -> Result<Self, StoreError> {
        self.0.empty(&["orders", "outbox"], |_| Ok(()))?;
        Ok(self)
    }

    /// The same store, down whenever `outage` is (the simulation's database outage).
    pub(crate) fn sharing(mut self, outage: &super::Outage) -> Self {
        self.0.share(outage);
        self
    }

    /// The store in `pg`. Several Orders may share it: each relay then publishes what any of
    /// them accepted, and a row two relays read at once is published twice (a duplicate
    /// `OrderPlaced`, which Inventory's dedup absorbs).
    pub async fn open_postgres(pg: Postgres) -> Result<Self, StoreError> {
        pg.migrate(
            "CREATE TABLE IF NOT EXISTS orders (
                 order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, items TEXT NOT NULL,
                 placed_at_ms BIGINT NOT NULL, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (
                 seq BIGSERIAL PRIMARY KEY, order_id TEXT NOT NULL,
                 body BYTEA NOT NULL, published INTEGER NOT NULL DEFAULT 0);
             ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace TEXT;
             CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published = 0;",
        )
        .await?;
        Ok(OrderStore(Backend::Postgres(pg)))
    }

    /// Stores the order and its `OrderPlaced` (with `trace`, the request's `traceparent`) in one
    /// transaction, and returns `None`; or, if an order of that id is stored already (a
    /// client's key used again), stores nothing and returns that order's status.
    pub async fn accept(&self, order: &Order, placed_at_ms: u64, trace: Option<&str>) -> Result<Option<OrderStatus>, StoreError> {
        const INSERT: &str = "INSERT INTO orders (order_id, student_id, items, placed_at_ms, status) VALUES ($1, $2, $3, $4, 'accepted')
             ON CONFLICT (order_id) DO NOTHING";
        const STATUS: &str = "SELECT status FROM orders WHERE order_id = $1";
        let event = Envelope::new(Event::OrderPlaced(OrderPlaced { order: order.clone(), placed_at_ms })).encode();
        let items = serde_json::to_string(&order.items).expect("items serialize");
        let (id, student) = (order.order_id.as_str(), order.student_id.as_str());
        match &self.0 {
            Backend::Sqlite(db) => {
                let tx = db.transaction()?;
                let inserted = tx.prepare_cached(&sqlite_params(INSERT))?.execute(params![id, student, items, placed_at_ms as i64])?;
                if inserted == 0 {
                    let status: String = tx.prepare_cached(&sqlite_params(STATUS))?.query_row([id], |r| r.get(0))?;
                    return status_of(id, &status).map(Some);
                }
                tx.prepare_cached("INSERT INTO outbox (order_id, body, trace) VALUES (?1, ?2, ?3)")?.execute(params![id, event, trace])?;
                tx.commit()?;
            }
            Backend::Postgres(pg) => {
                let mut client = pg.client().await?;
                let tx = client.transaction().await?;
                if tx.execute(INSERT, &[&id, &student, &items, &(placed_at_ms as i64)]).await? == 0 {
                    let status: String = tx.query_one(STATUS, &[&id]).await?.get(0);
                    return status_of(id, &status).map(Some);
                }
                tx.execute("INSERT INTO outbox (order_id, body, trace) VALUES ($1, $2, $3)", &[&id, &event, &trace]).await?;
                tx.commit().await?;
            }
        }
        Ok(None)
    }

    /// Up to 100 outbox rows not yet published, oldest first. (The limit is written in the
    /// statement: SQLite compiles a statement whose `LIMIT` is a parameter again at every run,
    /// which cost the simulation's Part B a tenth of its time, as the relay asks often.)
    pub async fn unpublished(&self) -> Result<Vec<OutboxRow>, StoreError> {
        const UNPUBLISHED: &str = "SELECT seq, body, trace FROM outbox WHERE published = 0 ORDER BY seq LIMIT 100";
        match &self.0 {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                let mut stmt = conn.prepare_cached(UNPUBLISHED)?;
                let rows = stmt.query_map([], |r| Ok(OutboxRow { seq: r.get(0)?, body: r.get(1)?, trace: r.get(2)? }))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Backend::Postgres(pg) => {
                let rows = pg.client().await?.query(UNPUBLISHED, &[]).await?;
                Ok(rows.iter().map(|r| OutboxRow { seq: r.get(0), body: r.get(1), trace: r.get(2) }).collect())
            }
        }
    }

    /// Up to 100 outbox rows already published whose order is still `accepted` and was placed
    /// at or before `placed_by_ms`, oldest first: orders that may have lost their way.
    pub async fn stuck(&self, placed_by_ms: u64) -> Result<Vec<OutboxRow>, StoreError> {
        const STUCK: &str = "SELECT o.seq, o.body, o.trace FROM outbox o JOIN orders r ON r.order_id = o.order_id
             WHERE o.published = 1 AND r.status = 'accepted' AND r.placed_at_ms <= $1 ORDER BY o.seq LIMIT 100";
        match &self.0 {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                let mut stmt = conn.prepare_cached(&sqlite_params(STUCK))?;
                let rows =
                    stmt.query_map([placed_by_ms as i64], |r| Ok(OutboxRow { seq: r.get(0)?, body: r.get(1)?, trace: r.get(2)? }))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Backend::Postgres(pg) => {
                let rows = pg.client().await?.query(STUCK, &[&(placed_by_ms as i64)]).await?;
                Ok(rows.iter().map(|r| OutboxRow { seq: r.get(0), body: r.get(1), trace: r.get(2) }).collect())
            }
        }
    }

    /// Marks the rows published, in one transaction.
    pub async fn mark_published(&self, seqs: &[i64]) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => {
                let tx = db.transaction()?;
                {
                    let mut stmt = tx.prepare_cached("UPDATE outbox SET published = 1 WHERE seq = ?1")?;
                    for seq in seqs {
                        stmt.execute([seq])?;
                    }
                }
                tx.commit()?;
            }
            Backend::Postgres(pg) => {
                pg.client().await?.execute("UPDATE outbox SET published = 1 WHERE seq = ANY($1)", &[&seqs]).await?;
            }
        }
        Ok(())
    }

    /// Records each of a window of Inventory's verdicts as its order's status, in one
    /// transaction; a repeat (redelivery) changes nothing.
    pub async fn record_outcomes(&self, window: &[(&OrderId, OrderStatus)]) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => {
                let tx = db.transaction_of(window.len())?;
                for (order_id, status) in window {
                    tx.prepare_cached("UPDATE orders SET status = ?2 WHERE order_id = ?1 AND status = 'accepted'")?
                        .execute(params![order_id.as_str(), status.as_str()])?;
                }
                tx.commit()?;
            }
            Backend::Postgres(pg) => {
                let mut client = pg.client().await?;
                let tx = client.transaction().await?;
                for (order_id, status) in window {
                    tx.execute(
                        "UPDATE orders SET status = $2 WHERE order_id = $1 AND status = 'accepted'",
                        &[&order_id.as_str(), &status.as_str()],
                    )
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let row: Option<(String, String, String, i64)> = match &self.0 {
            Backend::Sqlite(db) => db
                .lock()?
                .prepare_cached("SELECT order_id, student_id, status, placed_at_ms FROM orders WHERE order_id = ?1")?
                .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?,
            Backend::Postgres(pg) => pg
                .client()
                .await?
                .query_opt("SELECT order_id, student_id, status, placed_at_ms FROM orders WHERE order_id = $1", &[&order_id])
                .await?
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
        };
        row.map(|(id, student, status, at)| {
            Ok(OrderRecord {
                order_id: OrderId::parse(id.clone()).map_err(|e| StoreError::Corrupt { order_id: id.clone(), detail: e.to_string() })?,
                student_id: StudentId::parse(student).map_err(|e| StoreError::Corrupt { order_id: id.clone(), detail: e.to_string() })?,
                status: status_of(&id, &status)?,
                placed_at_ms: at as u64,
            })
        })
        .transpose()
    }

    pub async fn stats(&self) -> Result<OrderStats, StoreError> {
        let [accepted, published, reserved, failed]: [i64; 4] = match &self.0 {
            Backend::Sqlite(db) => db.lock()?.prepare_cached(STATS)?.query_row([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))?,
            Backend::Postgres(pg) => {
                let r = pg.client().await?.query_one(STATS, &[]).await?;
                [r.get(0), r.get(1), r.get(2), r.get(3)]
            }
        };
        Ok(OrderStats {
            accepted: accepted as u64,
            published: published as u64,
            reserved: reserved as u64,
            failed: failed as u64,
            republished: 0,
        })
    }

    /// Every order id with its status.
    pub async fn statuses(&self) -> Result<BTreeMap<String, OrderStatus>, StoreError> {
        let words = self.0.text_pairs("SELECT order_id, status FROM orders").await?;
        words.into_iter().map(|(id, word)| Ok((id.clone(), status_of(&id, &word)?))).collect()
    }
}

/// A stored status word, read back.
fn status_of(order_id: &str, word: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(word).map_err(|e| StoreError::Corrupt { order_id: order_id.into(), detail: e.to_string() })
}
