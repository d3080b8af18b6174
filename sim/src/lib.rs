//! campus-sim: the lab around the `campus` services.
//!
//! - [`world`], [`rng`]: virtual time and the one seed everything random is drawn from.
//! - [`net`]: request/reply in memory ([`net::SimNet`]), calling the services' real routers.
//! - [`fault`]: faults as data ([`fault::FaultPlan`]) and the one place they are applied.
//! - [`workload`]: the orders a run places.
//! - [`sync_rest`]: Part A's experiments, in the simulation or over real processes ([`real`]).
//! - [`checker`]: the invariants every run is checked against.
//! - [`explore`]: property tests over generated fault schedules, with shrinking (`campus-sim explore`).
//! - [`report`]: CSV files and `report.md`; [`plot`]: its SVG figures.
//! - [`serve`], [`cli`]: `campus-sim serve …` and the command line.

pub mod async_rabbitmq;
pub mod checker;
pub mod cli;
pub mod explore;
pub mod fault;
pub mod log;
pub mod net;
pub mod plot;
pub mod queue;
pub mod real;
pub mod report;
pub mod rng;
pub mod serve;
pub mod streaming_kafka;
pub mod sync_rest;
pub mod workload;
pub mod world;

use std::fmt;

/// The seed when `--seed` is not given: runs are reproducible by default.
pub const DEFAULT_SEED: u64 = 2026;

/// Where a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The deterministic simulation: one process, in-memory transports, virtual time.
    Sim,
    /// Real processes, sockets and brokers.
    Real,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sim => "sim",
            Mode::Real => "real",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A progress line on stderr for long phases (an outage, a drain), so a run never looks hung.
pub fn progress(message: &str) {
    eprintln!("  … {message}");
}
