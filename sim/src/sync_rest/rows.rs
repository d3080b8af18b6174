//! Part A's CSV files, as typed rows: `sync_rest_requests.csv` (one row per request) and
//! `sync_rest_summary.csv` (one per experiment), and how a run becomes them.

use super::CaseRun;
use crate::reporting::csv::{self, Fixed, Row};
use crate::Mode;
use campus::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub const REQUESTS_CSV: &str = "sync_rest_requests.csv";
pub const SUMMARY_CSV: &str = "sync_rest_summary.csv";

/// One line of `sync_rest_requests.csv`: one request as the load generator saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    pub experiment: String,
    pub mode: Mode,
    pub protocol: Protocol,
    pub index: usize,
    /// Empty when the reply had none.
    pub order_id: String,
    /// 0: no answer. A gRPC answer as the REST face would give it (`OK` as 201,
    /// `DEADLINE_EXCEEDED` as 504, …: the table of `campus::api::grpc::status`).
    pub status: u16,
    pub latency_ms: Fixed<3>,
}

impl Row for RequestRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One line of `sync_rest_summary.csv` (`D` = 3 decimals), or of the printed table (`D` = 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow<const D: usize> {
    pub experiment: String,
    pub mode: Mode,
    pub protocol: Protocol,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub p50_ms: Fixed<D>,
    pub p95_ms: Fixed<D>,
    pub p99_ms: Fixed<D>,
    pub max_ms: Fixed<D>,
    pub throughput_rps: Fixed<1>,
    /// Every status seen with its count (`503:1000`; 0 means no answer).
    pub statuses: String,
    /// The mean size of an order's request body on the wire, in bytes: JSON over REST, the
    /// protobuf message and its 5-byte frame over gRPC (HTTP headers not counted).
    pub request_bytes: Fixed<1>,
    /// Open-loop experiments: the most requests in flight at once (sent at their intended
    /// start, not yet answered), exactly.
    pub peak_in_flight: Option<usize>,
}

impl<const D: usize> Row for SummaryRow<D> {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One experiment in numbers. `ok` counts 2xx answers; `statuses` is every status seen with
/// its count (`503:1000`; 0 means no answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub experiment: String,
    pub mode: Mode,
    pub protocol: Protocol,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub throughput_rps: f64,
    pub statuses: BTreeMap<u16, usize>,
    pub request_bytes: f64,
    pub peak_in_flight: Option<usize>,
}

impl Summary {
    pub fn of(run: &CaseRun) -> Self {
        let latencies: crate::load::Latencies = run.answers.iter().map(|a| a.latency).collect();
        let mut statuses = BTreeMap::new();
        for a in &run.answers {
            *statuses.entry(a.status).or_insert(0) += 1;
        }
        let ok = run.answers.iter().filter(|a| (200..300).contains(&a.status)).count();
        Summary {
            experiment: run.case.scenario.name().to_owned(),
            mode: run.mode,
            protocol: run.protocol,
            requests: run.answers.len(),
            ok,
            errors: run.answers.len() - ok,
            p50: latencies.at(0.50),
            p95: latencies.at(0.95),
            p99: latencies.at(0.99),
            max: latencies.percentiles().map_or(Duration::ZERO, |p| p.max),
            throughput_rps: run.answers.len() as f64 / run.elapsed.as_secs_f64().max(1e-9),
            statuses,
            request_bytes: run.request_bytes,
            peak_in_flight: run.case.scenario.is_open().then(|| {
                let spans: Vec<(Duration, Duration)> = run.answers.iter().map(|a| (a.intended, a.intended + a.latency)).collect();
                crate::load::timeline::peak_in_flight(&spans)
            }),
        }
    }

    pub fn statuses_text(&self) -> String {
        self.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(" ")
    }

    pub fn row<const D: usize>(&self) -> SummaryRow<D> {
        let f = |d: Duration| Fixed(d.as_secs_f64() * 1000.0);
        SummaryRow {
            experiment: self.experiment.clone(),
            mode: self.mode,
            protocol: self.protocol,
            requests: self.requests,
            ok: self.ok,
            errors: self.errors,
            p50_ms: f(self.p50),
            p95_ms: f(self.p95),
            p99_ms: f(self.p99),
            max_ms: f(self.max),
            throughput_rps: Fixed(self.throughput_rps),
            statuses: self.statuses_text(),
            request_bytes: Fixed(self.request_bytes),
            peak_in_flight: self.peak_in_flight,
        }
    }
}

/// Writes both CSVs (keeping the other mode's rows).
pub fn write_csv(out: &Path, mode: Mode, runs: &[CaseRun], summaries: &[Summary]) -> anyhow::Result<()> {
    let requests = runs
        .iter()
        .flat_map(|run| {
            run.answers.iter().map(move |a| RequestRow {
                experiment: run.case.scenario.name().to_owned(),
                mode,
                protocol: run.protocol,
                index: a.index,
                order_id: a.order_id.clone(),
                status: a.status,
                latency_ms: Fixed(a.latency.as_secs_f64() * 1000.0),
            })
        })
        .collect();
    csv::merge(&out.join(REQUESTS_CSV), mode, requests)?;
    let load = runs
        .iter()
        .filter(|run| run.case.scenario.is_open())
        .flat_map(|run| crate::load::rows::rows(run.case.scenario.name(), mode, run.protocol.name(), &run.timed()));
    crate::load::rows::write(out, campus::Model::SyncRest, mode, load.collect())?;
    csv::merge(&out.join(SUMMARY_CSV), mode, summaries.iter().map(Summary::row::<3>).collect())?;
    csv::merge(&out.join(super::aftermath::LEFT_BEHIND_CSV), mode, runs.iter().filter_map(|r| r.left_behind.clone()).collect())
}
