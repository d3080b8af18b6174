//! Part C's outputs: `streaming_kafka_metrics.csv`, `_lag.csv`, `_replay.csv`, `_summary.csv`,
//! the table and the report section, its reasoning computed from the run.

use std::collections::BTreeMap;
use std::path::Path;

use campus::services::analytics::Metrics;

use serde::{Deserialize, Serialize};

use super::{Config, Detail, Run};
use crate::report::csv::{self, Fixed, Row};
use crate::report::{markdown_table, text_table, update_report};
use crate::violation::Violation;
use crate::Mode;

pub const METRICS_CSV: &str = "streaming_kafka_metrics.csv";
pub const LAG_CSV: &str = "streaming_kafka_lag.csv";
pub const REPLAY_CSV: &str = "streaming_kafka_replay.csv";
pub const SUMMARY_CSV: &str = "streaming_kafka_summary.csv";

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
rows_have_a_mode!(MetricsRow, LagRow, ReplayRow, SummaryRow);

fn summary_row(run: &Run) -> SummaryRow {
    let secs = run.produce.as_secs_f64();
    let lag = run.lag();
    SummaryRow {
        experiment: run.name().to_owned(),
        mode: run.mode,
        events: run.events,
        produce_s: Fixed(secs),
        events_per_s: (secs > 0.0).then(|| Fixed(run.events as f64 / secs)),
        peak_lag: lag.map(|l| l.peak),
        catch_up_s: lag.and_then(|l| l.catch_up).map(|d| Fixed(d.as_secs_f64())),
        replay_equal: run.replay_equal(),
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

fn final_metrics(runs: &[Run]) -> Option<&Metrics> {
    runs.iter().rev().find_map(|r| r.metrics.as_ref())
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
    csv::merge(&out.join(REPLAY_CSV), mode, runs.iter().flat_map(replay_rows).collect())?;
    csv::merge(&out.join(SUMMARY_CSV), mode, runs.iter().map(summary_row).collect())
}

fn shown(runs: &[Run]) -> (Vec<String>, Vec<Vec<String>>) {
    (csv::header::<SummaryRow>(), runs.iter().map(|r| csv::cells(&summary_row(r))).collect())
}

pub fn table(runs: &[Run]) -> String {
    let (header, rows) = shown(runs);
    text_table(&header, &rows)
}

/// The other mode's per-minute metrics (orders, failure rate as written), if a run of it left
/// them in `out/`.
fn other_mode_metrics(out: &Path, mode: Mode) -> anyhow::Result<Option<BTreeMap<u64, (u64, String)>>> {
    let path = out.join(METRICS_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows: BTreeMap<u64, (u64, String)> = csv::read::<MetricsRow>(&path)?
        .into_iter()
        .filter(|r| r.mode != mode)
        .map(|r| (r.minute, (r.orders, format!("{:.6}", r.failure_rate.0))))
        .collect();
    Ok((!rows.is_empty()).then_some(rows))
}

pub fn write_report(out: &Path, config: &Config, mode: Mode, runs: &[Run], violations: &[Violation]) -> anyhow::Result<()> {
    let mut text = format!("## Part C — streaming, Kafka ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · {} events · {} partitions per topic · Analytics throttled to {} records/s in `lag` · stock {} per item · \
         files: [`{METRICS_CSV}`]({METRICS_CSV}), [`{LAG_CSV}`]({LAG_CSV}), [`{REPLAY_CSV}`]({REPLAY_CSV}), [`{SUMMARY_CSV}`]({SUMMARY_CSV})\n\n",
        config.seed,
        config.events,
        campus::transport::log::PARTITIONS,
        config.throttle_per_s,
        config.stock
    ));
    text.push_str(match mode {
        Mode::Sim => "Simulation: `SimLog` in virtual time; an append (a batch of records) or a commit takes 1–3 ms, so throughput and catch-up times are modelled; offsets, partitions and metrics are exact.\n\n",
        Mode::Real => "Real: Apache Kafka (KRaft, single node, started by `scripts/brokers.sh`), rdkafka clients: an idempotent producer with `acks=all` and Kafka's murmur2 partitioner, consumers committing after processing. The producer, Inventory and Analytics are tasks of the `campus-sim` process; each experiment uses fresh topics.\n\n",
    });
    let (header, rows) = shown(runs);
    text.push_str(&markdown_table(&header, &rows));
    text.push_str("\n### What the numbers say\n\n");
    for run in runs {
        match &run.detail {
            Detail::Produce => text.push_str(&format!(
                "- **produce**: {} `OrderPlaced` appended in {:.3} s ({:.0} events/s) in batches of {}, each batch acknowledged by all in-sync replicas.\n",
                run.events,
                run.produce.as_secs_f64(),
                run.events as f64 / run.produce.as_secs_f64().max(1e-9),
                config.batch
            )),
            Detail::Lag(lag) => {
                let to_read = 2 * run.events;
                text.push_str(&format!(
                    "- **lag**: the producer finished in {:.2} s; Analytics, allowed {} records/s, has {} records to read \
                     ({} `OrderPlaced` + {} outcomes), so it needs about {:.0} s. Its lag peaked at {} records and was back \
                     at 0 {} after the last event. Lag is the log's way of absorbing a slow consumer: nothing is lost or \
                     refused, the consumer is only late — and the per-minute metrics it publishes are stale by that much.\n",
                    run.produce.as_secs_f64(),
                    config.throttle_per_s,
                    to_read,
                    run.events,
                    run.events,
                    to_read as f64 / f64::from(config.throttle_per_s),
                    lag.peak,
                    lag.catch_up.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
                ));
            }
            Detail::Replay { before } => {
                if let Some(after) = &run.metrics {
                    let compared = named(before);
                    let after_named: BTreeMap<String, String> = named(after).into_iter().collect();
                    let equal = compared.iter().filter(|(k, v)| after_named.get(k) == Some(v)).count();
                    let orders_match = after.per_minute.iter().all(|(m, v)| run.expected_orders.get(m) == Some(&v.orders))
                        && after.per_minute.len() == run.expected_orders.len();
                    text.push_str(&format!(
                        "- **replay**: {equal} of {} metrics equal before and after resetting the Analytics group to the \
                         beginning ({} minutes of event time; {} orders, {} reserved, {} failed, failure rate {:.2}% overall). \
                         Orders per minute {} the counts straight from the workload. They can be identical because \
                         the metrics are keyed by event time and order id, not by arrival time or by how often a record \
                         was read, and the log still holds every record.\n",
                        compared.len(),
                        after.per_minute.len(),
                        after.total.orders,
                        after.total.reserved,
                        after.total.failed,
                        after.total.failure_rate() * 100.0,
                        if orders_match { "equal" } else { "DIFFER FROM" }
                    ));
                    let rush = after.per_minute.iter().max_by_key(|(_, v)| v.orders).map(|(m, _)| *m);
                    let last = after.per_minute.keys().next_back().copied();
                    let mut rows = Vec::new();
                    for minute in [after.per_minute.keys().next().copied(), rush, last].into_iter().flatten() {
                        let b = before.per_minute.get(&minute).copied().unwrap_or_default();
                        let a = after.per_minute[&minute];
                        rows.push(vec![
                            minute.to_string(),
                            b.orders.to_string(),
                            a.orders.to_string(),
                            format!("{:.3}", b.failure_rate()),
                            format!("{:.3}", a.failure_rate()),
                        ]);
                    }
                    text.push('\n');
                    text.push_str(&markdown_table(&["minute", "orders before", "orders after", "failure rate before", "failure rate after"], &rows));
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
    if let (Some(metrics), Some(other)) = (final_metrics(runs), other_mode_metrics(out, mode)?) {
        let same_orders = metrics.per_minute.len() == other.len() && metrics.per_minute.iter().all(|(m, v)| other.get(m).map(|o| o.0) == Some(v.orders));
        let differing_rates = metrics.per_minute.iter().filter(|(m, v)| other.get(m).map(|o| o.1.clone()) != Some(format!("{:.6}", v.failure_rate()))).count();
        text.push_str(&format!(
            "- **sim vs real** (same seed and events): orders per minute are {}; the failure rate differs in {differing_rates} of {} minutes. \
             Orders per minute come from the workload's event times, so they agree. Which orders fail depends on the order in \
             which Inventory reserves while stock runs out, and Inventory reads three partitions whose interleaving the \
             simulation models with a fixed round robin while a real Kafka consumer gets whatever the fetches bring.\n",
            if same_orders { "identical" } else { "DIFFERENT" },
            metrics.per_minute.len()
        ));
    }
    text.push_str(&super::figures::draw(out, mode)?);
    text.push_str("\n### Checks\n\n");
    if violations.is_empty() {
        text.push_str("All passed: replay equal, orders per minute equal to the workload, every event answered by Inventory, no stock taken twice, the lag rose under throttling and returned to 0.\n");
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("streaming-kafka/{mode}"), &text)
}
