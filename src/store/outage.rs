//! The simulation's database outage ([`Outage`]): PostgreSQL restarting under the services that
//! share it, as their stores see it. The simulated stores are SQLite in memory, one per
//! service; a deployment's share one `Outage`, and while it lasts every call of theirs fails
//! as a call to a restarting PostgreSQL does — unreachable, transient
//! ([`StoreError::is_transient`]) — and nothing stored is lost. A real store never has one
//! taken down this way: the lab restarts the real PostgreSQL instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::StoreError;

/// Whether the database the stores share is down now (cloned: the same switch).
#[derive(Clone, Default, Debug)]
pub struct Outage(Arc<AtomicBool>);

impl Outage {
    /// The database goes down (`true`) or is back.
    pub fn set_down(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }

    /// Fails while the database is down.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Unreachable("the database is restarting (the simulation's outage)".into()))
        } else {
            Ok(())
        }
    }
}
