//! Notification's store: one row per confirmed order, so a repeat sends nothing twice.

use std::path::Path;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{open, Backend, Db, Postgres, StoreError};
use crate::domain::{OrderId, StudentId};

pub struct NotificationStore(Backend);

const STATS: &str = "SELECT count(*), CAST(coalesce(sum(attempts), 0) AS BIGINT) FROM sent";
const NOTIFIED: &str = "SELECT order_id FROM sent ORDER BY order_id";

impl NotificationStore {
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sent (order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL);",
        )?;
        Ok(NotificationStore(Backend::Sqlite(Db::new(conn))))
    }

    /// The same embedded store with no confirmation in it (the lab's `explore` reuses one).
    pub fn emptied(self) -> Result<Self, StoreError> {
        self.0.empty(&["sent"], |_| Ok(()))?;
        Ok(self)
    }

    /// The same store, down whenever `outage` is (the simulation's database outage).
    pub(crate) fn sharing(mut self, outage: &super::Outage) -> Self {
        self.0.share(outage);
        self
    }

    /// The store in `pg`, shared by every Notification given the same database and namespace.
    pub async fn open_postgres(pg: Postgres) -> Result<Self, StoreError> {
        pg.migrate("CREATE TABLE IF NOT EXISTS sent (order_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, message TEXT NOT NULL, attempts BIGINT NOT NULL);")
            .await?;
        Ok(NotificationStore(Backend::Postgres(pg)))
    }

    /// Records the confirmation; false (and nothing sent) if this order was confirmed before.
    pub async fn send(&self, order_id: &OrderId, student_id: &StudentId) -> Result<bool, StoreError> {
        let message = format!("Order {order_id} confirmed: your food is being prepared.");
        let attempts: i64 = match &self.0 {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                conn.prepare_cached(
                    "INSERT INTO sent (order_id, student_id, message, attempts) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT(order_id) DO UPDATE SET attempts = attempts + 1",
                )?
                .execute(params![order_id.as_str(), student_id.as_str(), message])?;
                let attempts =
                    conn.prepare_cached("SELECT attempts FROM sent WHERE order_id = ?1")?.query_row([order_id.as_str()], |r| r.get(0))?;
                attempts
            }
            // One statement: the row's lock makes concurrent instances count one after the other.
            Backend::Postgres(pg) => pg
                .client()
                .await?
                .query_one(
                    "INSERT INTO sent (order_id, student_id, message, attempts) VALUES ($1, $2, $3, 1)
                     ON CONFLICT (order_id) DO UPDATE SET attempts = sent.attempts + 1 RETURNING attempts",
                    &[&order_id.as_str(), &student_id.as_str(), &message],
                )
                .await?
                .get(0),
        };
        Ok(attempts == 1)
    }

    /// Orders confirmed, and how many `InventoryReserved` arrived for them in total.
    pub async fn stats(&self) -> Result<NotificationStats, StoreError> {
        let (notified, received): (i64, i64) = match &self.0 {
            Backend::Sqlite(db) => db.lock()?.prepare_cached(STATS)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?,
            Backend::Postgres(pg) => {
                let row = pg.client().await?.query_one(STATS, &[]).await?;
                (row.get(0), row.get(1))
            }
        };
        Ok(NotificationStats { notified: notified as u64, received: received as u64 })
    }

    pub async fn notified(&self) -> Result<Vec<String>, StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                let mut stmt = conn.prepare_cached(NOTIFIED)?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Backend::Postgres(pg) => Ok(pg.client().await?.query(NOTIFIED, &[]).await?.iter().map(|r| r.get(0)).collect()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationStats {
    /// Confirmations sent: one per order.
    pub notified: u64,
    /// `InventoryReserved` messages handled, repeats included.
    pub received: u64,
}
