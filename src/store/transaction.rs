//! [`Transaction`]: one `BEGIN IMMEDIATE … COMMIT` on an embedded store's connection, begun
//! and ended by cached statements.
//!
//! rusqlite's own transaction parses `BEGIN IMMEDIATE` and `COMMIT` again each time
//! (`execute_batch`: 4 % of a simulated Part B run's profile, where every accepted order,
//! every reservation and every relay pass is a transaction on an in-memory database). The
//! statements here are compiled once per connection, like the stores' other statements.

use std::ops::Deref;
use std::sync::MutexGuard;

use rusqlite::Connection;

use super::StoreError;

/// An open transaction holding its connection: [`commit`](Transaction::commit) ends it;
/// dropped uncommitted (an early return, an error), it is rolled back.
pub(crate) struct Transaction<'a> {
    conn: MutexGuard<'a, Connection>,
    /// Whether `BEGIN` was sent (see [`Transaction::of`]).
    begun: bool,
}

impl<'a> Transaction<'a> {
    /// Begins a transaction that takes the write lock at once (`IMMEDIATE`).
    pub(crate) fn begin(conn: MutexGuard<'a, Connection>) -> Result<Self, StoreError> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Transaction { conn, begun: true })
    }

    /// A transaction around `writes` statements that change the database: begun only when
    /// there are several to keep together, for one commits on its own (SQLite's autocommit) and
    /// a window of one message — every window at prefetch 1 — then costs no more than before
    /// windows existed.
    pub(crate) fn of(conn: MutexGuard<'a, Connection>, writes: usize) -> Result<Self, StoreError> {
        if writes > 1 {
            Self::begin(conn)
        } else {
            Ok(Transaction { conn, begun: false })
        }
    }

    pub(crate) fn commit(self) -> Result<(), StoreError> {
        if self.begun {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
        }
        Ok(())
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // Committed, the connection is back in autocommit mode; a COMMIT that failed may have
        // ended the transaction already (SQLite then rolls back by itself). Only a transaction
        // still open is rolled back.
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a store transaction failed");
            }
        }
    }
}
