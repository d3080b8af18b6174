//! PostgreSQL as the store several instances of a service share (`serve --store
//! postgres://…`): a pool of connections, and a schema per namespace so that runs sharing a
//! database never see each other's rows (the namespace plays the part it plays for queues and
//! topics).
//!
//! **Isolation.** Every transaction runs at PostgreSQL's default, READ COMMITTED, and takes the
//! locks its invariant needs:
//!
//! - Inventory locks the stock rows of an order with `SELECT … FOR UPDATE`, in sku order (so two
//!   instances never wait on each other in a circle), before it reads the levels: two orders for
//!   the same item are decided one after the other, each against the level the other left.
//! - The processed row's primary key is the dedup. Two instances handed the same order at once
//!   (a redelivery racing the first delivery) both find no row; the second one's `INSERT` waits
//!   for the first transaction, then fails with a unique violation and its whole transaction,
//!   stock change included, rolls back. It is tried again, finds the row and answers as a repeat.
//!
//! SERIALIZABLE would be correct too, but every order touches the same few stock rows: under
//! concurrent instances it aborts where the row locks merely queue.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::StoreError;
use crate::transport::amqp::redacted;

/// The database `scripts/brokers.sh up postgres` creates (role and database `campus`).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://campus:campus@127.0.0.1:5432/campus";

/// Connections the pool of one service process keeps at most.
const POOL_SIZE: usize = 16;

/// How often a transaction that lost a race (a unique violation, a deadlock, a serialization
/// failure) is tried again before the error is the caller's.
pub(crate) const ATTEMPTS: usize = 5;

/// A pool of connections to one database, every connection in the namespace's schema.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    schema: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and creates the
    /// namespace's schema if it is missing. Fails if the database cannot be reached.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Config(format!("{}: {e}", redacted(url))))?;
        let schema = schema_of(namespace);
        config.options(format!("-c search_path={schema}"));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build().map_err(|e| StoreError::Config(e.to_string()))?;
        let pg = Postgres { pool, schema };
        pg.migrate(&format!("CREATE SCHEMA IF NOT EXISTS {}", pg.schema)).await?;
        Ok(pg)
    }

    /// The schema this store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unreachable(e.to_string()))
    }

    /// Runs `ddl` under an advisory lock: instances starting together would otherwise race
    /// each other's `CREATE … IF NOT EXISTS` into a unique violation of the catalog.
    pub(crate) async fn migrate(&self, ddl: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7243001)", &[]).await?;
        tx.batch_execute(ddl).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops the namespace's schema and everything in it (the end of a lab run).
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        self.migrate(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).await
    }
}

/// Whether a failed transaction lost a race that trying again resolves.
pub(crate) fn lost_race(e: &StoreError) -> bool {
    let StoreError::Postgres(e) = e else { return false };
    matches!(e.code(), Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// A schema name from a namespace: lower-case letters, digits and `_`, at most 63 bytes
/// (PostgreSQL's limit), so it needs no quoting anywhere.
fn schema_of(namespace: &str) -> String {
    let mut name: String = namespace.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "ns_");
    }
    name.truncate(63);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_becomes_a_schema_name_that_needs_no_quoting() {
        assert_eq!(schema_of("lab.scale-out.123.1764"), "lab_scale_out_123_1764");
        assert_eq!(schema_of("7up"), "ns_7up");
        assert_eq!(schema_of(&"x".repeat(100)).len(), 63);
    }
}
