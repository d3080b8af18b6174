//! Part C's outputs: `streaming_kafka_metrics.csv`, `_lag.csv`, `_replay.csv`, `_summary.csv`,
//! the table and the report section, its reasoning computed from the run.

use std::collections::BTreeMap;
use std::path::Path;

use campus::services::analytics::Metrics;

use super::{Config, Run};
use crate::checker::Violation;
use crate::report::{markdown_table, merge_csv, text_table, update_report};
use crate::Mode;

pub const METRICS_CSV: &str = "streaming_kafka_metrics.csv";
pub const LAG_CSV: &str = "streaming_kafka_lag.csv";
pub const REPLAY_CSV: &str = "streaming_kafka_replay.csv";
pub const SUMMARY_CSV: &str = "streaming_kafka_summary.csv";
const METRICS_HEADER: [&str; 6] = ["minute", "mode", "orders", "reserved", "failed", "failure_rate"];
const LAG_HEADER: [&str; 7] = ["t_s", "mode", "topic", "partition", "end_offset", "committed_offset", "lag"];
const REPLAY_HEADER: [&str; 5] = ["metric", "mode", "before", "after", "equal"];
const SUMMARY_HEADER: [&str; 8] = ["experiment", "mode", "events", "produce_s", "events_per_s", "peak_lag", "catch_up_s", "replay_equal"];

fn summary_row(run: &Run) -> Vec<String> {
    let secs = run.produce.as_secs_f64();
    vec![
        run.experiment.to_owned(),
        run.mode.to_string(),
        run.events.to_string(),
        format!("{secs:.3}"),
        if secs > 0.0 { format!("{:.0}", run.events as f64 / secs) } else { String::new() },
        if run.experiment == "lag" { run.peak_lag.to_string() } else { String::new() },
        run.catch_up.map(|d| format!("{:.2}", d.as_secs_f64())).unwrap_or_default(),
        run.replay_equal().map(|e| e.to_string()).unwrap_or_default(),
    ]
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

fn replay_rows(run: &Run) -> Vec<Vec<String>> {
    let (Some(before), Some(after)) = (&run.before_replay, &run.metrics) else { return Vec::new() };
    let after: BTreeMap<String, String> = named(after).into_iter().collect();
    let mut rows: Vec<Vec<String>> = named(before)
        .into_iter()
        .map(|(metric, b)| {
            let a = after.get(&metric).cloned().unwrap_or_default();
            let equal = (a == b).to_string();
            vec![metric, run.mode.to_string(), b, a, equal]
        })
        .collect();
    let before: BTreeMap<String, String> = named(run.before_replay.as_ref().expect("checked")).into_iter().collect();
    for (metric, a) in &after {
        if !before.contains_key(metric) {
            rows.push(vec![metric.clone(), run.mode.to_string(), String::new(), a.clone(), "false".into()]);
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
            .map(|(minute, m)| {
                vec![minute.to_string(), mode.to_string(), m.orders.to_string(), m.reserved.to_string(), m.failed.to_string(), format!("{:.6}", m.failure_rate())]
            })
            .collect();
        merge_csv(&out.join(METRICS_CSV), &METRICS_HEADER, mode.as_str(), rows)?;
    }
    let lag = runs
        .iter()
        .flat_map(|r| &r.lag)
        .map(|s| {
            vec![
                format!("{:.2}", s.t_ms as f64 / 1e3),
                mode.to_string(),
                s.topic.to_string(),
                s.partition.to_string(),
                s.end_offset.to_string(),
                s.committed.to_string(),
                s.lag().to_string(),
            ]
        })
        .collect();
    merge_csv(&out.join(LAG_CSV), &LAG_HEADER, mode.as_str(), lag)?;
    merge_csv(&out.join(REPLAY_CSV), &REPLAY_HEADER, mode.as_str(), runs.iter().flat_map(replay_rows).collect())?;
    merge_csv(&out.join(SUMMARY_CSV), &SUMMARY_HEADER, mode.as_str(), runs.iter().map(summary_row).collect())
}

pub fn table(runs: &[Run]) -> String {
    text_table(&SUMMARY_HEADER, &runs.iter().map(summary_row).collect::<Vec<_>>())
}

/// The other mode's per-minute metrics, if a run of it left them in `out/`.
fn other_mode_metrics(out: &Path, mode: Mode) -> Option<BTreeMap<u64, (u64, String)>> {
    let other = match mode {
        Mode::Sim => "real",
        Mode::Real => "sim",
    };
    let mut reader = csv::Reader::from_path(out.join(METRICS_CSV)).ok()?;
    let rows: BTreeMap<u64, (u64, String)> = reader
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.get(1) == Some(other))
        .filter_map(|r| Some((r.get(0)?.parse().ok()?, (r.get(2)?.parse().ok()?, r.get(5)?.to_owned()))))
        .collect();
    (!rows.is_empty()).then_some(rows)
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
    text.push_str(&markdown_table(&SUMMARY_HEADER, &runs.iter().map(summary_row).collect::<Vec<_>>()));
    text.push_str("\n### What the numbers say\n\n");
    for run in runs {
        match run.experiment {
            "produce" => text.push_str(&format!(
                "- **produce**: {} `OrderPlaced` appended in {:.3} s ({:.0} events/s) in batches of {}, each batch acknowledged by all in-sync replicas.\n",
                run.events,
                run.produce.as_secs_f64(),
                run.events as f64 / run.produce.as_secs_f64().max(1e-9),
                config.batch
            )),
            "lag" => {
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
                    run.peak_lag,
                    run.catch_up.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
                ));
            }
            "replay" => {
                if let (Some(before), Some(after)) = (&run.before_replay, &run.metrics) {
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
    if let (Some(metrics), Some(other)) = (final_metrics(runs), other_mode_metrics(out, mode)) {
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
    text.push_str(&crate::plot::streaming_kafka_figures(out, mode.as_str())?);
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
