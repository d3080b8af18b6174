//! Part C's outputs: `streaming_kafka_metrics.csv`, `_lag.csv`, `_replay.csv`, `_summary.csv`,
//! the table and the report section, its reasoning computed from the run.

use std::collections::BTreeMap;
use std::path::Path;

use super::rows::{
    final_metrics, named, summary_row, MetricsRow, SummaryRow, LAG_CSV, METRICS_CSV, OUTAGE_CSV, REPLAY_CSV, RESTART_CSV, SUMMARY_CSV,
};
use super::{Config, Detail, Run};
use crate::reporting::backlog::{Backlog, Point};
use crate::reporting::csv;
use crate::reporting::{markdown_table, text_table, update_report};
use crate::violation::Violation;
use crate::Mode;

fn shown(runs: &[Run]) -> (Vec<String>, Vec<Vec<String>>) {
    (csv::header::<SummaryRow>(), runs.iter().map(|r| csv::cells(&summary_row(r))).collect())
}

pub fn table(runs: &[Run]) -> String {
    let (header, rows) = shown(runs);
    text_table(&header, &rows)
}

/// The other mode's per-minute (orders, reserved, failed), if a run of it left them in `out/`.
pub fn other_mode_metrics(out: &Path, mode: Mode) -> anyhow::Result<Option<BTreeMap<u64, (u64, u64, u64)>>> {
    let path = out.join(METRICS_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows: BTreeMap<u64, (u64, u64, u64)> = csv::read::<MetricsRow>(&path)?
        .into_iter()
        .filter(|r| r.mode != mode)
        .map(|r| (r.minute, (r.orders, r.reserved, r.failed)))
        .collect();
    Ok((!rows.is_empty()).then_some(rows))
}

pub fn write_report(out: &Path, config: &Config, mode: Mode, runs: &[Run], violations: &[Violation]) -> anyhow::Result<()> {
    let mut text = format!("## Part C — streaming, Kafka ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · {} events · {} partitions per topic · Analytics throttled to {} records/s in `lag` · stock {} per item · \
         files: [`{METRICS_CSV}`]({METRICS_CSV}), [`{LAG_CSV}`]({LAG_CSV}), [`{REPLAY_CSV}`]({REPLAY_CSV}), [`{RESTART_CSV}`]({RESTART_CSV}), [`{OUTAGE_CSV}`]({OUTAGE_CSV}), [`{SUMMARY_CSV}`]({SUMMARY_CSV})\n\n",
        config.seed,
        config.events,
        campus::transport::log::PARTITIONS,
        config.throttle_per_s,
        config.stock
    ));
    text.push_str(match mode {
        Mode::Sim => "Simulation: `SimLog` in virtual time; an append (a batch of records) or a commit takes 1–3 ms, so throughput and catch-up times are modelled; offsets, partitions and metrics are exact.\n\n",
        Mode::Real => "Real: Apache Kafka (KRaft, single node, started by `scripts/brokers.sh`), rdkafka clients. The producer, Inventory and Analytics run as three `campus-sim serve … --model streaming-kafka` processes; the producer is idempotent with `acks=all` and Kafka's murmur2 partitioner; Inventory writes each batch's outcomes, changelog and offsets in one Kafka transaction; every consumer reads `read_committed`. Each experiment uses fresh topics and groups; the decisions are counted by the lab's own `read_committed` reader, not by Inventory.\n\n",
    });
    let (header, rows) = shown(runs);
    text.push_str(&markdown_table(&header, &rows));
    text.push_str("\n### What the numbers say\n\n");
    for run in runs {
        match &run.detail {
            Detail::Produce => text.push_str(&format!(
                "- **produce**: {} `OrderPlaced` appended in {:.3} s ({:.0} events/s) in batches of {}, {}.\n",
                run.events,
                run.produce.as_secs_f64(),
                run.events as f64 / run.produce.as_secs_f64().max(1e-9),
                config.batch,
                match mode {
                    Mode::Sim => "each batch one modelled network hop (the simulation has no replicas)",
                    Mode::Real => "each batch posted to the producer and acknowledged by the broker (`acks=all`; one node, so one replica)",
                }
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
            Detail::Replay { before, command } => {
                if let Some(after) = &run.metrics {
                    let compared = named(before);
                    let after_named: BTreeMap<String, String> = named(after).into_iter().collect();
                    let equal = compared.iter().filter(|(k, v)| after_named.get(k) == Some(v)).count();
                    let orders_match = after.per_minute.iter().all(|(m, v)| run.expected_orders.get(m) == Some(&v.orders))
                        && after.per_minute.len() == run.expected_orders.len();
                    text.push_str(&format!(
                        "- **replay**: Analytics stopped; its group was reset to the beginning with `{command}`; a fresh \
                         Analytics read both topics again. {equal} of {} metrics equal before and after \
                         ({} minutes of event time — the times the orders carry, drawn from the seed as a campus day \
                         with a lunch rush, while the producer appends them as fast as the broker takes them; {} orders, \
                         {} reserved, {} failed, failure rate {:.2}% overall). \
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
                    let first_failing = after.per_minute.iter().find(|(_, v)| v.failed > 0).map(|(m, _)| *m);
                    let reasons = run.decisions.as_ref().map(|d| &d.failure_reasons).filter(|r| !r.is_empty());
                    if let (Some(minute), Some(reasons)) = (first_failing, reasons) {
                        // A reason names the item and the units left: grouped by what comes before the ':'.
                        let mut grouped: BTreeMap<&str, u64> = BTreeMap::new();
                        for (reason, n) in reasons {
                            *grouped.entry(reason.split(':').next().unwrap_or(reason)).or_insert(0) += n;
                        }
                        let named: Vec<String> = grouped.iter().map(|(reason, n)| format!("{n} `{reason}`")).collect();
                        text.push_str(&format!(
                            "  The failure rate is the stock running out, not faults: the failed orders' reasons are {} \
                             (each item starts with {} units); the first failure comes in minute {minute} of {}, once an item has run out, \
                             and the rate climbs from there to the end of the day.\n",
                            named.join(", "),
                            config.stock,
                            after.per_minute.len(),
                        ));
                    }
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
                    text.push_str(&markdown_table(
                        &["minute", "orders before", "orders after", "failure rate before", "failure rate after"],
                        &rows,
                    ));
                    text.push('\n');
                }
            }
            Detail::BrokerRestart(restart) => {
                let (down, up) = restart.down_window_ms;
                let produced_at_kill = restart.samples.iter().rfind(|x| x.t_ms <= down).map_or(0, |x| x.produced);
                let inventory = run.inventory.as_ref();
                text.push_str(&format!(
                    "- **broker-restart**: the producer appended at {} events/s; {} with {produced_at_kill} events appended the broker was \
                     {} at {:.1} s and served again at {:.1} s. Nothing else was restarted: the producer appended again what the \
                     broker had not acknowledged, the consumers retried where they had failed and read on from their committed \
                     offsets. Analytics' lag peaked at {} records (while it could be read) and every consumer had caught up {} \
                     after the broker's return{}. Inventory decided {} of {} orders ({} reserved, {} failed; {} decisions \
                     duplicated in `inventory-events`, {} orders undecided); Analytics counted {} orders, equal to the workload \
                     minute by minute.\n",
                    config.produce_rate,
                    "a third of the way in,",
                    match mode {
                        Mode::Sim => "down (the world's outage)",
                        Mode::Real => "SIGKILLed (then `scripts/brokers.sh up kafka`)",
                    },
                    down as f64 / 1e3,
                    up as f64 / 1e3,
                    restart.peak_lag,
                    restart.recover.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
                    match (restart.retry_wait(), restart.recover) {
                        (Some(wait), Some(recover)) => crate::reporting::recovery::split_in_words(
                            wait,
                            recover,
                            "the producer",
                            "appended",
                            "the consumers caught up",
                        ),
                        _ => String::new(),
                    },
                    inventory.map_or(0, |i| i.reserved + i.failed),
                    run.events,
                    inventory.map_or(0, |i| i.reserved),
                    inventory.map_or(0, |i| i.failed),
                    run.decisions.as_ref().map_or(0, |d| d.duplicates),
                    run.decisions.as_ref().map_or(0, |d| d.lost),
                    run.metrics.as_ref().map_or(0, |m| m.total.orders),
                ));
            }
            Detail::InventoryCrash { killed_after, restarted_ms } => {
                let d = run.decisions.clone().unwrap_or_default();
                let inventory = run.inventory.clone().unwrap_or_default();
                text.push_str(&format!(
                    "- **inventory-crash**: the producer appended at {} events/s; after {killed_after} events Inventory was {} and \
                     started again ({:.1} s into the run): it claimed its transactional identity (aborting whatever its \
                     predecessor had left open), restored its stock and decisions from `inventory-changelog` and read on from \
                     its committed offsets. A `read_committed` reader that is not Inventory found {} of {} orders decided, {} \
                     without a decision and {} decided twice; Inventory's stock fell by {} units, what the {} reserved orders \
                     asked for ({}).\n",
                    config.produce_rate,
                    match mode {
                        Mode::Sim => "killed (its task aborted, its memory gone)",
                        Mode::Real => "SIGKILLed",
                    },
                    *restarted_ms as f64 / 1e3,
                    d.decided(),
                    run.events,
                    d.lost,
                    d.duplicates,
                    inventory.units_taken,
                    inventory.reserved,
                    if inventory.units_taken == d.reserved_units { "equal".to_owned() } else { format!("DIFFERENT: {}", d.reserved_units) },
                ));
            }
            Detail::Outage(outage) => {
                let (down, up) = outage.down_window_ms;
                // Read off the samples as the CSV keeps them, as the comparison reads them.
                let points: Vec<Point> = outage
                    .samples
                    .iter()
                    .filter_map(|x| Some(Point { t_s: x.t_ms as f64 / 1e3, up: x.broker_up, accepted: x.produced, decided: x.decided? }))
                    .collect();
                let accepted_while_down = Backlog::of(&points).map_or(0, |b| b.accepted_while_down);
                let d = run.decisions.clone().unwrap_or_default();
                text.push_str(&format!(
                    "- **outage** (Part B's, over the log): the producer appended {} events/s, one at a time; Inventory was {} at \
                     {:.1} s and started again at {:.1} s. The broker went on accepting: {} events were appended while Inventory \
                     was away, none refused. Inventory's lag — orders waiting for a decision, plus the producer's watermarks among \
                     them — peaked at {} records. Every order appended before its return had its outcome {} after it (Part B's `drain_s`), \
                     and every consumer had caught up {} after it, the producer done. A `read_committed` reader \
                     found {} of {} orders decided, {} without a decision and {} decided twice. As with Part B's queue, the \
                     outage cost the students the time to their outcome, not their orders.\n",
                    config.outage_rate,
                    match mode {
                        Mode::Sim => "killed (its task aborted, its memory gone)",
                        Mode::Real => "SIGKILLed",
                    },
                    down as f64 / 1e3,
                    up as f64 / 1e3,
                    accepted_while_down,
                    outage.peak_inventory_lag,
                    outage.drained.map_or("—".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
                    outage.recover.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
                    d.decided(),
                    run.events,
                    d.lost,
                    d.duplicates,
                ));
            }
            Detail::Poison { injected } => {
                let d = run.decisions.clone().unwrap_or_default();
                let reasons: Vec<String> = d.dead_letters.iter().map(|(reason, n)| format!("{n} `{reason}`")).collect();
                text.push_str(&format!(
                    "- **poison**: {injected} malformed records were appended among the {} events; `dead-letters` holds {} \
                     ({}), each unchanged with its reason in the `{}` header. Inventory moved on: {} of {} good orders decided, {} \
                     twice.\n",
                    run.events,
                    d.dead_letters.values().sum::<u64>(),
                    if reasons.is_empty() { "none".to_owned() } else { reasons.join(", ") },
                    campus::streaming_kafka::consumers::DEAD_LETTER_REASON,
                    d.decided(),
                    run.events,
                    d.duplicates,
                ));
            }
            // The cluster's experiments have their own section (`campus-sim cluster`).
            Detail::NodeLoss(_) | Detail::ScaleOut { .. } | Detail::Explore => {}
        }
    }
    let (compared, across) = super::invariants::same_across_runs(runs);
    if compared.len() > 1 {
        text.push_str(&format!(
            "- **the same decisions in every run**: reserved and failed per minute are {} in the {} runs above that \
             decided all {} orders ({}) — with Analytics throttled, the broker killed, Inventory killed and restored from its \
             changelog, poison among the events: Inventory's event-time order does not depend on what happened to the \
             run.\n",
            if across.is_empty() { "identical" } else { "NOT identical" },
            compared.len(),
            config.events,
            compared.join(", ")
        ));
    }
    if let (Some(metrics), Some(other)) = (final_metrics(runs), other_mode_metrics(out, mode)?) {
        let differing = super::invariants::differing_minutes(metrics, &other);
        text.push_str(&format!(
            "- **sim vs real** (same seed, same events): orders, reserved and failed per minute differ in {} of {} minutes{}. \
             Orders per minute come from the events' times; reserved and failed agree because Inventory decides in event-time \
             order (merging its partitions behind the producer's watermarks), not in the order its fetches happen to bring the \
             three partitions — which a real consumer and the simulation interleave differently. The price: a decision waits \
             until every partition has shown a later event time (about one producer batch; at most the producer's 200 ms idle \
             watermark at the end of a burst).\n",
            differing.len(),
            metrics.per_minute.len().max(other.len()),
            if differing.is_empty() {
                String::new()
            } else {
                format!(" (minutes {})", differing.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
            },
        ));
    }
    text.push_str(&super::figures::draw(out, mode)?);
    text.push_str("\n### Checks\n\n");
    if violations.is_empty() {
        text.push_str("All passed: replay equal, orders per minute equal to the workload, every order decided exactly once in `inventory-events` (read `read_committed` by the lab), stock taken equal to what the reserved orders asked for, every poison record dead-lettered, the lag rose under throttling and returned to 0, every consumer caught up after the broker restart, Inventory's crash and its outage, and — where the other mode's run is in `out/` — the same reserved and failed per minute in sim and real.\n");
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("streaming-kafka/{mode}"), &text)
}
