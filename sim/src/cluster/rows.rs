//! The cluster's CSV files, as typed rows: `cluster_summary.csv` (one line per run) and
//! `cluster_node_loss.csv` (the node loss's samples, one per second), and how runs become them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::async_rabbitmq::{BrokerSample, Run};
use crate::report::csv::{self, Fixed, Row};
use crate::Mode;

pub const SUMMARY_CSV: &str = "cluster_summary.csv";
pub const NODE_LOSS_CSV: &str = "cluster_node_loss.csv";

/// One run in numbers: a line of `cluster_summary.csv` and of the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `node-loss`, `scale-out N`, `scale-out N + crash`.
    pub experiment: String,
    /// The model the run exercised (`async-rabbitmq`).
    pub model: String,
    pub mode: Mode,
    /// Inventory instances.
    pub instances: usize,
    /// Orders accepted (202), and refused.
    pub orders: usize,
    pub refused: usize,
    /// Accepted orders with no outcome at Order at the end.
    pub lost: usize,
    /// Orders whose stock was taken more than once.
    pub double: u64,
    /// Deliveries Inventory answered from its store (redelivered after a crash or a failover).
    pub repeats: u64,
    /// scale-out: orders decided per second over the middle 80 % of the backlog, in total and
    /// per instance.
    pub orders_per_s: Option<u64>,
    pub per_instance: Option<u64>,
    /// node-loss: the longest time no order was decided while some waited (s, per 1 s sample).
    pub stall_s: Option<Fixed<1>>,
    /// scale-out: from the instances' start until the backlog was decided.
    pub drain_s: Option<Fixed<2>>,
}

impl Row for Summary {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One line of `cluster_node_loss.csv`: one sample of the node loss (every second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLossRow {
    pub t_s: Fixed<2>,
    pub mode: Mode,
    /// 1 while the node the services first used runs, 0 while it is down.
    pub node_up: u8,
    pub accepted: u64,
    /// Orders with an outcome at Order (reserved + failed).
    pub decided: u64,
    /// Accepted, not yet decided.
    pub waiting: u64,
    /// Accepted, not yet published: in Order's outbox.
    pub outbox: u64,
    pub notified: u64,
}

impl Row for NodeLossRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

fn decided(s: &BrokerSample) -> u64 {
    s.reserved + s.failed
}

/// The longest stretch of samples in which no order was decided while some waited (seconds).
pub fn longest_stall(samples: &[BrokerSample]) -> f64 {
    let (mut longest, mut since) = (0u64, None::<u64>);
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let stuck = decided(b) == decided(a) && a.accepted > decided(a);
        match (stuck, since) {
            (true, None) => since = Some(a.t_ms),
            (false, Some(t)) => {
                longest = longest.max(a.t_ms - t);
                since = None;
            }
            _ => {}
        }
        if let (true, Some(t)) = (stuck, since) {
            longest = longest.max(b.t_ms - t);
        }
    }
    longest as f64 / 1e3
}

impl Summary {
    pub fn of(run: &Run) -> Self {
        let statuses = run.end.orders.statuses.values();
        let lost = statuses.filter(|s| *s != "reserved" && *s != "failed").count();
        let scale = run.scale_out();
        let loss = run.node_loss();
        Summary {
            experiment: match scale {
                Some(s) => format!("scale-out {}{}", s.instances, if s.crashed.is_some() { " + crash" } else { "" }),
                None => run.name().to_owned(),
            },
            model: campus::Model::AsyncRabbitmq.name().to_owned(),
            mode: run.mode,
            instances: scale.map_or(1, |s| s.instances),
            orders: run.accepted,
            refused: run.refused,
            lost,
            double: run.end.inventory.double_reservations,
            repeats: run.end.inventory.repeats,
            orders_per_s: scale.map(|s| s.orders_per_s),
            per_instance: scale.map(|s| s.orders_per_s / s.instances as u64),
            stall_s: loss.map(|l| Fixed(longest_stall(&l.samples))),
            drain_s: scale.map(|s| Fixed(s.drain.as_secs_f64())),
        }
    }
}

pub fn write_csv(out: &Path, mode: Mode, runs: &[Run], summaries: &[Summary]) -> anyhow::Result<()> {
    let samples = runs
        .iter()
        .filter_map(Run::node_loss)
        .flat_map(|l| &l.samples)
        .map(|s| NodeLossRow {
            t_s: Fixed(s.t_ms as f64 / 1e3),
            mode,
            node_up: u8::from(s.broker_up),
            accepted: s.accepted,
            decided: decided(s),
            waiting: s.accepted.saturating_sub(decided(s)),
            outbox: s.outbox(),
            notified: s.notified,
        })
        .collect();
    csv::merge(&out.join(NODE_LOSS_CSV), mode, samples)?;
    csv::merge(&out.join(SUMMARY_CSV), mode, summaries.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64, accepted: u64, reserved: u64) -> BrokerSample {
        BrokerSample { t_ms, broker_up: true, accepted, published: accepted, queue_depth: Some(0), reserved, failed: 0, notified: reserved }
    }

    #[test]
    fn a_stall_is_the_longest_time_nothing_was_decided_while_orders_waited() {
        let samples = [at(0, 10, 10), at(1000, 20, 12), at(2000, 30, 12), at(3000, 40, 12), at(4000, 50, 40), at(5000, 50, 50), at(6000, 50, 50)];
        assert_eq!(longest_stall(&samples), 2.0, "from 1 s to 3 s; nothing waits at the end, so that is no stall");
    }
}
