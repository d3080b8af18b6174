//! Inventory's store: stock per sku and the processed order ids, the stock change and the
//! processed row committed in one transaction (the dedup that makes a redelivery harmless).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{open, postgres, Backend, Db, Postgres, StoreError};
use crate::domain::{Envelope, Event, OrderPlaced, OrderStatus, Sku};

/// What Inventory did with one `OrderPlaced`: the event to publish, and whether this was the
/// first time (stock changed) or a repeat (the stored event, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
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
    /// A scaled-out Part C instance: the partitions it holds a shard of now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<u32>,
}

pub struct InventoryStore {
    backend: Backend,
    /// Only the lab's `--break dedup` turns this off, to show the checker catching it.
    dedup: bool,
}

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL, initial INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS processed (
         order_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, units INTEGER NOT NULL, event BLOB NOT NULL,
         repeats INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE IF NOT EXISTS applications (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, units INTEGER NOT NULL);";

const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units BIGINT NOT NULL, initial BIGINT NOT NULL);
     CREATE TABLE IF NOT EXISTS processed (
         order_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, units BIGINT NOT NULL, event BYTEA NOT NULL,
         repeats BIGINT NOT NULL DEFAULT 0);
     CREATE TABLE IF NOT EXISTS applications (id BIGSERIAL PRIMARY KEY, order_id TEXT NOT NULL, units BIGINT NOT NULL);";

/// The counts of [`InventoryStats`], in the order of its fields (the same query on both engines).
const STATS: &str = "SELECT (SELECT count(*) FROM processed WHERE outcome = 'reserved'),
        (SELECT count(*) FROM processed WHERE outcome = 'failed'),
        (SELECT count(*) FROM applications),
        (SELECT count(*) FROM (SELECT order_id FROM applications GROUP BY order_id HAVING count(*) > 1) AS doubled),
        CAST((SELECT coalesce(sum(repeats), 0) FROM processed) AS BIGINT),
        CAST((SELECT coalesce(sum(initial - units), 0) FROM stock) AS BIGINT),
        CAST((SELECT coalesce(sum(units), 0) FROM processed WHERE outcome = 'reserved') AS BIGINT)";

