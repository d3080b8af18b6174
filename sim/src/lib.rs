//! campus-sim: the lab around the `campus` services.
//!
//! Every module imports only modules below it in this list (checked: no module imports one
//! that imports it back):
//!
//! - [`cli`]: the `campus-sim` command line (`campus-sim serve` is the production binary's
//!   entry, `campus::serve`).
//! - [`bench`]: our code next to the transports' floors (`campus-sim bench`).
//! - [`explore`]: property tests over generated fault schedules, with shrinking.
//! - [`cluster`]: the clustered deployment's runs (node loss, scale-out), rows, report section
//!   and figures; the experiments are the parts' own.
//! - [`compare`]: the three models side by side, from the parts' rows (the report's first
//!   section).
//! - [`sync_rest`], [`async_rabbitmq`], [`streaming_kafka`]: each part's experiments, its
//!   deployment (simulated or real), invariants, CSV rows, report section and figures.
//! - [`hosts`]: where a part's services run, the simulated world or real processes, behind
//!   one door (start, kill, stop, faults, a broker or a node taken away, the lab's clients);
//!   real processes, brokers and compose files live there; [`client`]: the lab's HTTP calls.
//! - [`world`]: the simulated world built once from the seed — clock, RNG streams, hosts and
//!   host faults; [`net`], [`queue`], [`log`]: the in-memory transports it hosts.
//! - [`fault`]: faults as data ([`fault::FaultPlan`], queue and log crashes) and the one place
//!   each is applied.
//! - [`report`]: typed CSV rows and `report.md`; [`plot`]: the SVG chart engine.
//! - [`workload`], [`rng`], [`violation`], [`progress`], [`backlog`]: the leaves.

pub mod async_rabbitmq;
pub mod backlog;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod compare;
pub mod drain;
pub mod explore;
pub mod fault;
pub mod hosts;
pub mod log;
pub mod net;
pub mod plot;
pub mod progress;
pub mod queue;
pub mod report;
pub mod rng;
pub mod streaming_kafka;
pub mod sync_rest;
pub mod violation;
pub mod workload;
pub mod world;

use std::fmt;

use serde::{Deserialize, Serialize};

/// The seed when `--seed` is not given: runs are reproducible by default.
pub const DEFAULT_SEED: u64 = 2026;

/// Where a run happened (the `mode` column of every CSV).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The deterministic simulation: one process, in-memory transports, virtual time.
    #[default]
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
