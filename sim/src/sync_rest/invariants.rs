//! Part A's invariants: every request answered, with its case's status, a 504 within its
//! bound, and the delay visible in the delay case's median.

use std::time::Duration;

use axum::http::StatusCode;

use super::{CaseRun, Config};
use crate::reporting::percentile;
use crate::violation::Violation;
use crate::Mode;

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
pub fn check(runs: &[CaseRun], config: &Config) -> Vec<Violation> {
    let mut violations = Vec::new();
    for run in runs {
        let case = &run.case;
        let experiment = format!("{} over {}", case.scenario.name(), run.protocol);
        let mut fail = |message: String| violations.push(Violation { experiment: experiment.clone(), message });
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
        let late: Vec<_> = run.answers.iter().filter(|a| a.status == StatusCode::GATEWAY_TIMEOUT.as_u16() && a.latency > bound).collect();
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
        if let Some(after) = &run.left_behind {
            check_left_behind(case, after, &mut fail);
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

/// Inventory's stock accounts for the answers: what a 504 leaves behind is what the fault says
/// (stock taken when Inventory answered late *after* reserving, nothing when it was held before
/// deciding), and a retry under the same order id reserves nothing twice — once the retries
/// are answered, the stock taken is exactly the units of the orders confirmed.
fn check_left_behind(case: &super::Case, after: &super::aftermath::LeftBehindRow, fail: &mut impl FnMut(String)) {
    if case.fault.reply_delay.is_some() {
        if after.answered_504 > 0 && after.units_left_behind == 0 {
            fail(format!("{} orders answered 504 after Inventory had reserved them, yet no stock is missing", after.answered_504));
        }
        if after.units_taken_by_retries > 0 {
            fail(format!(
                "retrying orders Inventory had already reserved took {} more units: a retry did not find its first attempt's outcome",
                after.units_taken_by_retries
            ));
        }
    } else if after.units_taken != after.units_confirmed {
        fail(format!(
            "the load took {} units from Inventory, but its confirmed orders account for {}",
            after.units_taken, after.units_confirmed
        ));
    }
    let taken = after.units_taken + after.units_taken_by_retries;
    let confirmed = after.units_confirmed + after.units_confirmed_by_retries;
    if taken != confirmed {
        fail(format!(
            "after retrying the {} answers of 504 under their order ids ({} answered 201), Inventory has lost {taken} units \
             but the confirmed orders account for {confirmed}: a retry reserved twice, or an order was reserved without being confirmed",
            after.retried, after.retried_ok
        ));
    }
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
pub fn check_answers(experiment: &str, answers: &[Answered]) -> Vec<Violation> {
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
    if status == 0 {
        "no answer".into()
    } else {
        status.to_string()
    }
}
