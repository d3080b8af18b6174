//! Part B's outputs: `async_rabbitmq_backlog.csv`, `async_rabbitmq_summary.csv`, the table and
//! the report section, its reasoning computed from the run.

use std::collections::BTreeMap;
use std::path::Path;

use super::rows::{Summary, BACKLOG_CSV, BROKER_RESTART_CSV, SUMMARY_CSV};
use super::{Config, Detail, Run};
use crate::reporting::backlog::{Backlog, Point};
use crate::reporting::csv::{self};
use crate::reporting::{markdown_table, text_table, update_report};
use crate::violation::Violation;
use crate::Mode;

fn shown(summaries: &[Summary]) -> (Vec<String>, Vec<Vec<String>>) {
    (csv::header::<Summary>(), summaries.iter().map(csv::cells).collect())
}

pub fn table(summaries: &[Summary]) -> String {
    let (header, rows) = shown(summaries);
    text_table(&header, &rows)
}

/// The dead-letter reasons by label (`not_json`, `schema_violation`, …) with their counts.
pub fn reasons(run: &Run) -> BTreeMap<String, usize> {
    let mut by_label = BTreeMap::new();
    for d in &run.end.dead_letters {
        let label = d.reason.split(':').next().unwrap_or("").trim().to_owned();
        *by_label.entry(label).or_insert(0) += 1;
    }
    by_label
}

const STRATEGY: &str = "**Idempotency strategy.** The key is the order id. It lives in Inventory's own \
SQLite store, in a `processed` table, together with the outcome and the exact event Inventory \
emitted. The stock change and the `processed` row commit in **one transaction**, and only then does \
Inventory publish the outcome (with a publisher confirm) and, last, ack the `OrderPlaced`. A crash \
before the commit leaves nothing behind: the message is redelivered and handled afresh. A crash \
after the commit but before the ack (before or after the publish) gets the message redelivered; \
Inventory finds the order id in `processed`, touches no stock, and publishes the stored outcome \
again. Notification keeps one row per order id, so a re-emitted `InventoryReserved` sends nothing \
twice, and Order only moves an order out of `accepted` once. On Order's side, the order and its \
`OrderPlaced` are written in one transaction (transactional outbox) and a relay publishes the \
outbox with confirms, so no accepted order goes unpublished and nothing is published that was not \
stored; a relay crash after the confirm publishes again, which the dedup above absorbs.";

