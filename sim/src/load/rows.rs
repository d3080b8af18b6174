//! Each model's open-loop orders as typed CSV rows (`<model>_load.csv`, one row per order:
//! when it was meant to arrive, its accept and its completion latency), and the percentiles
//! the report shows, computed from those rows and nothing else.

use std::path::Path;
use std::time::Duration;

use campus::Model;
use serde::{Deserialize, Serialize};

use super::{Percentiles, Timed};
use crate::reporting::csv::{self, Fixed, Row};
use crate::Mode;

/// One order of an open-loop run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadRow {
    pub experiment: String,
    pub mode: Mode,
    /// What carried the order: rest or grpc (Part A), amqp (B), kafka (C).
    pub over: String,
    pub index: usize,
    /// Empty when it was not accepted.
    pub order_id: String,
    /// Its intended start, from the load's first one (ms).
    pub intended_ms: Fixed<3>,
    /// Empty: no answer, or not accepted.
    pub accept_ms: Option<Fixed<3>>,
    /// Empty: it never completed.
    pub completion_ms: Option<Fixed<3>>,
}

impl Row for LoadRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

pub fn file(model: Model) -> String {
    format!("{}_load.csv", model.name().replace('-', "_"))
}

/// The rows of `orders`, one run of `experiment` over `over`.
pub fn rows(experiment: &str, mode: Mode, over: &str, orders: &[Timed]) -> Vec<LoadRow> {
    let t0 = orders.iter().map(|o| o.intended_ms).min().unwrap_or(0);
    let ms = |d: Duration| Fixed(d.as_secs_f64() * 1000.0);
    orders
        .iter()
        .map(|o| LoadRow {
            experiment: experiment.to_owned(),
            mode,
            over: over.to_owned(),
            index: o.index,
            order_id: o.order_id.clone(),
            intended_ms: Fixed((o.intended_ms - t0) as f64),
            accept_ms: o.accept.map(ms),
            completion_ms: o.completion.map(ms),
        })
        .collect()
}

/// Writes `model`'s rows of `mode` (keeping the other mode's).
pub fn write(out: &Path, model: Model, mode: Mode, rows: Vec<LoadRow>) -> anyhow::Result<()> {
    csv::merge(&out.join(file(model)), mode, rows)
}

/// `model`'s rows; none if it has not run.
pub fn read(out: &Path, model: Model) -> anyhow::Result<Vec<LoadRow>> {
    let path = out.join(file(model));
    if !path.exists() {
        return Ok(Vec::new());
    }
    csv::read(&path)
}

/// Accept and completion percentiles of `rows`, to the microsecond the CSV holds: the
/// report's, and a test's recomputation.
pub fn percentiles<'a>(rows: impl IntoIterator<Item = &'a LoadRow>) -> (Option<Percentiles>, Option<Percentiles>) {
    let timed: Vec<Timed> = rows.into_iter().map(LoadRow::timed).collect();
    super::timeline::percentiles(&timed)
}

impl LoadRow {
    /// The order back on its timeline: its intended start (from the load's first, to the
    /// millisecond) and its latencies (to the microsecond the CSV holds).
    pub fn timed(&self) -> Timed {
        let latency = |ms: Option<Fixed<3>>| ms.map(|ms| Duration::from_micros((ms.0 * 1000.0).round() as u64));
        Timed {
            index: self.index,
            order_id: self.order_id.clone(),
            intended_ms: self.intended_ms.0.round() as u64,
            accept: latency(self.accept_ms),
            completion: latency(self.completion_ms),
        }
    }
}
