//! The cluster's CSV files, as typed rows: `cluster_summary.csv` (one line per run) and
//! `cluster_node_loss.csv` (the node losses' samples, one per second and model), and how runs
//! become them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Run;
use crate::async_rabbitmq::BrokerSample;
use crate::reporting::csv::{self, Fixed, Row};
use crate::streaming_kafka::RestartSample;
use crate::Mode;
use campus::domain::OrderStatus;
use campus::Model;

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
    /// Part C: partitions of each topic (Part B: empty, one queue).
    pub partitions: Option<u32>,
    /// Orders accepted (202), and refused.
    pub orders: usize,
    pub refused: usize,
    /// Accepted orders with no outcome at Order at the end.
    pub lost: usize,
    /// Orders whose stock was taken more than once.
    pub double: u64,
    /// Part B: deliveries Inventory answered from its store (redelivered after a crash or a
    /// failover). Part C's Inventory answers a repeat from its changelog without counting it.
    pub repeats: Option<u64>,
    /// Part B: `OrderPlaced` Order's reconciler published again because the order had no
    /// verdict long after (the broker lost the message or its verdict; 0 in the simulation).
    pub republished: Option<u64>,
    /// scale-out: orders decided per second over the middle 80 % of the backlog, in total and
    /// per instance.
    pub orders_per_s: Option<u64>,
    pub per_instance: Option<u64>,
    /// Part C scale-out: decisions written out of their partition's order (a log keeps the
    /// order per key: 0). Part B gives order up and does not count it.
    pub out_of_order: Option<u64>,
    /// node-loss: the longest time no order was decided while some waited (s, per 1 s sample;
    /// Part C: Inventory's read position did not move while it had records to read).
    pub stall_s: Option<Fixed<1>>,
    /// scale-out: from the instances' start until the backlog was decided.
    pub drain_s: Option<Fixed<2>>,
    /// A node loss's window as recorded (seconds on the samples' clock): from the moment the
    /// node was taken away to the moment it served again. The figures shade exactly this.
    #[serde(default)]
    pub down_from_s: Option<Fixed<3>>,
    #[serde(default)]
    pub down_until_s: Option<Fixed<3>>,
}

impl Row for Summary {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// One line of `cluster_node_loss.csv`: one sample of a node loss (every second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLossRow {
    /// `async-rabbitmq` or `streaming-kafka`.
    pub model: String,
    pub t_s: Fixed<3>,
    pub mode: Mode,
    /// 1 while the node the services first used runs, 0 while it is down.
    pub node_up: u8,
    /// Part B: orders accepted; Part C: events appended.
    pub accepted: u64,
    /// Part B: orders with an outcome at Order (reserved + failed).
    pub decided: Option<u64>,
    /// Part B: accepted, not yet decided; Part C: records Inventory has yet to read (empty
    /// while the cluster could not be asked).
    pub waiting: Option<u64>,
    /// Part B: accepted, not yet published (in Order's outbox).
    pub outbox: Option<u64>,
    pub notified: Option<u64>,
    /// Part C: records Analytics has yet to read.
    pub analytics_lag: Option<u64>,
}

impl Row for NodeLossRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

fn decided(s: &BrokerSample) -> u64 {
    s.reserved + s.failed
}

/// One sample as the stall sees it: when, how far the work has got (`None`: unknown), and
/// whether work was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub t_ms: u64,
    pub done: Option<u64>,
    pub waiting: bool,
}

impl Progress {
    /// Part B: orders decided, with orders accepted and not yet decided.
    pub fn of_messaging(s: &BrokerSample) -> Self {
        Progress { t_ms: s.t_ms, done: Some(decided(s)), waiting: s.accepted > decided(s) }
    }

    /// Part C: Inventory's read position (records appended less those it has yet to read), with
    /// records to read.
    pub fn of_streaming(s: &RestartSample) -> Self {
        Progress { t_ms: s.t_ms, done: s.inventory_lag.map(|lag| s.produced.saturating_sub(lag)), waiting: s.inventory_lag != Some(0) }
    }
}

/// The longest stretch of samples in which the work did not move while some waited (seconds).
pub fn longest_stall(samples: &[Progress]) -> f64 {
    let (mut longest, mut since) = (0u64, None::<u64>);
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let stuck = a.waiting && (b.done.is_none() || b.done <= a.done);
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
        match run {
            Run::Messaging(run) => {
                let statuses = run.end.orders.statuses.values();
                let lost = statuses.filter(|s| **s == OrderStatus::Accepted).count();
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
                    partitions: None,
                    orders: run.accepted,
                    refused: run.refused,
                    lost,
                    double: run.end.inventory.double_reservations,
                    repeats: Some(run.end.inventory.repeats),
                    republished: Some(run.end.orders.stats.republished),
                    orders_per_s: scale.map(|s| s.orders_per_s),
                    per_instance: scale.map(|s| s.orders_per_s / s.instances as u64),
                    out_of_order: None,
                    stall_s: loss.map(|l| Fixed(longest_stall(&l.samples.iter().map(Progress::of_messaging).collect::<Vec<_>>()))),
                    drain_s: scale.map(|s| Fixed(s.drain.as_secs_f64())),
                    down_from_s: loss.map(|l| Fixed(l.down_window_ms.0 as f64 / 1e3)),
                    down_until_s: loss.map(|l| Fixed(l.down_window_ms.1 as f64 / 1e3)),
                }
            }
            Run::Streaming(run) => {
                let decisions = run.decisions.as_ref();
                let scale = run.scale_out();
                Summary {
                    experiment: match scale {
                        Some((s, ..)) => format!("scale-out {}{}", s.instances, if s.crashed.is_some() { " + crash" } else { "" }),
                        None => run.name().to_owned(),
                    },
                    model: campus::Model::StreamingKafka.name().to_owned(),
                    mode: run.mode,
                    instances: scale.map_or(1, |(s, ..)| s.instances),
                    partitions: Some(scale.map_or(campus::transport::log::PARTITIONS, |(_, p, _)| p)),
                    orders: run.events,
                    refused: 0,
                    lost: decisions.map_or(run.events, |d| d.lost),
                    double: decisions.map_or(0, |d| d.duplicates as u64),
                    repeats: None,
                    republished: None,
                    orders_per_s: scale.map(|(s, ..)| s.orders_per_s),
                    per_instance: scale.map(|(s, ..)| s.orders_per_s / s.instances as u64),
                    out_of_order: scale.map(|(_, _, o)| o),
                    stall_s: run
                        .node_loss()
                        .map(|l| Fixed(longest_stall(&l.samples.iter().map(Progress::of_streaming).collect::<Vec<_>>()))),
                    drain_s: scale.map(|(s, ..)| Fixed(s.drain.as_secs_f64())),
                    down_from_s: run.node_loss().map(|l| Fixed(l.down_window_ms.0 as f64 / 1e3)),
                    down_until_s: run.node_loss().map(|l| Fixed(l.down_window_ms.1 as f64 / 1e3)),
                }
            }
        }
    }
}

