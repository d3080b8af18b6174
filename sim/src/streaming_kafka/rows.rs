//! Part C's CSV files, as typed rows: `streaming_kafka_metrics.csv`, `_lag.csv`,
//! `_replay.csv` and `_summary.csv`, and how a run becomes them.

use super::Run;
use crate::reporting::csv::{self, Fixed, Row};
use crate::Mode;
use campus::services::analytics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const METRICS_CSV: &str = "streaming_kafka_metrics.csv";
pub const LAG_CSV: &str = "streaming_kafka_lag.csv";
pub const REPLAY_CSV: &str = "streaming_kafka_replay.csv";
pub const SUMMARY_CSV: &str = "streaming_kafka_summary.csv";
pub const RESTART_CSV: &str = "streaming_kafka_broker_restart.csv";
pub const OUTAGE_CSV: &str = "streaming_kafka_outage.csv";

/// One line of `streaming_kafka_broker_restart.csv`: one second of the broker restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartRow {
    pub t_s: Fixed<3>,
    pub mode: Mode,
    /// 1 while the broker serves, 0 while it is down.
    pub broker_up: u8,
    /// Events the producer had appended (and the broker acknowledged).
    pub produced: u64,
    /// Records each group has not committed yet; empty while the broker could not be asked.
    pub inventory_lag: Option<u64>,
    pub analytics_lag: Option<u64>,
}

/// One line of `streaming_kafka_outage.csv`: one sample (four a second) of Inventory's outage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutageRow {
    pub t_s: Fixed<3>,
    pub mode: Mode,
    /// 1 while Inventory runs, 0 while it is down.
    pub inventory_up: u8,
    /// Events the producer had appended (and the broker acknowledged).
    pub produced: u64,
    /// `order-events` records Inventory's group has not committed yet (the orders waiting for
    /// a decision, and the producer's watermarks among them); Analytics' records likewise.
    pub inventory_lag: Option<u64>,
    pub analytics_lag: Option<u64>,
    /// Orders whose outcome Analytics has counted: `produced − decided` are the orders waiting
    /// for theirs.
    pub decided: Option<u64>,
}

/// One line of `streaming_kafka_metrics.csv`: one minute of event time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub minute: u64,
    pub mode: Mode,
    pub orders: u64,
    pub reserved: u64,
    pub failed: u64,
    pub failure_rate: Fixed<6>,
}

/// One line of `streaming_kafka_lag.csv`: one partition's lag at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LagRow {
    pub t_s: Fixed<2>,
    pub mode: Mode,
    pub topic: String,
    pub partition: u32,
    pub end_offset: u64,
    pub committed_offset: u64,
    pub lag: u64,
}

/// One line of `streaming_kafka_replay.csv`: one metric before and after the replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayRow {
    pub metric: String,
    pub mode: Mode,
    /// Empty when the metric did not exist before.
    pub before: String,
    pub after: String,
    pub equal: bool,
}

/// One line of `streaming_kafka_summary.csv` and of the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub experiment: String,
    pub mode: Mode,
    pub events: usize,
    pub produce_s: Fixed<3>,
    pub events_per_s: Option<Fixed<0>>,
    pub peak_lag: Option<u64>,
    pub catch_up_s: Option<Fixed<2>>,
    pub replay_equal: Option<bool>,
    /// From `inventory-events` read `read_committed` by the lab: orders with a decision, orders
    /// without one, decisions beyond the first; and the records in `dead-letters`.
    pub decided: Option<usize>,
    pub lost: Option<usize>,
    pub duplicates: Option<usize>,
    pub dead_letters: Option<u64>,
    /// `outage`: the median time the producer took to acknowledge one event (accept an order).
    pub append_p50_ms: Option<Fixed<1>>,
    /// `outage`, `broker-restart`: the window as recorded (seconds on the samples' clock), from
    /// the moment Inventory or the broker was taken away to the moment it served again.
    #[serde(default)]
    pub down_from_s: Option<Fixed<3>>,
    #[serde(default)]
    pub down_until_s: Option<Fixed<3>>,
    /// `broker-restart`: from the broker's return to the first sample at which the producer had
    /// appended again (sitting out its retry backoff), as fine as the samples.
    #[serde(default)]
    pub retry_wait_s: Option<Fixed<3>>,
}

macro_rules! rows_have_a_mode {
    ($($row:ty),*) => {$(
        impl Row for $row {
            fn mode(&self) -> Mode {
                self.mode
            }
        }
    )*};
}
rows_have_a_mode!(MetricsRow, LagRow, ReplayRow, SummaryRow, RestartRow, OutageRow);

pub fn summary_row(run: &Run) -> SummaryRow {
    let secs = run.produce.as_secs_f64();
    let (lag, restart) = (run.lag(), run.restart());
    SummaryRow {
        experiment: run.name().to_owned(),
        mode: run.mode,
        events: run.events,
        produce_s: Fixed(secs),
        events_per_s: (secs > 0.0).then(|| Fixed(run.events as f64 / secs)),
        peak_lag: lag.map(|l| l.peak).or(restart.map(|r| r.peak_lag)).or(run.outage().map(|o| o.peak_inventory_lag)),
        catch_up_s: lag
            .and_then(|l| l.catch_up)
            .or(restart.and_then(|r| r.recover))
            .or(run.outage().and_then(|o| o.drained))
            .map(|d| Fixed(d.as_secs_f64())),
        replay_equal: run.replay_equal(),
        decided: run.decisions.as_ref().map(|d| d.decided()),
        lost: run.decisions.as_ref().map(|d| d.lost),
        duplicates: run.decisions.as_ref().map(|d| d.duplicates),
        dead_letters: run.decisions.as_ref().map(|d| d.dead_letters.values().sum()),
        append_p50_ms: run.outage().and_then(|o| o.append_p50).map(|d| Fixed(d.as_secs_f64() * 1e3)),
        down_from_s: restart.or(run.outage()).map(|r| Fixed(r.down_window_ms.0 as f64 / 1e3)),
        down_until_s: restart.or(run.outage()).map(|r| Fixed(r.down_window_ms.1 as f64 / 1e3)),
        retry_wait_s: restart.and_then(|r| r.retry_wait()).map(|(_, by)| Fixed(by.as_secs_f64())),
    }
}

