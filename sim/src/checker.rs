//! The invariants every run is checked against. A violated invariant is reported with the
//! experiment and the requests involved, printed, written into the report, and makes the
//! command exit non-zero: a lab that prints wrong numbers quietly teaches the wrong thing.

use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;

use crate::report::percentile;
use crate::sync_rest::{CaseRun, Config};
use crate::Mode;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub experiment: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.experiment, self.message)
    }
}

/// How far past its timeout a 504 may arrive: the reply's way back to the client (a hop), plus
/// scheduling. In virtual time hops are ≤ 1 ms, so 50 ms is generous; on real sockets a
/// loaded 2-core machine can stall a task for a while, so real mode allows 250 ms.
pub fn timeout_slack(mode: Mode) -> Duration {
    match mode {
        Mode::Sim => Duration::from_millis(50),
        Mode::Real => Duration::from_millis(250),
    }
}

/// Part A: every request answered, with its case's status, a 504 within its bound, and the
/// delay visible in the delay case's median.
pub fn sync_rest(runs: &[CaseRun], config: &Config) -> Vec<Violation> {
    let mut violations = Vec::new();
    for run in runs {
        let case = &run.case;
        let mut fail = |message: String| violations.push(Violation { experiment: case.experiment.to_owned(), message });
        if run.answers.len() != case.requests {
            fail(format!("{} answers recorded for {} requests", run.answers.len(), case.requests));
        }
        let wrong: Vec<_> = run.answers.iter().filter(|a| a.status != case.expected.as_u16()).collect();
        if !wrong.is_empty() {
            let sample: Vec<String> = wrong.iter().take(5).map(|a| format!("#{} got {}", a.index, status_name(a.status))).collect();
            fail(format!(
                "{} of {} requests did not get {} (e.g. {})",
                wrong.len(),
                run.answers.len(),
                case.expected.as_u16(),
                sample.join(", ")
            ));
        }
        let bound = case.call_timeout + timeout_slack(run.mode);
        let late: Vec<_> = run
            .answers
            .iter()
            .filter(|a| a.status == StatusCode::GATEWAY_TIMEOUT.as_u16() && a.latency > bound)
            .collect();
        if let Some(worst) = late.iter().max_by_key(|a| a.latency) {
            fail(format!(
                "{} answers of 504 came after the {} ms bound (timeout {} ms + slack); worst #{} at {:.1} ms",
                late.len(),
                bound.as_millis(),
                case.call_timeout.as_millis(),
                worst.index,
                worst.latency.as_secs_f64() * 1e3
            ));
        }
        if case.fault.delay.is_some() && case.expected == StatusCode::CREATED {
            let mut latencies: Vec<Duration> = run.answers.iter().map(|a| a.latency).collect();
            latencies.sort();
            let p50 = percentile(&latencies, 50.0);
            if p50 < config.delay {
                fail(format!("p50 {:.1} ms is below the injected {} ms delay", p50.as_secs_f64() * 1e3, config.delay.as_millis()));
            }
        }
    }
    violations
}

/// One request of a generated Part A schedule, with the status its fault calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub index: usize,
    pub expected: u16,
    /// 0: no answer at all.
    pub status: u16,
    pub latency: Duration,
    /// Order's timeout to Inventory plus the slack: no answer may come later.
    pub bound: Duration,
}

/// Part A, request by request: each answered within its bound, with the expected status.
pub fn sync_rest_answers(experiment: &str, answers: &[Answered]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for a in answers {
        let mut fail = |message: String| violations.push(Violation { experiment: experiment.to_owned(), message });
        if a.status != a.expected {
            fail(format!("request #{} got {}, expected {}", a.index, status_name(a.status), a.expected));
        }
        if a.latency > a.bound {
            fail(format!(
                "request #{} answered after {} ms, beyond its {} ms bound (Order's timeout + slack)",
                a.index,
                a.latency.as_millis(),
                a.bound.as_millis()
            ));
        }
    }
    violations
}

fn status_name(status: u16) -> String {
    if status == 0 { "no answer".into() } else { status.to_string() }
}