pub fn write_report(
    out: &Path,
    config: &Config,
    mode: Mode,
    runs: &[Run],
    summaries: &[Summary],
    violations: &[Violation],
) -> anyhow::Result<()> {
    let mut text = format!("## Part B — asynchronous messaging, RabbitMQ ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · outage: {} orders/s, Inventory down {} s after {} s · broker-restart: RabbitMQ down {} s · {} orders in `idempotency` and \
         `poison` · prefetch {} · files: [`{BACKLOG_CSV}`]({BACKLOG_CSV}), [`{BROKER_RESTART_CSV}`]({BROKER_RESTART_CSV}), [`{SUMMARY_CSV}`]({SUMMARY_CSV})\n\n",
        config.seed,
        config.rate,
        config.down_for.as_secs(),
        config.lead.as_secs(),
        config.broker_down_for.as_secs(),
        config.orders,
        config.prefetch
    ));
    text.push_str(match mode {
        Mode::Sim => "Simulation: `SimQueue` in virtual time; a publish (with its confirm) takes 1–3 ms, handling is otherwise instant, so drain times are modelled.\n\n",
        Mode::Real => "Real: three `campus-sim serve --model async-rabbitmq` processes, each with a SQLite file, over Debian's RabbitMQ (quorum queues, persistent messages, publisher confirms, manual acks). The outage SIGKILLs the inventory process and starts a new one on the same store.\n\n",
    });
    let (header, rows) = shown(summaries);
    text.push_str(&markdown_table(&header, &rows));
    text.push_str("\n### What the numbers say\n\n");
    for run in runs {
        let s = Summary::of(run);
        match &run.detail {
            Detail::Outage(outage) => {
                let (down, up) = outage.down_window_ms;
                // Read off the samples as the CSV keeps them, as the comparison reads them.
                let points: Vec<Point> = outage
                    .samples
                    .iter()
                    .map(|x| Point { t_s: x.t_ms as f64 / 1e3, up: x.inventory_up, accepted: x.accepted, decided: x.reserved + x.failed })
                    .collect();
                let accepted_while_down = Backlog::of(&points).map_or(0, |b| b.accepted_while_down);
                let peak_at = outage.samples.iter().max_by_key(|x| x.queue_depth).map_or(0.0, |x| x.t_ms as f64 / 1e3);
                text.push_str(&format!(
                    "- **outage**: Inventory was down from {:.1} s to {:.1} s. Order kept answering 202 \
                     ({} orders accepted while Inventory was down, {} refused in the whole run): the queue \
                     decouples accepting an order from reserving it. The backlog of `OrderPlaced` grew to \
                     {} messages (at {peak_at:.1} s) and drained {} after Inventory came back. Students \
                     saw `accepted` quickly and `reserved` late: availability bought with latency of the \
                     outcome, not lost orders ({} reserved + {} failed of {} accepted).\n",
                    down as f64 / 1e3,
                    up as f64 / 1e3,
                    accepted_while_down,
                    s.refused,
                    s.peak_backlog,
                    s.drain_s.map_or("—".to_owned(), |d| format!("in {:.2} s", d.0)),
                    s.reserved,
                    s.failed,
                    s.orders
                ));
                if s.repeats_absorbed > 0 {
                    text.push_str(&format!(
                        "  The SIGKILL left {} deliveries unacknowledged; RabbitMQ delivered them again \
                         and Inventory answered them from its store ({} double reservations).\n",
                        s.repeats_absorbed, s.double_reservations
                    ));
                }
            }
            Detail::Idempotency { .. } => text.push_str(&format!(
                "- **idempotency**: {} `OrderPlaced` published a second time straight to the broker; \
                 Inventory answered {} repeats from its store; {} double reservations; stock fell by {} \
                 units for reserved orders asking {} units; {} notifications for {} reserved orders.\n",
                s.duplicates_injected,
                s.repeats_absorbed,
                s.double_reservations,
                run.end.inventory.units_taken,
                run.end.inventory.units_of_reserved_orders,
                s.notified,
                s.reserved
            )),
            Detail::Poison { .. } => {
                let reasons = reasons(run);
                let listed: Vec<String> = reasons.iter().map(|(k, v)| format!("{v} × `{k}`")).collect();
                text.push_str(&format!(
                    "- **poison**: {} malformed messages among {} good orders; {} dead-lettered ({}), \
                     each acked off Inventory's queue at once, so the {} good orders behind them were all \
                     processed ({} reserved, {} failed).\n",
                    run.poison_injected(),
                    s.orders,
                    s.dead_lettered,
                    listed.join(", "),
                    s.orders,
                    s.reserved,
                    s.failed
                ));
            }
            Detail::BrokerRestart(restart) => {
                let (down, up) = restart.down_window_ms;
                let at = |t: u64| restart.samples.iter().rfind(|x| x.t_ms <= t).cloned();
                let accepted_while_down = match (at(down), at(up)) {
                    (Some(a), Some(b)) => b.accepted.saturating_sub(a.accepted),
                    _ => 0,
                };
                text.push_str(&format!(
                    "- **broker-restart**: RabbitMQ itself was down from {:.1} s to {:.1} s{}. No service was restarted: \
                     Order kept answering 202 ({accepted_while_down} orders accepted while the broker was away, {} refused in \
                     the whole run) and its outbox held them (at most {} waiting); the consumers lost their subscriptions, \
                     reconnected with backoff and subscribed again, and the relay published the outbox. Everything had \
                     settled {} after the broker's return{}: {} reserved + {} failed of {} accepted, {} notified, {} repeats \
                     answered from Inventory's store, {} double reservations.\n",
                    down as f64 / 1e3,
                    up as f64 / 1e3,
                    match mode {
                        Mode::Sim => " (the world's outage: connections dropped, unacked deliveries returned, publishes refused)",
                        Mode::Real => " (`rabbitmqctl stop_app`, then `start_app`)",
                    },
                    s.refused,
                    restart.peak_outbox,
                    s.drain_s.map_or("—".to_owned(), |d| format!("{:.2} s", d.0)),
                    match (restart.retry_wait(), restart.drain) {
                        (Some(wait), Some(drain)) => crate::reporting::recovery::split_in_words(
                            wait,
                            drain,
                            "the relay",
                            "published",
                            "the outbox and queue drained",
                            "250 ms",
                        ),
                        _ => String::new(),
                    },
                    s.reserved,
                    s.failed,
                    s.orders,
                    s.notified,
                    s.repeats_absorbed,
                    s.double_reservations
                ));
            }
            // The cluster's experiments have their own section (`campus-sim cluster`).
            Detail::NodeLoss(_) | Detail::ScaleOut(_) | Detail::Explore { .. } => {}
        }
    }
    text.push_str(&super::figures::draw(out, mode)?);
    text.push_str(&format!("\n{STRATEGY}\n\n### Checks\n\n"));
    if violations.is_empty() {
        text.push_str(
            "All passed: every accepted order in exactly one terminal state (reserved and notified, \
             failed, or dead-lettered), no stock taken twice, one notification per reserved order, \
             every malformed message dead-lettered and no good one, the outage backlog drained, no order \
             refused while RabbitMQ was away and the outbox drained after it.\n",
        );
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("async-rabbitmq/{mode}"), &text)
}