/// `model`'s scale-out rows without a crash (over `partitions`, Part C), by instance count:
/// (instances, orders/s).
pub fn throughput(summaries: &[Summary], model: Model, partitions: Option<u32>) -> Vec<(usize, u64)> {
    summaries
        .iter()
        .filter(|s| s.model == model.name() && s.experiment.starts_with("scale-out") && !s.experiment.ends_with("crash"))
        .filter(|s| partitions.is_none() || s.partitions == partitions)
        .filter_map(|s| Some((s.instances, s.orders_per_s?)))
        .collect()
}

/// The partition counts Part C's scale-out ran over.
pub fn partition_counts(summaries: &[Summary]) -> Vec<u32> {
    let mut counts: Vec<u32> = summaries
        .iter()
        .filter(|s| s.model == Model::StreamingKafka.name() && s.experiment.starts_with("scale-out"))
        .filter_map(|s| s.partitions)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

fn node_loss_rows(run: &Run, mode: Mode) -> Vec<NodeLossRow> {
    let t_s = |t_ms: u64| Fixed(t_ms as f64 / 1e3);
    match run {
        Run::Messaging(run) => run.node_loss().map_or(Vec::new(), |l| {
            l.samples
                .iter()
                .map(|s| NodeLossRow {
                    model: campus::Model::AsyncRabbitmq.name().to_owned(),
                    t_s: t_s(s.t_ms),
                    mode,
                    node_up: u8::from(s.broker_up),
                    accepted: s.accepted,
                    decided: Some(decided(s)),
                    waiting: Some(s.accepted.saturating_sub(decided(s))),
                    outbox: Some(s.outbox()),
                    notified: Some(s.notified),
                    analytics_lag: None,
                })
                .collect()
        }),
        Run::Streaming(run) => run.node_loss().map_or(Vec::new(), |l| {
            l.samples
                .iter()
                .map(|s| NodeLossRow {
                    model: campus::Model::StreamingKafka.name().to_owned(),
                    t_s: t_s(s.t_ms),
                    mode,
                    node_up: u8::from(s.broker_up),
                    accepted: s.produced,
                    waiting: s.inventory_lag,
                    analytics_lag: s.analytics_lag,
                    ..NodeLossRow::default()
                })
                .collect()
        }),
    }
}

pub fn write_csv(out: &Path, mode: Mode, runs: &[Run], summaries: &[Summary]) -> anyhow::Result<()> {
    let samples = runs.iter().flat_map(|run| node_loss_rows(run, mode)).collect();
    csv::merge(&out.join(NODE_LOSS_CSV), mode, samples)?;
    csv::merge(&out.join(SUMMARY_CSV), mode, summaries.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64, accepted: u64, reserved: u64) -> Progress {
        Progress::of_messaging(&BrokerSample {
            t_ms,
            broker_up: true,
            accepted,
            published: accepted,
            queue_depth: Some(0),
            reserved,
            failed: 0,
            notified: reserved,
        })
    }

    #[test]
    fn a_stall_is_the_longest_time_nothing_was_decided_while_orders_waited() {
        let samples =
            [at(0, 10, 10), at(1000, 20, 12), at(2000, 30, 12), at(3000, 40, 12), at(4000, 50, 40), at(5000, 50, 50), at(6000, 50, 50)];
        assert_eq!(longest_stall(&samples), 2.0, "from 1 s to 3 s; nothing waits at the end, so that is no stall");
    }

    #[test]
    fn on_the_log_a_stall_counts_the_seconds_the_lag_could_not_be_read() {
        let lag = |t_ms: u64, produced: u64, lag: Option<u64>| {
            Progress::of_streaming(&RestartSample {
                t_ms,
                broker_up: true,
                produced,
                inventory_lag: lag,
                analytics_lag: lag,
                decided: None,
            })
        };
        let samples = [lag(0, 100, Some(10)), lag(1000, 200, None), lag(2000, 300, None), lag(3000, 300, Some(5)), lag(4000, 300, Some(0))];
        assert_eq!(longest_stall(&samples), 2.0, "unknown at 1 s and 2 s; by 3 s the read position (295) has moved past 0 s's (90)");
    }
}