/// Part B's accounting: every accepted order in exactly one terminal state (reserved and
/// notified, failed, or dead-lettered), no stock taken twice, one notification per reserved
/// order, every injected poison message dead-lettered and no good one.
pub fn async_rabbitmq(run: &crate::async_rabbitmq::Run) -> Vec<Violation> {
    use std::collections::BTreeSet;

    use campus::domain::{Envelope, Event};

    let mut violations = Vec::new();
    let mut fail = |message: String| violations.push(Violation { experiment: run.experiment.to_owned(), message });
    let end = &run.end;
    let statuses = &end.orders.statuses;
    let notified: BTreeSet<&str> = end.notified.iter().map(String::as_str).collect();
    let dead_orders: BTreeSet<String> = end
        .dead_letters
        .iter()
        .filter_map(|d| match Envelope::decode(&d.body) {
            Ok(Event::OrderPlaced(p)) if statuses.contains_key(p.order.order_id.as_str()) => Some(p.order.order_id.to_string()),
            _ => None,
        })
        .collect();

    if run.refused > 0 {
        fail(format!("{} orders were not accepted (Order must accept while Inventory is away)", run.refused));
    }
    if statuses.len() != run.accepted {
        fail(format!("{} orders answered 202 but Order's store holds {}", run.accepted, statuses.len()));
    }
    let mut broken = Vec::new();
    for (id, status) in statuses {
        let inventory = end.inventory_outcomes.get(id).map(String::as_str);
        let was_notified = notified.contains(id.as_str());
        let states = [
            status == "reserved" && inventory == Some("reserved") && was_notified,
            status == "failed" && inventory == Some("failed") && !was_notified,
            dead_orders.contains(id) && inventory.is_none() && !was_notified,
        ];
        if states.iter().filter(|s| **s).count() != 1 {
            broken.push(format!(
                "{id} (order: {status}, inventory: {}, notified: {was_notified}, dead-lettered: {})",
                inventory.unwrap_or("never saw it"),
                dead_orders.contains(id)
            ));
        }
    }
    if !broken.is_empty() {
        fail(format!(
            "{} accepted orders are not in exactly one terminal state, e.g. {}",
            broken.len(),
            broken.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    let inv = &end.inventory;
    if inv.double_reservations > 0 {
        fail(format!("{} orders had their stock taken more than once", inv.double_reservations));
    }
    if inv.units_taken != inv.units_of_reserved_orders {
        fail(format!("stock fell by {} units but the reserved orders asked for {}", inv.units_taken, inv.units_of_reserved_orders));
    }
    let stray: Vec<&&str> = notified.iter().filter(|id| statuses.get(**id).map(String::as_str) != Some("reserved")).collect();
    if !stray.is_empty() {
        fail(format!("{} notifications for orders that are not reserved, e.g. {}", stray.len(), stray[0]));
    }
    if end.notification.notified != notified.len() as u64 {
        fail(format!("notification counts {} confirmations but lists {}", end.notification.notified, notified.len()));
    }
    let poison_dead = end.dead_letters.len() - dead_orders.len();
    if poison_dead != run.poison_injected {
        fail(format!("{} malformed messages injected, {poison_dead} dead-lettered", run.poison_injected));
    }
    if !dead_orders.is_empty() {
        fail(format!("{} good orders were dead-lettered, e.g. {}", dead_orders.len(), dead_orders.iter().next().expect("non-empty")));
    }
    if let Some(last) = run.samples.last() {
        if run.peak_backlog == 0 {
            fail("the backlog never rose during the outage".into());
        }
        if last.queue_depth != 0 || run.drain.is_none() {
            fail(format!("the backlog did not drain (last depth {})", last.queue_depth));
        }
    }
    violations
}

/// Part C: the replay reproduces the metrics, which match the workload; Inventory answered
/// every event once; under throttling the lag rose and came back to 0.
pub fn streaming_kafka(run: &crate::streaming_kafka::Run) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |message: String| violations.push(Violation { experiment: run.experiment.to_owned(), message });
    if run.replay_equal() == Some(false) {
        fail("the metrics after the replay differ from those before".into());
    }
    if let Some(metrics) = &run.metrics {
        let counted: std::collections::BTreeMap<u64, u64> = metrics.per_minute.iter().map(|(m, v)| (*m, v.orders)).collect();
        if counted != run.expected_orders {
            let differing = run.expected_orders.iter().filter(|(m, n)| counted.get(m) != Some(n)).count();
            fail(format!("orders per minute differ from the workload in {differing} minutes"));
        }
        if (metrics.total.reserved + metrics.total.failed) as usize != run.events {
            fail(format!("{} events but {} outcomes counted", run.events, metrics.total.reserved + metrics.total.failed));
        }
    }
    if let Some(inventory) = &run.inventory {
        if inventory.double_reservations > 0 {
            fail(format!("{} orders had their stock taken more than once", inventory.double_reservations));
        }
        if (inventory.reserved + inventory.failed) as usize != run.events {
            fail(format!("inventory decided {} of {} orders", inventory.reserved + inventory.failed, run.events));
        }
    }
    if run.experiment == "lag" {
        let last_t = run.lag.last().map(|s| s.t_ms);
        let final_lag: u64 = run.lag.iter().filter(|s| Some(s.t_ms) == last_t).map(|s| s.lag()).sum();
        if run.peak_lag == 0 {
            fail("the lag never rose under throttling".into());
        }
        if final_lag != 0 || run.catch_up.is_none() {
            fail(format!("the lag did not return to 0 (last total {final_lag})"));
        }
    }
    violations
}

/// Part C: Analytics' metrics equal those computed directly from the workload and Inventory's
/// decisions, minute by minute.
pub fn analytics_matches(
    experiment: &str,
    metrics: &campus::services::analytics::Metrics,
    expected: &campus::services::analytics::Metrics,
) -> Vec<Violation> {
    let minutes: std::collections::BTreeSet<&u64> = metrics.per_minute.keys().chain(expected.per_minute.keys()).collect();
    let differing: Vec<String> = minutes
        .into_iter()
        .filter(|m| metrics.per_minute.get(m) != expected.per_minute.get(m))
        .map(|m| {
            let show = |v: Option<&campus::services::analytics::MinuteMetrics>| {
                v.map_or("nothing".to_owned(), |v| format!("{} orders, {} reserved, {} failed", v.orders, v.reserved, v.failed))
            };
            format!("minute {m}: analytics {} vs workload {}", show(metrics.per_minute.get(m)), show(expected.per_minute.get(m)))
        })
        .collect();
    if differing.is_empty() {
        return Vec::new();
    }
    vec![Violation {
        experiment: experiment.to_owned(),
        message: format!("analytics differ from the workload in {} minutes: {}", differing.len(), differing.join("; ")),
    }]
}
