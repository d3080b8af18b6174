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

    /// Records each confirmation of a window, in one transaction; for each, false (and nothing
    /// sent) if its order was confirmed before (earlier in the window included).
    pub async fn send_all(&self, window: &[(&OrderId, &StudentId)]) -> Result<Vec<bool>, StoreError> {
        let message = |order_id: &OrderId| format!("Order {order_id} confirmed: your food is being prepared.");
        let mut attempts: Vec<i64> = Vec::with_capacity(window.len());
        match &self.0 {
            Backend::Sqlite(db) => {
                let tx = db.transaction_of(window.len())?;
                for (order_id, student_id) in window {
                    tx.prepare_cached(
                        "INSERT INTO sent (order_id, student_id, message, attempts) VALUES (?1, ?2, ?3, 1)
                         ON CONFLICT(order_id) DO UPDATE SET attempts = attempts + 1",
                    )?
                    .execute(params![order_id.as_str(), student_id.as_str(), message(order_id)])?;
                    attempts.push(
                        tx.prepare_cached("SELECT attempts FROM sent WHERE order_id = ?1")?.query_row([order_id.as_str()], |r| r.get(0))?,
                    );
                }
                tx.commit()?;
            }
            // One statement per confirmation: the row's lock makes concurrent instances count
            // one after the other.
            Backend::Postgres(pg) => {
                let mut client = pg.client().await?;
                let tx = client.transaction().await?;
                for (order_id, student_id) in window {
                    let row = tx
                        .query_one(
                            "INSERT INTO sent (order_id, student_id, message, attempts) VALUES ($1, $2, $3, 1)
                             ON CONFLICT (order_id) DO UPDATE SET attempts = sent.attempts + 1 RETURNING attempts",
                            &[&order_id.as_str(), &student_id.as_str(), &message(order_id)],
                        )
                        .await?;
                    attempts.push(row.get(0));
                }
                tx.commit().await?;
            }
        }
        Ok(attempts.into_iter().map(|n| n == 1).collect())
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
