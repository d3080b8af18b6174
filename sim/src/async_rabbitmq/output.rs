//! Part B's outputs: `async_rabbitmq_backlog.csv`, `async_rabbitmq_summary.csv`, the table and
//! the report section, its reasoning computed from the run.

use std::collections::BTreeMap;
use std::path::Path;

use super::rows::{Summary, BACKLOG_CSV, BROKER_RESTART_CSV, DEAD_LETTERS_CSV, SUMMARY_CSV};
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

/// The outage's turning points as a log of the run's own samples (the rows of
/// `async_rabbitmq_backlog.csv`): the last sample before Inventory went down, the first while it
/// was, the backlog's peak, the last sample while it was down, the first after its return, and
/// the first with the queue empty again.
fn turning_points(outage: &super::Outage) -> String {
    let samples = &outage.samples;
    let down = samples.iter().position(|x| !x.inventory_up);
    let back = down.and_then(|d| samples[d..].iter().position(|x| x.inventory_up).map(|i| d + i));
    let peak = samples.iter().enumerate().max_by_key(|(i, x)| (x.queue_depth, std::cmp::Reverse(*i))).map(|(i, _)| i);
    let drained = back.and_then(|b| samples[b..].iter().position(|x| x.queue_depth == 0).map(|i| b + i));
    let mut picked: Vec<(usize, &str)> = [
        (down.and_then(|d| d.checked_sub(1)), "before the kill"),
        (down, "Inventory down"),
        (peak, "the backlog's peak"),
        (back.and_then(|b| b.checked_sub(1)), "the last sample while down"),
        (back, "Inventory back"),
        (drained, "queue empty again"),
    ]
    .into_iter()
    .filter_map(|(i, what)| Some((i?, what)))
    .collect();
    picked.sort_by_key(|(i, _)| *i);
    picked.dedup_by_key(|(i, _)| *i);
    if picked.is_empty() {
        return String::new();
    }
    let mut log = String::from("      t (s)  Inventory  queue  accepted  reserved  failed  notified\n");
    for (i, what) in picked {
        let x = &samples[i];
        log.push_str(&format!(
            "  {:>9.3}  {:<9}  {:>5}  {:>8}  {:>8}  {:>6}  {:>8}   {what}\n",
            x.t_ms as f64 / 1e3,
            if x.inventory_up { "up" } else { "down" },
            x.queue_depth,
            x.accepted,
            x.reserved,
            x.failed,
            x.notified
        ));
    }
    format!("\n  The outage's turning points, as the run sampled them (every sample: [`{BACKLOG_CSV}`]({BACKLOG_CSV})):\n\n```text\n{log}```\n\n")
}

/// One dead-lettered message per reason, as the dead-letter queue held it (every one is in
/// `async_rabbitmq_dead_letters.csv`): what the assignment asks to see of the poison run.
fn dead_letter_samples(run: &Run) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for d in &run.end.dead_letters {
        let label = d.reason.split(':').next().unwrap_or("").trim().to_owned();
        if !seen.insert(label) {
            continue;
        }
        let body = String::from_utf8_lossy(&d.body);
        let shown: String = body.chars().take(90).collect();
        let more = if body.chars().count() > 90 { "…" } else { "" };
        let cell = |text: &str| text.replace('|', "\\|").replace('`', "'");
        rows.push(vec![format!("`{}`", cell(&d.reason)), format!("`{}{more}`", cell(&shown))]);
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n  One dead-lettered message per reason, as the dead-letter queue held it (all of them: [`{DEAD_LETTERS_CSV}`]({DEAD_LETTERS_CSV})):\n\n{}\n",
        markdown_table(&["reason (header `x-campus-reason`)", "body as published"], &rows)
    )
}

/// The idempotency strategy as the report states it: at most 80 words (what a student can
/// quote); docs/experiments.md walks through every crash point.
const STRATEGY: &str = "**Idempotency strategy.** The key is the order id. Inventory writes it, with the \
outcome, to a `processed` table in the same SQLite transaction as the stock change, then publishes \
the outcome, then acks. A redelivered `OrderPlaced` finds its id there: no stock is taken; the \
stored outcome is published again. Notification keeps one row per order id. Order stores each order \
with its `OrderPlaced` in one transaction (an outbox) that a relay publishes. docs/experiments.md \
walks through every crash point.";

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
                     {} messages (at {peak_at:.1} s), its fullest sample — the {} accepted while Inventory was down \
                     count up to the first sample after its return, so the two differ by the orders accepted in \
                     between — and was empty again {} of Inventory's return (samples every 250 ms, so the \
                     drain itself took at most that). Students \
                     saw `accepted` quickly and `reserved` late: availability bought with latency of the \
                     outcome, not lost orders ({} reserved + {} failed of {} accepted).\n",
                    down as f64 / 1e3,
                    up as f64 / 1e3,
                    accepted_while_down,
                    s.refused,
                    s.peak_backlog,
                    accepted_while_down,
                    s.drain_s.map_or("—".to_owned(), |d| format!("within {:.2} s", d.0)),
                    s.reserved,
                    s.failed,
                    s.orders
                ));
                text.push_str(&turning_points(outage));
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
                text.push_str(&dead_letter_samples(run));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_strategy_is_stated_in_at_most_80_words() {
        let words = STRATEGY.split_whitespace().count();
        assert!(words <= 80, "{words} words");
    }
}