impl InventoryStore {
    /// Opens the store; a new one starts with `per_sku` units of every menu item (an existing
    /// file keeps its levels: a restarted Inventory does not restock).
    pub fn open(path: Option<&Path>, per_sku: u32) -> Result<Self, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        for sku in Sku::all() {
            conn.execute("INSERT OR IGNORE INTO stock (sku, units, initial) VALUES (?1, ?2, ?2)", params![sku.as_str(), per_sku])?;
        }
        Ok(InventoryStore { backend: Backend::Sqlite(Db::new(conn)), dedup: true })
    }

    /// The store in `pg`, shared by every Inventory given the same database and namespace: the
    /// first one to start stocks `per_sku` units of every item, the others find the levels.
    pub async fn open_postgres(pg: Postgres, per_sku: u32) -> Result<Self, StoreError> {
        let mut ddl = POSTGRES_SCHEMA.to_owned();
        for sku in Sku::all() {
            ddl.push_str(&format!(
                "\nINSERT INTO stock (sku, units, initial) VALUES ('{}', {per_sku}, {per_sku}) ON CONFLICT DO NOTHING;",
                sku.as_str()
            ));
        }
        pg.migrate(&ddl).await?;
        Ok(InventoryStore { backend: Backend::Postgres(pg), dedup: true })
    }

    /// The same embedded store emptied and stocked anew with `per_sku` units of every item,
    /// idempotency on: what [`InventoryStore::open`]`(None, per_sku)` gives, without creating
    /// the database again (the lab's `explore` reuses one per thread).
    pub fn restocked(mut self, per_sku: u32) -> Result<Self, StoreError> {
        self.backend.empty(&["stock", "processed", "applications"], |conn| {
            for sku in Sku::all() {
                conn.prepare_cached("INSERT INTO stock (sku, units, initial) VALUES (?1, ?2, ?2)")?
                    .execute(params![sku.as_str(), per_sku])?;
            }
            Ok(())
        })?;
        self.dedup = true;
        Ok(self)
    }

    /// The same store, down whenever `outage` is (the simulation's database outage).
    pub(crate) fn sharing(mut self, outage: &super::Outage) -> Self {
        self.backend.share(outage);
        self
    }

    /// Turns idempotency off (lab only: `campus-sim explore --break dedup`).
    pub fn without_dedup(mut self) -> Self {
        self.dedup = false;
        self
    }

    /// Reserves each of a window of orders, in order, or re-emits what was decided the first
    /// time — all in one transaction: the window's stock changes and processed-order rows
    /// commit together or not at all (a crash before the commit leaves none of them, and the
    /// window's deliveries come back). One outcome per order, in the window's order; an order
    /// that appears twice in one window is decided once and re-emitted the second time.
    pub async fn handle_all(&self, window: &[&OrderPlaced]) -> Result<Vec<Handled>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let tx = db.transaction()?;
                let handled = window.iter().map(|placed| self.handle_sqlite(&tx, placed)).collect::<Result<Vec<_>, _>>()?;
                tx.commit()?;
                Ok(handled)
            }
            Backend::Postgres(pg) => {
                let mut attempt = 1;
                loop {
                    match self.handle_postgres(pg, window).await {
                        Err(e) if postgres::lost_race(&e) && attempt < postgres::ATTEMPTS => attempt += 1,
                        result => return result,
                    }
                }
            }
        }
    }

    fn handle_sqlite(&self, tx: &rusqlite::Connection, placed: &OrderPlaced) -> Result<Handled, StoreError> {
        let order = &placed.order;
        let id = order.order_id.as_str();
        if self.dedup {
            let stored: Option<Vec<u8>> =
                tx.prepare_cached("SELECT event FROM processed WHERE order_id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
            if let Some(bytes) = stored {
                tx.prepare_cached("UPDATE processed SET repeats = repeats + 1 WHERE order_id = ?1")?.execute([id])?;
                return repeat(id, &bytes);
            }
        }
        let mut levels = BTreeMap::new();
        for line in order.items.as_slice() {
            let units: i64 = tx.prepare_cached("SELECT units FROM stock WHERE sku = ?1")?.query_row([line.sku.as_str()], |r| r.get(0))?;
            levels.insert(line.sku.clone(), units as u32);
        }
        let event = decide(placed, &levels);
        if matches!(event, Event::InventoryReserved(_)) {
            for line in order.items.as_slice() {
                tx.prepare_cached("UPDATE stock SET units = units - ?2 WHERE sku = ?1")?
                    .execute(params![line.sku.as_str(), line.qty.get()])?;
            }
            tx.prepare_cached("INSERT INTO applications (order_id, units) VALUES (?1, ?2)")?.execute(params![id, order.items.units()])?;
        }
        tx.prepare_cached("INSERT OR REPLACE INTO processed (order_id, outcome, units, event) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, outcome_of(&event), order.items.units(), Envelope::new(event.clone()).encode()])?;
        Ok(Handled { event, first: true })
    }

    /// One attempt at a window, in one READ COMMITTED transaction (see [`postgres`] for why
    /// that holds). The stock rows of every item in the window are locked first, in one
    /// statement and in item order, so that two instances deciding windows at once wait for
    /// each other instead of deadlocking.
    async fn handle_postgres(&self, pg: &Postgres, window: &[&OrderPlaced]) -> Result<Vec<Handled>, StoreError> {
        let mut client = pg.client().await?;
        let tx = client.transaction().await?;
        let skus: Vec<&str> = window
            .iter()
            .flat_map(|placed| placed.order.items.as_slice().iter().map(|line| line.sku.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        tx.query("SELECT sku FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE", &[&skus]).await?;
        let mut handled = Vec::with_capacity(window.len());
        for placed in window {
            handled.push(self.handle_locked(&tx, placed).await?);
        }
        tx.commit().await?;
        Ok(handled)
    }

    /// One order of a window, its stock rows locked by the window's transaction.
    async fn handle_locked(&self, tx: &tokio_postgres::Transaction<'_>, placed: &OrderPlaced) -> Result<Handled, StoreError> {
        let order = &placed.order;
        let id = order.order_id.as_str();
        if self.dedup {
            if let Some(row) = tx.query_opt("SELECT event FROM processed WHERE order_id = $1", &[&id]).await? {
                tx.execute("UPDATE processed SET repeats = repeats + 1 WHERE order_id = $1", &[&id]).await?;
                return repeat(id, row.get(0));
            }
        }
        let skus: Vec<&str> = order.items.as_slice().iter().map(|line| line.sku.as_str()).collect();
        let rows = tx.query("SELECT sku, units FROM stock WHERE sku = ANY($1)", &[&skus]).await?;
        let by_name: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let levels: BTreeMap<Sku, u32> = order
            .items
            .as_slice()
            .iter()
            .map(|line| (line.sku.clone(), by_name.get(line.sku.as_str()).copied().unwrap_or(0) as u32))
            .collect();
        let event = decide(placed, &levels);
        if matches!(event, Event::InventoryReserved(_)) {
            for line in order.items.as_slice() {
                tx.execute("UPDATE stock SET units = units - $2 WHERE sku = $1", &[&line.sku.as_str(), &i64::from(line.qty.get())]).await?;
            }
            tx.execute("INSERT INTO applications (order_id, units) VALUES ($1, $2)", &[&id, &(order.items.units() as i64)]).await?;
        }
        let insert = if self.dedup {
            "INSERT INTO processed (order_id, outcome, units, event) VALUES ($1, $2, $3, $4)"
        } else {
            "INSERT INTO processed (order_id, outcome, units, event) VALUES ($1, $2, $3, $4)
             ON CONFLICT (order_id) DO UPDATE SET outcome = excluded.outcome, units = excluded.units, event = excluded.event"
        };
        tx.execute(insert, &[&id, &outcome_of(&event), &(order.items.units() as i64), &Envelope::new(event.clone()).encode()]).await?;
        Ok(Handled { event, first: true })
    }

    pub async fn stats(&self) -> Result<InventoryStats, StoreError> {
        let (counts, stock): ([i64; 7], BTreeMap<String, u64>) = match &self.backend {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                let counts = conn
                    .prepare_cached(STATS)?
                    .query_row([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?]))?;
                let mut stmt = conn.prepare_cached("SELECT sku, units FROM stock ORDER BY sku")?;
                let stock = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
                (counts, stock)
            }
            Backend::Postgres(pg) => {
                let client = pg.client().await?;
                let r = client.query_one(STATS, &[]).await?;
                let counts = [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)];
                let rows = client.query("SELECT sku, units FROM stock ORDER BY sku", &[]).await?;
                (counts, rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
            }
        };
        let [reserved, failed, stock_applications, double_reservations, repeats, units_taken, units_of_reserved_orders] =
            counts.map(|n| n as u64);
        Ok(InventoryStats {
            reserved,
            failed,
            stock_applications,
            double_reservations,
            repeats,
            units_taken,
            units_of_reserved_orders,
            stock,
            partitions: Vec::new(),
        })
    }

    /// Every processed order id with its outcome (`reserved` / `failed`).
    pub async fn outcomes(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.backend.text_pairs("SELECT order_id, outcome FROM processed").await
    }
}

/// The outcome of `placed` against the stock `levels` of its items, as its event.
fn decide(placed: &OrderPlaced, levels: &BTreeMap<Sku, u32>) -> Event {
    placed.outcome_event(&placed.order.items.reserve_against(|sku| levels[sku]))
}

/// A repeat: the event stored the first time.
fn repeat(order_id: &str, stored: &[u8]) -> Result<Handled, StoreError> {
    let event = Envelope::decode(stored).map_err(|e| StoreError::Corrupt { order_id: order_id.into(), detail: e.to_string() })?;
    Ok(Handled { event, first: false })
}

/// The outcome column: the status the event gives its order.
fn outcome_of(event: &Event) -> &'static str {
    OrderStatus::of(event).unwrap_or(OrderStatus::Failed).as_str()
}
