//! The services' local stores for the messaging model (Part B): SQLite, a file in real mode,
//! `:memory:` in the simulation — the same SQL either way. Each state change that must not be
//! lost or doubled happens in one transaction with the record that makes it idempotent:
//!
//! - Order: the order row **and** its outbox row (the `OrderPlaced` to publish) commit
//!   together, so no order is accepted and never published, and nothing is published that was
//!   not stored. A relay publishes outbox rows with confirms and marks them published after.
//! - Inventory: the stock change **and** the processed-order row (order id → outcome and the
//!   event it emitted) commit together. The key is the order id; it lives in Inventory's own
//!   store. A redelivered `OrderPlaced` finds the row and re-emits the stored event without
//!   touching stock — whether the first attempt crashed before the publish, between publish and
//!   ack, or the message was simply duplicated.
//! - Notification: one row per order id; a repeat is ignored.
//!
//! Two engines, one set of guarantees ([`Backend`]): SQLite, a file private to one process (the
//! embedded default), or PostgreSQL ([`postgres`]), shared by several instances of a service
//! (`serve --store postgres://…`), where the same transactions hold under concurrent instances.
//!
//! One file per store: [`order`], [`inventory`], [`notification`]; this file holds what they
//! share (opening the database, the error type).

mod inventory;
mod notification;
mod order;
mod outage;
pub mod postgres;
mod storage;
mod transaction;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use inventory::{Handled, InventoryStats, InventoryStore};
pub use notification::{NotificationStats, NotificationStore};
pub use order::{OrderRecord, OrderStats, OrderStore, OutboxRow};
pub use outage::Outage;
pub use postgres::Postgres;
pub use storage::{MemoryStores, Spare, Storage};
use transaction::Transaction;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store (postgres): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("store unreachable: {0}")]
    Unreachable(String),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("store holds an undecodable event for {order_id}: {detail}")]
    Corrupt { order_id: String, detail: String },
}

impl StoreError {
    /// Whether the store may answer if asked again later (the database is away), as opposed
    /// to a fault that waiting cannot mend.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            // The connection closed under the call, or the server shutting down or starting
            // (a restart: `57P01` admin_shutdown, `57P02` crash_shutdown, `57P03`
            // cannot_connect_now).
            StoreError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_some_and(|c| matches!(c.code(), "57P01" | "57P02" | "57P03"))
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }
}

/// How many compiled statements a connection keeps: more than any store runs.
const STATEMENTS: usize = 64;

/// Opens (creating if needed) the SQLite database at `path`, or an in-memory one.
pub(crate) fn open(path: Option<&Path>) -> Result<Connection, StoreError> {
    let conn = match path {
        Some(path) => {
            let conn = Connection::open(path)?;
            // WAL + NORMAL: when `commit` returns the transaction is in the WAL file (the OS
            // holds it), so it survives the process being killed — SIGKILL, a panic, the
            // outage experiment — and the database is never corrupted; only a crash of the
            // machine itself (power loss) can roll back the last commits. FULL would fsync
            // every commit: `campus-sim bench` measured it at about 60 % of NORMAL's orders/s
            // on this lab's machine (four commits per order), for a failure mode the lab does
            // not exercise. A deployment that must survive power loss sets FULL.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn
        }
        None => {
            let conn = Connection::open_in_memory()?;
            // Small pages: an in-memory database's rollback journal copies every page a
            // transaction changes, and these stores' rows are short (5 % fewer instructions in
            // a simulated Part B run than with the default 4 KiB).
            conn.pragma_update(None, "page_size", 1024)?;
            conn
        }
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every statement a store runs stays compiled: rusqlite keeps 16 by default, fewer than
    // Inventory's store runs (its reservation, its accounts, emptying it for reuse), and one
    // evicted is compiled again at its next use — 5 % of a simulated Part B run.
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

/// The engine behind a store.
pub(crate) enum Backend {
    Sqlite(Db),
    Postgres(Postgres),
}

impl Backend {
    /// An embedded database made subject to `outage` (the simulation's); PostgreSQL has its
    /// own.
    pub(crate) fn share(&mut self, outage: &Outage) {
        if let Backend::Sqlite(db) = self {
            db.outage = outage.clone();
        }
    }

    /// The rows of `sql`, a query of two text columns without parameters, as a map.
    pub(crate) async fn text_pairs(&self, sql: &str) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        match self {
            Backend::Sqlite(db) => {
                let conn = db.lock()?;
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Backend::Postgres(pg) => Ok(pg.client().await?.query(sql, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect()),
        }
    }

    /// Deletes every row of `tables` and their AUTOINCREMENT counters, then runs `refill` (the
    /// rows a new store starts with), all in one transaction: the store as new, with its
    /// compiled statements kept. Only an embedded store is emptied (the simulation reuses one
    /// per thread across `explore`'s schedules, where opening three databases and creating
    /// their tables took a third of each run); a shared PostgreSQL store is refused.
    pub(crate) fn empty(&self, tables: &[&str], refill: impl FnOnce(&Connection) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let Backend::Sqlite(db) = self else {
            return Err(StoreError::Config("only an embedded SQLite store is emptied for reuse".into()));
        };
        let tx = db.transaction()?;
        for table in tables {
            tx.prepare_cached(&format!("DELETE FROM {table}"))?.execute([])?;
        }
        let sequences: bool =
            tx.prepare_cached("SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'")?.query_row([], |r| r.get(0))?;
        if sequences {
            tx.prepare_cached("DELETE FROM sqlite_sequence")?.execute([])?;
        }
        refill(&tx)?;
        tx.commit()
    }
}

/// An embedded SQLite database, and the simulated outage it is subject to (none unless the
/// lab's world shares one with it: [`Backend::share`]).
pub(crate) struct Db {
    conn: Mutex<Connection>,
    outage: Outage,
}

impl Db {
    pub(crate) fn new(conn: Connection) -> Self {
        Db { conn: Mutex::new(conn), outage: Outage::default() }
    }

    /// The connection, unless the database is down.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.outage.check()?;
        Ok(self.conn.lock().expect("store lock"))
    }

    /// An `IMMEDIATE` transaction on the connection, unless the database is down.
    pub(crate) fn transaction(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::begin(self.lock()?)
    }

    /// A transaction around `writes` changes, or none when there is only one
    /// ([`Transaction::of`]).
    pub(crate) fn transaction_of(&self, writes: usize) -> Result<Transaction<'_>, StoreError> {
        Transaction::of(self.lock()?, writes)
    }
}

/// A statement written with PostgreSQL's `$1, $2, …` parameters, for SQLite (`?1, ?2, …`): one
/// text for both engines.
fn sqlite_params(sql: &str) -> String {
    sql.replace('$', "?")
}
