//! What a real run is given and keeps: where and how fast it plays ([`RealTarget`]), and its
//! own lines ([`Notes`]). Below the real harness of each model and the runner of both.

use std::path::PathBuf;

use crate::hosts::Place;

/// A real run's own lines (its trace), stamped with the wall milliseconds since it began.
pub(super) struct Notes {
    t0: tokio::time::Instant,
    lines: std::cell::RefCell<Vec<String>>,
}

impl Notes {
    pub(super) fn new() -> Self {
        Notes { t0: tokio::time::Instant::now(), lines: Default::default() }
    }

    /// When the run began.
    pub(super) fn t0(&self) -> tokio::time::Instant {
        self.t0
    }

    pub(super) fn note(&self, line: String) {
        let t = self.t0.elapsed().as_millis();
        self.lines.borrow_mut().push(format!("{t:>7} ms  {line}"));
    }

    pub(super) fn take(&self) -> Vec<String> {
        self.lines.take()
    }
}

/// Where and how fast the real runs go.
#[derive(Debug, Clone)]
pub struct RealTarget {
    /// The `campus-sim` executable whose `serve` runs each service.
    pub exe: PathBuf,
    /// The broker (or the cluster and its PostgreSQL).
    pub place: Place,
    /// Whether `place` is the 3-node cluster (node losses played, whole-broker outages not).
    pub cluster: bool,
    /// Wall milliseconds per virtual millisecond of the schedule.
    pub scale: u32,
}
