//! Part B's CSV files, as typed rows: `async_rabbitmq_backlog.csv` (the outage's samples),
//! `async_rabbitmq_broker_restart.csv` (the broker restart's samples),
//! `async_rabbitmq_summary.csv` (one per experiment) and `async_rabbitmq_dead_letters.csv` (each
//! dead-lettered message), and how a run becomes them.

use campus::domain::OrderStatus;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Run;
use crate::reporting::csv::{self, Fixed, Row};
use crate::Mode;

pub const BACKLOG_CSV: &str = "async_rabbitmq_backlog.csv";
pub const BROKER_RESTART_CSV: &str = "async_rabbitmq_broker_restart.csv";
pub const SUMMARY_CSV: &str = "async_rabbitmq_summary.csv";
pub const DEAD_LETTERS_CSV: &str = "async_rabbitmq_dead_letters.csv";

/// One line of `async_rabbitmq_dead_letters.csv`: a message Inventory dead-lettered, with the
/// reason it gave (header `x-campus-reason`) and the body as it was published (lossy UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    pub experiment: String,
    pub mode: Mode,
    pub reason: String,
    pub body: String,
}

impl Row for DeadLetterRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One line of `async_rabbitmq_broker_restart.csv`: one sample of the broker restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerRow {
    pub t_s: Fixed<3>,
    pub mode: Mode,
    /// 1 while RabbitMQ serves, 0 while it is down.
    pub broker_up: u8,
    pub accepted: u64,
    pub published: u64,
    /// Accepted and not yet published: waiting in Order's outbox.
    pub outbox: u64,
    /// `OrderPlaced` ready in Inventory's queue; empty while the broker could not be asked.
    pub queue_depth: Option<u64>,
    pub reserved: u64,
    pub failed: u64,
    pub notified: u64,
}

impl Row for BrokerRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One line of `async_rabbitmq_backlog.csv`: one sample of the outage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BacklogRow {
    pub t_s: Fixed<3>,
    pub mode: Mode,
    pub queue_depth: u64,
    pub accepted: u64,
    pub published: u64,
    pub reserved: u64,
    pub failed: u64,
    pub notified: u64,
    pub dead_lettered: u64,
    /// 1 while Inventory runs, 0 while it is down.
    pub inventory_up: u8,
}

impl Row for BacklogRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One experiment in numbers: a line of `async_rabbitmq_summary.csv` and of the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub experiment: String,
    pub mode: Mode,
    pub orders: usize,
    pub reserved: usize,
    pub failed: usize,
    pub notified: usize,
    pub dead_lettered: usize,
    pub duplicates_injected: usize,
    pub repeats_absorbed: u64,
    pub double_reservations: u64,
    pub peak_backlog: u64,
    /// Only for the outage: seconds from Inventory's return to an empty queue.
    pub drain_s: Option<Fixed<2>>,
    pub refused: usize,
    /// Only for the outage: the median time Order took to answer 202 (accepted).
    pub accept_p50_ms: Option<Fixed<1>>,
    /// The outage's or the broker restart's window as recorded (seconds on the samples' clock):
    /// from the moment Inventory or the broker was taken away to the moment it served again.
    #[serde(default)]
    pub down_from_s: Option<Fixed<3>>,
    #[serde(default)]
    pub down_until_s: Option<Fixed<3>>,
    /// Only for the broker restart: from the broker's return to the first sample at which the
    /// relay had published again (the relay sitting out its retry backoff), as fine as the
    /// samples; `drain_s` minus this is the drain itself.
    #[serde(default)]
    pub retry_wait_s: Option<Fixed<3>>,
}

impl Row for Summary {
    fn mode(&self) -> Mode {
        self.mode
    }
}

impl Summary {
    pub fn of(run: &Run) -> Self {
        let count = |status: OrderStatus| run.end.orders.statuses.values().filter(|s| **s == status).count();
        let (outage, restart) = (run.outage(), run.broker_restart());
        let window = outage.map(|o| o.down_window_ms).or(restart.map(|r| r.down_window_ms));
        Summary {
            experiment: run.name().to_owned(),
            mode: run.mode,
            orders: run.accepted,
            reserved: count(OrderStatus::Reserved),
            failed: count(OrderStatus::Failed),
            notified: run.end.notified.len(),
            dead_lettered: run.end.dead_letters.len(),
            duplicates_injected: run.duplicates_injected(),
            repeats_absorbed: run.end.inventory.repeats,
            double_reservations: run.end.inventory.double_reservations,
            peak_backlog: outage.map(|o| o.peak_backlog).or(restart.map(|r| r.peak_backlog)).unwrap_or(0),
            drain_s: outage.and_then(|o| o.drain).or(restart.and_then(|r| r.drain)).map(|d| Fixed(d.as_secs_f64())),
            refused: run.refused,
            accept_p50_ms: outage.and_then(|o| o.accept_p50).map(|d| Fixed(d.as_secs_f64() * 1e3)),
            down_from_s: window.map(|(from, _)| Fixed(from as f64 / 1e3)),
            down_until_s: window.map(|(_, until)| Fixed(until as f64 / 1e3)),
            retry_wait_s: restart.and_then(|r| r.retry_wait()).map(|(_, by)| Fixed(by.as_secs_f64())),
        }
    }
}

pub fn write_csv(out: &Path, mode: Mode, runs: &[Run], summaries: &[Summary]) -> anyhow::Result<()> {
    let backlog = runs
        .iter()
        .filter_map(Run::outage)
        .flat_map(|o| &o.samples)
        .map(|s| BacklogRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            queue_depth: s.queue_depth,
            accepted: s.accepted,
            published: s.published,
            reserved: s.reserved,
            failed: s.failed,
            notified: s.notified,
            dead_lettered: s.dead_lettered,
            inventory_up: u8::from(s.inventory_up),
        })
        .collect();
    csv::merge(&out.join(BACKLOG_CSV), mode, backlog)?;
    let load = runs.iter().filter_map(Run::outage).flat_map(|o| crate::load::rows::rows("outage", mode, "amqp", &o.orders));
    crate::load::rows::write(out, campus::Model::AsyncRabbitmq, mode, load.collect())?;
    let restart = runs
        .iter()
        .filter_map(Run::broker_restart)
        .flat_map(|r| &r.samples)
        .map(|s| BrokerRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            broker_up: u8::from(s.broker_up),
            accepted: s.accepted,
            published: s.published,
            outbox: s.outbox(),
            queue_depth: s.queue_depth,
            reserved: s.reserved,
            failed: s.failed,
            notified: s.notified,
        })
        .collect();
    csv::merge(&out.join(BROKER_RESTART_CSV), mode, restart)?;
    let dead: Vec<DeadLetterRow> = runs
        .iter()
        .flat_map(|run| {
            run.end.dead_letters.iter().map(|d| DeadLetterRow {
                experiment: run.name().to_owned(),
                mode,
                reason: d.reason.clone(),
                body: String::from_utf8_lossy(&d.body).into_owned(),
            })
        })
        .collect();
    csv::merge(&out.join(DEAD_LETTERS_CSV), mode, dead)?;
    csv::merge(&out.join(SUMMARY_CSV), mode, summaries.to_vec())
}
