//! Who may stop the one real RabbitMQ and the one real Kafka while the tests of this binary run
//! side by side. A test that only uses a broker holds it shared; one that stops, kills or
//! freezes it (a graded run's broker restart, a schedule's outage, a hang) holds it alone, so
//! no other test meets the fault it injects. The cluster's nodes and PostgreSQL have a single
//! user here (`cli::a_real_cluster_run_…`) and no guard.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A single real broker of `scripts/brokers.sh up`.
pub struct Broker(RwLock<()>);

pub static RABBITMQ: Broker = Broker(RwLock::new(()));
pub static KAFKA: Broker = Broker(RwLock::new(()));

impl Broker {
    /// Held while a test uses the broker without stopping it.
    pub fn shared(&'static self) -> RwLockReadGuard<'static, ()> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held while a test may stop, kill or freeze the broker.
    pub fn alone(&'static self) -> RwLockWriteGuard<'static, ()> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}