/// The metrics as named values, in a stable order: totals first, then each minute.
pub fn named(metrics: &Metrics) -> Vec<(String, String)> {
    let mut out = vec![
        ("total_orders".to_owned(), metrics.total.orders.to_string()),
        ("total_reserved".to_owned(), metrics.total.reserved.to_string()),
        ("total_failed".to_owned(), metrics.total.failed.to_string()),
        ("failure_rate".to_owned(), format!("{:.6}", metrics.total.failure_rate())),
        ("minutes".to_owned(), metrics.per_minute.len().to_string()),
    ];
    for (minute, m) in &metrics.per_minute {
        out.push((format!("orders[{minute}]"), m.orders.to_string()));
        out.push((format!("failure_rate[{minute}]"), format!("{:.6}", m.failure_rate())));
    }
    out
}

fn replay_rows(run: &Run) -> Vec<ReplayRow> {
    let (Some(before), Some(after)) = (run.before_replay(), &run.metrics) else { return Vec::new() };
    let after: BTreeMap<String, String> = named(after).into_iter().collect();
    let mut rows: Vec<ReplayRow> = named(before)
        .into_iter()
        .map(|(metric, b)| {
            let a = after.get(&metric).cloned().unwrap_or_default();
            ReplayRow { metric, mode: run.mode, equal: a == b, before: b, after: a }
        })
        .collect();
    let before: BTreeMap<String, String> = named(before).into_iter().collect();
    for (metric, a) in &after {
        if !before.contains_key(metric) {
            rows.push(ReplayRow { metric: metric.clone(), mode: run.mode, before: String::new(), after: a.clone(), equal: false });
        }
    }
    rows
}

/// The metrics `streaming_kafka_metrics.csv` shows: the replay's (after the reset), else the
/// last run's that has any. The broker restart's come last only when it ran alone: its
/// per-minute failures may differ where stock runs out (the restart changes the order in
/// which Inventory reads its partitions), and the file is what sim and real are compared on.
pub fn final_metrics(runs: &[Run]) -> Option<&Metrics> {
    runs.iter()
        .find(|r| matches!(r.detail, super::Detail::Replay { .. }))
        .and_then(|r| r.metrics.as_ref())
        .or_else(|| runs.iter().filter(|r| !matches!(r.detail, super::Detail::BrokerRestart(_))).rev().find_map(|r| r.metrics.as_ref()))
        .or_else(|| runs.iter().rev().find_map(|r| r.metrics.as_ref()))
}

pub fn write_csv(out: &Path, mode: Mode, runs: &[Run]) -> anyhow::Result<()> {
    if let Some(metrics) = final_metrics(runs) {
        let rows = metrics
            .per_minute
            .iter()
            .map(|(minute, m)| MetricsRow {
                minute: *minute,
                mode,
                orders: m.orders,
                reserved: m.reserved,
                failed: m.failed,
                failure_rate: Fixed(m.failure_rate()),
            })
            .collect();
        csv::merge(&out.join(METRICS_CSV), mode, rows)?;
    }
    let lag = runs
        .iter()
        .filter_map(Run::lag)
        .flat_map(|l| &l.samples)
        .map(|s| LagRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            topic: s.topic.to_string(),
            partition: s.partition,
            end_offset: s.end_offset,
            committed_offset: s.committed,
            lag: s.lag(),
        })
        .collect();
    csv::merge(&out.join(LAG_CSV), mode, lag)?;
    let restart = runs
        .iter()
        .filter_map(Run::restart)
        .flat_map(|r| &r.samples)
        .map(|s| RestartRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            broker_up: u8::from(s.broker_up),
            produced: s.produced,
            inventory_lag: s.inventory_lag,
            analytics_lag: s.analytics_lag,
        })
        .collect();
    csv::merge(&out.join(RESTART_CSV), mode, restart)?;
    let outage = runs
        .iter()
        .filter_map(Run::outage)
        .flat_map(|r| &r.samples)
        .map(|s| OutageRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            inventory_up: u8::from(s.broker_up),
            produced: s.produced,
            inventory_lag: s.inventory_lag,
            analytics_lag: s.analytics_lag,
            decided: s.decided,
        })
        .collect();
    csv::merge(&out.join(OUTAGE_CSV), mode, outage)?;
    let load = runs.iter().filter_map(Run::outage).flat_map(|r| crate::load::rows::rows("outage", mode, "kafka", &r.orders));
    crate::load::rows::write(out, campus::Model::StreamingKafka, mode, load.collect())?;
    csv::merge(&out.join(REPLAY_CSV), mode, runs.iter().flat_map(replay_rows).collect())?;
    csv::merge(&out.join(SUMMARY_CSV), mode, runs.iter().map(summary_row).collect())
}
