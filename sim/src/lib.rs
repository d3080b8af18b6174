//! campus-sim: the lab around the `campus` services.
//!
//! Every module imports only modules below it in this list (checked: no module imports one
//! that imports it back):
//!
//! - [`cli`]: the `campus-sim` command line and the graded run's pipeline (one path over a
//!   closed set of parts); `campus-sim serve` is the production binary's entry,
//!   `campus::serve`, inside the lab's binary.
//! - `bench`: our code next to the transports' floors (`campus-sim bench`).
//! - [`explore`]: property tests over generated fault schedules, with shrinking, run on the
//!   parts' own deployments.
//! - [`assignment_map`]: each item of the assignment → the report's section, files, test and
//!   command that answer it.
//! - `compare`: the three models side by side (the report's first section); it reads every
//!   part's rows, so it sits above the parts rather than in [`reporting`].
//! - [`cluster`]: the clustered deployment's runs (node loss, scale-out), rows, report section
//!   and figures; the experiments are the parts' own.
//! - [`sync_rest`], [`async_rabbitmq`], [`streaming_kafka`]: each part's deployment (its
//!   topology, written once), experiments, invariants, CSV rows, report section and figures.
//! - [`traces`]: the spans of the traced runs — OTLP files, each order's span rows, the per-hop
//!   table and the waterfalls of the report's traces section.
//! - [`hosts`]: where a part's services run, the simulated world or real processes, behind
//!   one door (start, kill, stop, faults, a broker or a node taken away, the lab's clients);
//!   real processes, brokers and compose files live there; [`client`]: the lab's HTTP calls.
//! - [`load`]: the load every part is measured under: open-loop arrivals, latency from each
//!   request's intended start, HdrHistogram percentiles, accept and completion on one clock.
//! - [`fault`]: the lab's faults — which kind is applied where, the crashing transports of
//!   `explore`, and the trace that records them; Part A's fault layer is the production
//!   crate's (`campus::faults`).
//! - [`simulator`]: the deterministic world built once from the seed — virtual clock, RNG
//!   streams, the hosts it runs and the in-memory network, queue and log.
//! - [`reporting`]: typed CSV rows, `report.md`, number formats, the SVG chart engine, and
//!   what a backlog's samples and a drain show.
//! - `workload`, `violation`, `progress`: the leaves.

pub mod assignment_map;
pub mod async_rabbitmq;
pub(crate) mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub(crate) mod compare;
pub mod explore;
pub mod fault;
pub mod hosts;
pub mod load;
pub(crate) mod progress;
pub mod reporting;
pub mod simulator;
pub mod streaming_kafka;
pub mod sync_rest;
pub mod traces;
pub(crate) mod violation;
pub(crate) mod workload;

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
