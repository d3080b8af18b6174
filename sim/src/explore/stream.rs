//! Part C's property: whatever the schedule — an `OrderPlaced` appended twice, Inventory or
//! Analytics crashing at any point of a batch, Analytics' offsets reset (a replay) at any
//! moment, Analytics throttled — Inventory decides every order once (no stock taken twice), and
//! Analytics' metrics once it has caught up equal those computed directly from the workload
//! (orders per minute of event time) and Inventory's decisions (reserved / failed per minute).
//!
//! The services are the production producer and consumers of `campus::services` over
//! `SimLog`, with the crashes applied by [`CrashingLog`] — for Inventory at every point of its
//! transaction. A crashed member's task is aborted (its memory is gone); after the session
//! timeout the log evicts it and a new Inventory restores its state from the changelog. What
//! Inventory decided is counted by a reader that is not Inventory (`read_committed`, over
//! `inventory-events`): each order exactly once. Analytics keeps its aggregate in
//! memory, so a new Analytics member rebuilds it: its group is reset to the beginning (once the
//! dead member is gone: Kafka refuses a reset while a group has members) and it starts from an
//! empty state — the same path as a replay.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use campus::domain::{Envelope, Event, Items, Order, OrderPlaced, OrderRequest, StudentId};
use campus::faults::silence::SilencedLog;
use campus::host::Transport;
use campus::services::analytics::{Metrics, MinuteMetrics, MINUTE_MS};
use campus::services::order::OrderIds;
use campus::store::InventoryStats;
use campus::streaming_kafka::api::BulkAppended;
use campus::streaming_kafka::consumers::INVENTORY_GROUP;
use campus::streaming_kafka::merge::WATERMARK_HEADER;
use campus::transport::log::{partition_for, ConsumerId, EventLog, LogError, Outgoing, Topic};
use campus::{Model, Service};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{
    each_left_out, items_strategy, items_text, window_strategy, without_order_at, without_order_named, Break, Business, Outcome, Window,
};
use crate::client::post_json;
use crate::fault::log::{CrashingLog, LogCrash};
use crate::fault::queue::CrashPoint;
use crate::fault::served::ServedFaults;
use crate::hosts::Hosts;
use crate::simulator::log::SimLog;
use crate::simulator::world::{Scope, World, SESSION_TIMEOUT};
use crate::streaming_kafka::experiments::poison_records;
use crate::streaming_kafka::{decisions, expected_orders_per_minute, invariants, Config, Deployment, Detail, Run, ANALYTICS_GROUP};
use crate::violation::Violation;

/// What each `Fault::Poison` kind is (the order of `poison_records`).
const POISON_KINDS: [&str; 3] = ["not JSON", "wrong schema", "unknown version"];

/// Orders are appended this far apart.
const ORDER_GAP_MS: u64 = 10;
/// Records per poll: small, so that a schedule's few orders span several batches.
pub(super) const BATCH: usize = 4;
const SETTLE_WITHIN: Duration = Duration::from_secs(300);
/// How often the harness looks whether a run has settled. A look is five calls of the log;
/// a simulated run often waits out the session timeout before it can settle, and looking ten
/// times a second meanwhile was about a tenth of its cost. Half a second later is all a real
/// run's verdict waits more.
const LOOK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consumer {
    Inventory,
    Analytics,
}

impl Consumer {
    pub(super) fn group(self) -> &'static str {
        match self {
            Consumer::Inventory => INVENTORY_GROUP,
            Consumer::Analytics => ANALYTICS_GROUP,
        }
    }

    /// The service whose consumer it is.
    pub(super) fn service(self) -> Service {
        match self {
            Consumer::Inventory => Service::Inventory,
            Consumer::Analytics => Service::Analytics,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The order's `OrderPlaced` is appended again `after_ms` after the original.
    Duplicate { order: usize, after_ms: u64 },
    /// The consumer's member dies at `point` of its group's `batch`-th poll.
    Crash { consumer: Consumer, batch: u32, point: CrashPoint },
    /// Analytics stops, its group is reset to the beginning, and it recomputes (a replay).
    Reset { at_ms: u64 },
    /// A malformed record (`kind` 0: not JSON, 1: wrong schema, 2: unknown version) appended
    /// to `order-events` at `at_ms`: Inventory must dead-letter it and go on.
    Poison { at_ms: u64, kind: u8 },
    /// A broker of the cluster dies at `at_ms`: its clients are without a log until its
    /// partitions' leadership has moved (the world's node loss).
    NodeLoss { at_ms: u64 },
    /// Inventory (every instance) is killed at `at_ms` and started again `for_ms` later — or
    /// once the group has evicted its dead members (the session timeout), if that is later:
    /// the producer goes on, the orders wait in the log (the `outage` experiment).
    Down { at_ms: u64, for_ms: u64 },
    /// The consumer's fetches go silent at `at_ms` (a client that did not come back after a
    /// broker loss): it stays in its group and reads nothing until it is replaced.
    Stall { consumer: Consumer, at_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOrder {
    pub items: Items,
    /// The minute of event time the order was placed in.
    pub minute: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub stock: u32,
    /// Appended 10 ms apart.
    pub orders: Vec<StreamOrder>,
    /// Analytics reads at most this many records per second.
    pub throttle_per_s: Option<u32>,
    pub faults: Vec<Fault>,
    /// The broker (Kafka) down for a window: every call fails until it is back; then the
    /// consumers read on from their groups' committed offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_down: Option<Window>,
    /// Inventory instances. One decides every partition in event-time order from one stock;
    /// two or three are scaled out (`services::partitioned`): members of one group, each
    /// partition its own stock, decided in offset order, and a member's crash a rebalance.
    #[serde(default = "super::one", skip_serializing_if = "super::is_one")]
    pub inventories: u8,
    /// The broker (Kafka) hung for a window: connections stay open, nothing answers, nothing
    /// is lost; a hang longer than the session timeout (6 s) rebalances every group when it
    /// ends (real: its JVM SIGSTOPped). Never with `broker_down` in one schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_hang: Option<Window>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let throttle = self.throttle_per_s.map_or("not throttled".to_owned(), |r| format!("throttled to {r} records/s"));
        if self.inventories > 1 {
            writeln!(
                f,
                "{} Inventory instances in one group, each partition {} of each item; Analytics {throttle}",
                self.inventories, self.stock
            )?;
        } else {
            writeln!(f, "stock {} of each item; Analytics {throttle}", self.stock)?;
        }
        for (i, o) in self.orders.iter().enumerate() {
            writeln!(f, "  order #{i} appended at {} ms, event minute {}: {}", i as u64 * ORDER_GAP_MS, o.minute, items_text(&o.items))?;
        }
        if let Some(w) = &self.broker_down {
            writeln!(f, "  the broker (Kafka) down at {} ms for {} ms", w.at_ms, w.for_ms)?;
        }
        if let Some(w) = &self.broker_hang {
            writeln!(f, "  the broker (Kafka) hangs at {} ms for {} ms (connections open, nothing answers)", w.at_ms, w.for_ms)?;
        }
        for fault in &self.faults {
            match fault {
                Fault::Duplicate { order, after_ms } => {
                    writeln!(f, "  OrderPlaced of order #{} appended again {after_ms} ms later", order % self.orders.len())?
                }
                Fault::Crash { consumer, batch, point } => writeln!(f, "  {consumer:?} crashes {} on its batch #{batch}", point.as_str())?,
                Fault::Reset { at_ms } => writeln!(f, "  Analytics reset to the beginning (replay) at {at_ms} ms")?,
                Fault::Poison { at_ms, kind } => {
                    writeln!(f, "  a malformed record ({}) appended at {at_ms} ms", POISON_KINDS[*kind as usize % 3])?
                }
                Fault::NodeLoss { at_ms } => writeln!(f, "  a Kafka broker lost at {at_ms} ms (its partitions move to the others)")?,
                Fault::Down { at_ms, for_ms } => writeln!(f, "  Inventory down at {at_ms} ms for {for_ms} ms")?,
                Fault::Stall { consumer, at_ms } => writeln!(f, "  {consumer:?}'s fetches go silent at {at_ms} ms")?,
            }
        }
        Ok(())
    }
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    let inventory_point = prop::sample::select(vec![CrashPoint::BeforeCommit, CrashPoint::BeforePublish, CrashPoint::BeforeAck]);
    let analytics_point = prop::sample::select(vec![CrashPoint::BeforeCommit, CrashPoint::BeforeAck]);
    prop_oneof![
        (0usize..8, 0u64..300).prop_map(|(order, after_ms)| Fault::Duplicate { order, after_ms }),
        (1u32..=6, inventory_point).prop_map(|(batch, point)| Fault::Crash { consumer: Consumer::Inventory, batch, point }),
        (1u32..=6, analytics_point).prop_map(|(batch, point)| Fault::Crash { consumer: Consumer::Analytics, batch, point }),
        (0u64..2000).prop_map(|at_ms| Fault::Reset { at_ms }),
        (0u64..200, 0u8..3).prop_map(|(at_ms, kind)| Fault::Poison { at_ms, kind }),
        (0u64..300).prop_map(|at_ms| Fault::NodeLoss { at_ms }),
        (0u64..300, 100u64..15_000).prop_map(|(at_ms, for_ms)| Fault::Down { at_ms, for_ms }),
        (prop::sample::select(vec![Consumer::Inventory, Consumer::Analytics]), 0u64..300)
            .prop_map(|(consumer, at_ms)| Fault::Stall { consumer, at_ms }),
    ]
}

impl super::Schedule for Schedule {
    fn strategy() -> BoxedStrategy<Self> {
        // proptest shrinks a tuple's parts in order and does not come back: faults first, so
        // that the ones that do not matter are gone before the orders are cut down.
        (
            // One Inventory first: a `--break` of the single Inventory's design shrinks to it.
            1u8..=3,
            // The broker outage next: it is gone (or at its shortest) before the rest shrinks.
            window_strategy(),
            prop::collection::vec(fault_strategy(), 0..=4),
            prop::collection::vec((items_strategy(), 0u64..3).prop_map(|(items, minute)| StreamOrder { items, minute }), 1..=8),
            0u32..=5,
            proptest::option::weighted(0.3, 5u32..=50),
            // The hang last, on both sides of the session timeout, and only where the broker
            // does not go down (one or the other).
            proptest::option::of((0u64..300, 100u64..12_000).prop_map(|(at_ms, for_ms)| Window { at_ms, for_ms })),
        )
            .prop_map(|(inventories, broker_down, faults, orders, stock, throttle_per_s, hang)| Schedule {
                stock,
                orders,
                throttle_per_s,
                faults,
                broker_down,
                inventories,
                broker_hang: hang.filter(|_| broker_down.is_none()),
            })
            .boxed()
    }

    fn run_traced(&self, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
        run(self, seed, broken, traced)
    }

    /// The broker's windows, the throttle, each fault, each order but a last one (what is timed
    /// after it one gap earlier: [`super::without_order_at`]), the extra Inventory instances.
    fn without_one_part(&self) -> Vec<Self> {
        let windows = [
            self.broker_down.map(|_| Schedule { broker_down: None, ..self.clone() }),
            self.broker_hang.map(|_| Schedule { broker_hang: None, ..self.clone() }),
            self.throttle_per_s.map(|_| Schedule { throttle_per_s: None, ..self.clone() }),
            (self.inventories > 1).then(|| Schedule { inventories: 1, ..self.clone() }),
        ];
        let faults = each_left_out(&self.faults).map(|faults| Schedule { faults, ..self.clone() });
        let orders = (0..self.orders.len()).filter(|_| self.orders.len() > 1).map(|i| self.without_order(i));
        windows.into_iter().flatten().chain(faults).chain(orders).collect()
    }
}

impl Schedule {
    /// The producer's events: each order at its minute of event time, its id from `seed`.
    pub(super) fn events(&self, seed: u64) -> Vec<OrderPlaced> {
        let ids = OrderIds::seeded(seed);
        self.orders
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let request = OrderRequest::new(StudentId::parse(format!("s-{i:04}")).expect("valid"), o.items.clone());
                OrderPlaced { order: Order::new(ids.next(), request), placed_at_ms: o.minute * MINUTE_MS + i as u64 * ORDER_GAP_MS }
            })
            .collect()
    }

    /// The timeline: orders, then the faults at their times (an order before a fault at the
    /// same moment, so a duplicate always follows its original).
    fn timeline(&self) -> Vec<(u64, Step)> {
        let n = self.orders.len();
        let mut timeline: Vec<(u64, Step)> = (0..n).map(|i| (i as u64 * ORDER_GAP_MS, Step::Append(i))).collect();
        for fault in &self.faults {
            match *fault {
                Fault::Duplicate { order, after_ms } => {
                    timeline.push(((order % n) as u64 * ORDER_GAP_MS + after_ms, Step::Duplicate(order % n)))
                }
                Fault::Reset { at_ms } => timeline.push((at_ms, Step::Reset)),
                Fault::Poison { at_ms, kind } => timeline.push((at_ms, Step::Poison(kind))),
                Fault::NodeLoss { at_ms } => timeline.push((at_ms, Step::NodeLoss)),
                Fault::Down { at_ms, for_ms } => timeline.push((at_ms, Step::InventoryDown(Duration::from_millis(for_ms)))),
                Fault::Stall { consumer, at_ms } => timeline.push((at_ms, Step::Stall(consumer))),
                Fault::Crash { .. } => {}
            }
        }
        for (window, down, up) in
            [(&self.broker_down, Step::BrokerDown, Step::BrokerUp), (&self.broker_hang, Step::BrokerHang, Step::BrokerThaw)]
        {
            if let Some(w) = window {
                timeline.push((w.at_ms, down));
                timeline.push((w.at_ms + w.for_ms, up));
            }
        }
        timeline.sort_by_key(|(t, _)| *t);
        timeline
    }

    /// The same schedule without what the real deployment cannot be made to suffer, and what
    /// was taken out (empty: nothing): Inventory's crashes when it is scaled out (a crash at its
    /// group's n-th batch cannot be placed in one of several processes, each counting its own).
    /// On one Kafka broker, a broker loss. On the 3-broker cluster (`cluster`) the lab loses
    /// broker 1, once (a second loss would leave fewer in-sync replicas than
    /// `min.insync.replicas` 2 asks for, which the simulation does not model), and the whole
    /// broker going away or hanging is not played.
    pub fn for_real(&self, cluster: bool) -> (Schedule, String) {
        let mut dropped = Vec::new();
        let mut losses = 0;
        let faults = self
            .faults
            .iter()
            .copied()
            .filter(|f| {
                losses += usize::from(matches!(f, Fault::NodeLoss { .. }));
                let why = match f {
                    Fault::NodeLoss { .. } if !cluster => Some("the broker loss (one Kafka broker)"),
                    Fault::NodeLoss { .. } if losses > 1 => Some("a second broker loss (fewer in-sync replicas than the topics need)"),
                    Fault::Crash { consumer: Consumer::Inventory, .. } if self.inventories > 1 => {
                        Some("Inventory's crash (scaled out: its group's batch is not one process's)")
                    }
                    _ => None,
                };
                if let Some(why) = why.filter(|why| !dropped.contains(why)) {
                    dropped.push(why);
                }
                why.is_none()
            })
            .collect();
        let (broker_down, broker_hang) = if cluster { (None, None) } else { (self.broker_down, self.broker_hang) };
        if cluster && self.broker_down.is_some() {
            dropped.push("the broker outage (not played on the cluster)");
        }
        if cluster && self.broker_hang.is_some() {
            dropped.push("the broker hang (not played on the cluster)");
        }
        (Schedule { faults, broker_down, broker_hang, ..self.clone() }, dropped.join("; "))
    }

    /// The lab's faults of `service` in this schedule (a real process's crashes, its fetches
    /// silenced on a signal if the schedule silences them, `broken`'s safeguard off), keeping
    /// its batch count in `dir`.
    pub(super) fn served_faults(&self, service: Service, broken: Option<Break>, dir: &std::path::Path) -> ServedFaults {
        let group = match service {
            Service::Inventory => Some(Consumer::Inventory),
            Service::Analytics => Some(Consumer::Analytics),
            _ => None,
        };
        let log_crashes = self
            .faults
            .iter()
            .filter_map(|f| match *f {
                Fault::Crash { consumer, batch, point } if Some(consumer) == group => {
                    Some(LogCrash { group: consumer.group().to_owned(), batch, point })
                }
                _ => None,
            })
            .collect();
        let silenced = self.faults.iter().any(|f| matches!(*f, Fault::Stall { consumer, .. } if Some(consumer) == group));
        ServedFaults {
            log_crashes,
            count_file: Some(dir.join(format!("crash-count.{service}"))),
            silence: group.filter(|_| silenced).map(|g| g.group().to_owned()),
            ..Break::served(broken, service)
        }
    }

    /// The schedule without order `i`, what is timed after it one gap earlier
    /// ([`super::without_order_at`]).
    fn without_order(&self, i: usize) -> Schedule {
        let (n, earlier) = (self.orders.len(), |at_ms| without_order_at(at_ms, i, ORDER_GAP_MS));
        let faults = self
            .faults
            .iter()
            .map(|fault| match *fault {
                Fault::Duplicate { order, after_ms } => Fault::Duplicate { order: without_order_named(order, i, n), after_ms },
                Fault::Reset { at_ms } => Fault::Reset { at_ms: earlier(at_ms) },
                Fault::Poison { at_ms, kind } => Fault::Poison { at_ms: earlier(at_ms), kind },
                Fault::NodeLoss { at_ms } => Fault::NodeLoss { at_ms: earlier(at_ms) },
                Fault::Down { at_ms, for_ms } => Fault::Down { at_ms: earlier(at_ms), for_ms },
                Fault::Stall { consumer, at_ms } => Fault::Stall { consumer, at_ms: earlier(at_ms) },
                crash @ Fault::Crash { .. } => crash,
            })
            .collect();
        let mut orders = self.orders.clone();
        orders.remove(i);
        let window = |w: Option<Window>| w.map(|w| Window { at_ms: earlier(w.at_ms), ..w });
        Schedule { orders, faults, broker_down: window(self.broker_down), broker_hang: window(self.broker_hang), ..self.clone() }
    }
}

pub fn run(schedule: &Schedule, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
    let world = World::new(seed, Model::StreamingKafka, Scope::Explore).with_safeguards(super::safeguards(broken));
    // The log every service sees through the crashes of the schedule.
    let (inventory_crash, inventory_crashed) = flume::unbounded();
    let (analytics_crash, analytics_crashed) = flume::unbounded();
    let crashes = schedule.faults.iter().filter_map(|f| match *f {
        Fault::Crash { consumer, batch, point } => Some(LogCrash { group: consumer.group().to_owned(), batch, point }),
        _ => None,
    });
    let announce = BTreeMap::from([(INVENTORY_GROUP.to_owned(), inventory_crash), (ANALYTICS_GROUP.to_owned(), analytics_crash)]);
    let commit_first = (broken == Some(Break::CommitFirst)).then(|| INVENTORY_GROUP.to_owned());
    let mut log = CrashingLog::new(world.log(), crashes, announce, commit_first);
    if !traced {
        log = log.untraced();
    }
    let log = Arc::new(log);
    // The services read through the one place their fetches can be silenced.
    let silenced = Arc::new(SilencedLog::new(log.clone()));
    let world = world.with_transport({
        let silenced = silenced.clone();
        Arc::new(move |_: Service, _: usize| Transport::Log(silenced.clone()))
    });
    let crashed = Crashed { inventory: inventory_crashed, analytics: analytics_crashed };
    world.block_on(async { run_in_world(&world, schedule, seed, (&log, &silenced), crashed).await.unwrap_or_else(Outcome::failed) })
}

/// Where each group's crashes are announced (with the member that died).
struct Crashed {
    inventory: flume::Receiver<ConsumerId>,
    analytics: flume::Receiver<ConsumerId>,
}

/// One step of the timeline.
enum Step {
    /// The producer appends order #i's `OrderPlaced`.
    Append(usize),
    /// Order #i's record is appended again, unchanged.
    Duplicate(usize),
    /// A malformed record of this kind is appended.
    Poison(u8),
    Reset,
    BrokerDown,
    BrokerUp,
    BrokerHang,
    BrokerThaw,
    NodeLoss,
    /// Inventory killed, to be started again after this long.
    InventoryDown(Duration),
    /// The consumer's members go silent.
    Stall(Consumer),
}

/// The group coordinator evicts a dead member after the session timeout (the services'
/// `session.timeout.ms`, the world's one figure for it), once it is up.
async fn evict_after_timeout(log: &CrashingLog, member: ConsumerId) {
    tokio::time::sleep(SESSION_TIMEOUT).await;
    while let Err(e) = log.evict(member).await {
        if !e.is_transient() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What becomes of Inventory next: a member crashed, or the schedule takes it down.
enum Next {
    Crashed(ConsumerId),
    Down(Duration),
}

async fn next(crashed: &flume::Receiver<ConsumerId>, downs: &flume::Receiver<Duration>) -> Option<Next> {
    tokio::select! {
        biased;
        Ok(member) = crashed.recv_async() => Some(Next::Crashed(member)),
        Ok(away) = downs.recv_async() => Some(Next::Down(away)),
        else => None,
    }
}

/// Inventory taken down: away `away`, and at least until the group has evicted its dead
/// members (as Kafka's coordinator does after the session timeout).
async fn wait_out_down(sim: &SimLog, away: Duration) {
    tokio::time::sleep(away.max(SESSION_TIMEOUT)).await;
    sim.evict_group(INVENTORY_GROUP);
}

/// Inventory, restarted after each crash (a new process: it restores its state from the
/// changelog) once the log evicted the dead member, and after each time it is taken down.
async fn supervise_inventory(
    d: &Deployment<'_>,
    log: &CrashingLog,
    sim: &SimLog,
    crashed: flume::Receiver<ConsumerId>,
    downs: flume::Receiver<Duration>,
) {
    while let Some(next) = next(&crashed, &downs).await {
        if let Err(e) = d.kill(Service::Inventory, 0).await {
            log.note(format!("inventory could not be killed: {e}"));
        }
        match next {
            Next::Crashed(member) => evict_after_timeout(log, member).await,
            Next::Down(away) => wait_out_down(sim, away).await,
        }
        match d.start_inventory().await {
            Ok(()) => log.note("inventory restarted".into()),
            Err(e) => log.note(format!("inventory could not be restarted: {e}")),
        }
    }
}

/// Scaled-out Inventory: `n` instances in one group. A member that crashed is stuck where it
/// died (its call never returns); once the log evicts it, a new process takes its place.
async fn supervise_instances(
    d: &Deployment<'_>,
    log: &CrashingLog,
    sim: &SimLog,
    n: usize,
    crashed: flume::Receiver<ConsumerId>,
    downs: flume::Receiver<Duration>,
) {
    let mut restarts = 0;
    // The next free slot: a crashed member's process stays in its slot, stuck.
    let mut slot = n;
    while let Some(next) = next(&crashed, &downs).await {
        restarts += 1;
        let started = match next {
            Next::Crashed(member) => {
                evict_after_timeout(log, member).await;
                log.note(format!("a new inventory instance (restart #{restarts})"));
                slot += 1;
                d.start_member(slot - 1, &format!("restart-{restarts}")).await
            }
            Next::Down(away) => {
                for k in d.running(Service::Inventory) {
                    if let Err(e) = d.kill(Service::Inventory, k).await {
                        log.note(format!("inventory #{k} could not be killed: {e}"));
                    }
                }
                wait_out_down(sim, away).await;
                log.note(format!("{n} new inventory instances (restart #{restarts})"));
                let mut started = Ok(());
                for i in 0..n {
                    slot += 1;
                    started = started.and(d.start_member(slot - 1, &format!("restart-{restarts}-{i}")).await);
                }
                started
            }
        };
        if let Err(e) = started {
            log.note(format!("inventory could not be restarted: {e}"));
        }
    }
}

/// Analytics' member: after a crash (once the dead member is evicted) or a reset request, the
/// group goes back to the beginning and a new Analytics starts, its aggregate empty.
async fn supervise_analytics(
    d: &Deployment<'_>,
    log: &CrashingLog,
    throttle: Option<u32>,
    crashed: flume::Receiver<ConsumerId>,
    resets: flume::Receiver<()>,
) {
    loop {
        let dead = tokio::select! {
            biased;
            Ok(member) = crashed.recv_async() => Some(member),
            Ok(()) = resets.recv_async() => {
                // Asked to stop; it may still crash before it gets there.
                tokio::select! {
                    biased;
                    _ = d.stop_analytics() => None,
                    Ok(member) = crashed.recv_async() => Some(member),
                }
            }
            else => return,
        };
        if let Some(member) = dead {
            let _ = d.kill(Service::Analytics, 0).await;
            evict_after_timeout(log, member).await;
        }
        loop {
            match log.reset_to_beginning(ANALYTICS_GROUP, &Topic::EVENTS).await {
                Ok(()) => break,
                Err(e) if matches!(e, LogError::GroupActive { .. }) || e.is_transient() => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => {
                    log.note(format!("analytics reset failed: {e}"));
                    return;
                }
            }
        }
        if let Err(e) = d.start_analytics(throttle).await {
            log.note(format!("analytics could not be restarted: {e}"));
        }
        log.note("analytics group reset to the beginning; rebuilding".into());
    }
}

/// The metrics straight from the workload (orders per minute of event time) and Inventory's
/// decisions (order id → reserved?).
fn expected_metrics(events: &[OrderPlaced], decided: &BTreeMap<String, bool>) -> Metrics {
    let mut m = Metrics::default();
    for e in events {
        let minute = e.placed_at_ms / MINUTE_MS;
        let bucket: &mut MinuteMetrics = m.per_minute.entry(minute).or_default();
        bucket.orders += 1;
        m.total.orders += 1;
        match decided.get(e.order.order_id.as_str()) {
            Some(true) => {
                bucket.reserved += 1;
                m.total.reserved += 1;
            }
            Some(false) => {
                bucket.failed += 1;
                m.total.failed += 1;
            }
            None => {}
        }
    }
    m
}

/// Appends `record` outside the producer (a raw client), in a task of its own that waits out
/// an outage: 50 ms between attempts.
fn append_until_ok(log: Arc<dyn EventLog>, record: Outgoing) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        append_within(log.as_ref(), vec![record], None).await;
        Ok(())
    })
}

/// Appends `records`, again every 50 ms while the log refuses them, until it takes them or
/// `deadline` passes.
async fn append_within(log: &dyn EventLog, records: Vec<Outgoing>, deadline: Option<Instant>) {
    while log.append(records.clone()).await.is_err() && deadline.is_none_or(|d| Instant::now() < d) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_in_world(
    world: &World,
    schedule: &Schedule,
    seed: u64,
    (log, silenced): (&Arc<CrashingLog>, &SilencedLog),
    crashed: Crashed,
) -> anyhow::Result<Outcome> {
    // Part C's deployment, as the graded run starts it, small batches.
    let config = Config { stock: schedule.stock, batch: BATCH, ..Config::default() };
    let d = Deployment::start(Hosts::Sim(world), &config).await?;
    let inventories = usize::from(schedule.inventories.max(1));
    d.start_inventories(inventories).await?;
    d.start_analytics(schedule.throttle_per_s).await?;
    let sim = world.log();
    let (inventory_down, inventory_downs) = flume::unbounded();
    let (reset, resets) = flume::unbounded();
    let inventory: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> = if inventories == 1 {
        Box::pin(supervise_inventory(&d, log, &sim, crashed.inventory, inventory_downs))
    } else {
        Box::pin(supervise_instances(&d, log, &sim, inventories, crashed.inventory, inventory_downs))
    };
    let analytics = Box::pin(supervise_analytics(&d, log, schedule.throttle_per_s, crashed.analytics, resets));
    let timeline = drive(world, schedule, seed, (log, silenced), &d, (inventory_down, reset));
    let run = super::while_running(timeline, vec![inventory, analytics]).await;
    d.teardown().await;
    run
}

/// The schedule's timeline on the running deployment, the wait until it settles, and the
/// judgement.
async fn drive(
    world: &World,
    schedule: &Schedule,
    seed: u64,
    (log, silenced): (&Arc<CrashingLog>, &SilencedLog),
    d: &Deployment<'_>,
    (inventory_down, reset): (flume::Sender<Duration>, flume::Sender<()>),
) -> anyhow::Result<Outcome> {
    let events = schedule.events(seed);
    let note = |line: String| log.note(line);
    let stall = |consumer: Consumer| {
        let members = silenced.silence(consumer.group());
        log.note(format!("STALL {}: the fetches of members {members:?} go silent", consumer.group()));
    };
    let hands = Hands { note: &note, raw: log.clone(), inventory_down, reset, stall: &stall };
    play(schedule, &events, d, &hands, 1).await?;
    let sim: Arc<dyn EventLog> = world.log();
    let (violations, business) = judged(schedule, &events, d, sim.as_ref(), &note).await?;
    Ok(Outcome { violations, trace: log.take_trace(), events: log.events(), business })
}

/// What playing a step needs that a simulated and a real run provide each in their own way.
pub(super) struct Hands<'a> {
    /// A line of the run's trace.
    pub note: &'a dyn Fn(String),
    /// The harness's own client of the log (duplicates and malformed records, appended raw).
    pub raw: Arc<dyn EventLog>,
    /// Inventory's supervisor: take it down for this long.
    pub inventory_down: flume::Sender<Duration>,
    /// Analytics' supervisor: reset its group to the beginning (a replay).
    pub reset: flume::Sender<()>,
    /// Silences a consumer's fetches (the simulation's `SilencedLog`; a real process's own, on a
    /// signal).
    pub stall: &'a dyn Fn(Consumer),
}

/// Plays the schedule's timeline on `d`, `scale` milliseconds of the clock per millisecond of
/// the schedule (1 in the simulation's virtual time); returns once every append has landed (or
/// its producer gave up).
pub(super) async fn play(
    schedule: &Schedule,
    events: &[OrderPlaced],
    d: &Deployment<'_>,
    hands: &Hands<'_>,
    scale: u32,
) -> anyhow::Result<()> {
    let note = hands.note;
    let producer = d.observer();
    warm_up(hands).await;
    let t0 = Instant::now();
    // Every append runs in a task of its own (it waits out an outage while the timeline goes
    // on); all of them have landed before the run may count as settled.
    let mut appends: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    for (t, step) in schedule.timeline() {
        tokio::time::sleep_until(t0 + Duration::from_millis(t) * scale).await;
        match step {
            Step::Append(i) => {
                // The producer waits out an outage and appends again — in a task of its own, so
                // that the timeline (which brings the broker back) goes on.
                let (producer, event) = (producer.clone(), events[i].clone());
                appends.push(tokio::spawn(async move {
                    post_json::<_, BulkAppended>(producer.as_ref(), Service::Producer, "/orders", &[event]).await.map(drop)
                }));
            }
            Step::Duplicate(i) => {
                // The same record again, as a producer's retry after a lost acknowledgement sends it.
                let e = &events[i];
                let record =
                    Outgoing::new(Topic::OrderEvents, e.order.order_id.to_string(), Envelope::new(Event::OrderPlaced(e.clone())).encode());
                appends.push(append_until_ok(hands.raw.clone(), record));
            }
            Step::Poison(kind) => appends.push(append_until_ok(hands.raw.clone(), poison_records(3).swap_remove(kind as usize % 3))),
            Step::Reset => {
                note("reset requested".into());
                let _ = hands.reset.send(());
            }
            Step::BrokerDown => {
                note("the broker goes down".into());
                d.stop_broker().await?;
            }
            Step::BrokerUp => {
                note("the broker is back".into());
                d.start_broker().await?;
            }
            Step::BrokerHang => {
                note("the broker hangs".into());
                d.hang_broker().await?;
            }
            Step::BrokerThaw => {
                note("the broker answers again".into());
                d.thaw_broker().await?;
            }
            Step::InventoryDown(away) => {
                note(format!("inventory killed, away for {} ms", away.as_millis()));
                let _ = hands.inventory_down.send(away * scale);
            }
            Step::NodeLoss => {
                note("a broker of the cluster is lost".into());
                d.lose_node().await?;
            }
            Step::Stall(consumer) => (hands.stall)(consumer),
        }
    }
    for append in appends {
        // A producer that gave up (`--break no-reconnect`) leaves its order undecided: the
        // checks of `judged` say so.
        if let Ok(Err(e)) = append.await {
            note(format!("the producer gave up: {e}"));
        }
    }
    Ok(())
}

/// How long the warm-up waits for both groups to consume.
const WARM_UP_WITHIN: Duration = Duration::from_secs(60);

/// Both groups consuming before the first order: a real consumer is handed its partitions some
/// time after it starts (and then reads a backlog partition by partition), the simulated one at
/// once. A watermark at event time 0 on every partition of `order-events` (what the producer's
/// first append writes too), and a wait until Inventory's and Analytics' groups have both
/// committed past it.
async fn warm_up(hands: &Hands<'_>) {
    let log = &hands.raw;
    let partitions = log.partitions();
    let records: Vec<Outgoing> = (0..partitions)
        .map(|p| {
            let key = (0..)
                .map(|i| format!("warm-up-{i}"))
                .find(|k| partition_for(k.as_bytes(), partitions) == p)
                .expect("some key hits every partition");
            Outgoing::new(Topic::OrderEvents, key, bytes::Bytes::new()).with_header(WATERMARK_HEADER, "0")
        })
        .collect();
    let deadline = Instant::now() + WARM_UP_WITHIN;
    append_within(log.as_ref(), records, Some(deadline)).await;
    while Instant::now() < deadline {
        let consuming = async {
            let ends = log.end_offsets(Topic::OrderEvents).await?;
            Ok::<bool, LogError>(
                log.committed(INVENTORY_GROUP, Topic::OrderEvents).await? == ends
                    && log.committed(ANALYTICS_GROUP, Topic::OrderEvents).await? == ends,
            )
        };
        if consuming.await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (hands.note)(format!("warm-up: the groups were not consuming within {} s; the timeline starts anyway", WARM_UP_WITHIN.as_secs()));
}

/// What a run is judged by: the outcomes a reader finds in the log, Analytics' counts and one
/// Inventory's accounts (`None` scaled out, or unread).
struct Reading {
    decided: decisions::Decisions,
    metrics: Metrics,
    inventory: Option<InventoryStats>,
}

/// One look at the run: what it is judged by once it has settled — Inventory and Analytics
/// committed past every record there is; a reader that is not Inventory finds every order
/// decided; Analytics has seen every order and outcome; one Inventory has restored its state
/// (a restarted one answers `restoring` until then) — or `None`. Asked in order of cost, each
/// only once the one before holds: the groups' positions, Analytics' face (a request through
/// its Router), Inventory's, and the decisions (a read of the whole log). The log's error if it
/// did not answer: a failover may outlast the timeline, and nothing has settled while it lasts.
async fn settled_reading(
    schedule: &Schedule,
    events: &[OrderPlaced],
    d: &Deployment<'_>,
    reader: &dyn EventLog,
) -> Result<Option<Reading>, LogError> {
    let orders_end = reader.end_offsets(Topic::OrderEvents).await?;
    let positions = reader.committed(INVENTORY_GROUP, Topic::OrderEvents).await? == orders_end
        && reader.committed(ANALYTICS_GROUP, Topic::OrderEvents).await? == orders_end
        && reader.committed(ANALYTICS_GROUP, Topic::InventoryEvents).await? == reader.end_offsets(Topic::InventoryEvents).await?;
    if !positions {
        return Ok(None);
    }
    // Analytics restarting (a crash, a reset) has seen nothing yet.
    let n = events.len();
    let Some(report) = d.metrics().await.ok().filter(|m| (m.orders_seen, m.outcomes_seen) == (n, n)) else {
        return Ok(None);
    };
    let inventory = if schedule.inventories > 1 {
        None
    } else {
        match d.inventory_stats().await {
            Ok(stats) => Some(stats),
            Err(_) => return Ok(None),
        }
    };
    let decided = decisions::read(reader, events).await?;
    Ok((decided.lost == 0).then(|| Reading { decided, metrics: report.metrics(), inventory }))
}

/// Waits until the run settles (at most `SETTLE_WITHIN`), then judges it by what a reader that
/// is not Inventory finds in the log (`reader`) and what Analytics counts; the violations and
/// the business outcome.
pub(super) async fn judged(
    schedule: &Schedule,
    events: &[OrderPlaced],
    d: &Deployment<'_>,
    reader: &dyn EventLog,
    note: &dyn Fn(String),
) -> anyhow::Result<(Vec<Violation>, Business)> {
    let n = events.len();
    let deadline = Instant::now() + SETTLE_WITHIN;
    let (mut look, mut unanswered) = (None, None);
    while look.is_none() && Instant::now() < deadline {
        match settled_reading(schedule, events, d, reader).await {
            Ok(reading) => (look, unanswered) = (reading, None),
            Err(e) => unanswered = Some(e),
        }
        if look.is_none() {
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    let settled = look.is_some();
    note(match (settled, &unanswered) {
        (true, _) => "settled".into(),
        (false, None) => format!("not settled within {} s", SETTLE_WITHIN.as_secs()),
        (false, Some(e)) => format!("not settled within {} s; the log's last answer: {e}", SETTLE_WITHIN.as_secs()),
    });
    // Settled, the run is judged by what the settling look read: nothing runs between the two
    // (reading the whole log and Analytics' face a second time was about a twentieth of a
    // simulated run). Unsettled, it is read now as it is.
    let Reading { decided, metrics, inventory } = match look {
        Some(reading) => reading,
        None => Reading {
            decided: decisions::read(reader, events)
                .await
                .with_context(|| format!("reading the log after {} s unsettled", SETTLE_WITHIN.as_secs()))?,
            // Analytics may be restarting: it has counted nothing then.
            metrics: d.metrics().await.map_or(Metrics::default(), |m| m.metrics()),
            // Scaled out, the stock is per partition and each instance holds only some: checked
            // from the decisions instead. One Inventory may be restoring or down: that is the
            // violation then.
            inventory: if schedule.inventories > 1 { None } else { d.inventory_stats().await.ok() },
        },
    };
    let expected = expected_metrics(events, &decided.outcomes);
    let business = business(events, &decided, &metrics);
    let run = Run {
        mode: d.mode(),
        events: n,
        produce: Duration::ZERO,
        metrics: Some(metrics.clone()),
        expected_orders: expected_orders_per_minute(events),
        inventory,
        decisions: Some(decided),
        traced: Default::default(),
        detail: Detail::Explore,
    };
    let poisoned = schedule.faults.iter().filter(|f| matches!(f, Fault::Poison { .. })).count() as u64;
    let malformed = run.decisions.as_ref().map_or(0, |d| d.malformed);
    let mut violations = invariants::check(&run);
    if schedule.inventories > 1 {
        if let Some(d) = &run.decisions {
            violations.extend(invariants::stock_per_partition("explore", events, &d.outcomes, schedule.stock, reader.partitions()));
        }
    }
    violations.extend(invariants::analytics_matches("explore", &metrics, &expected));
    // More is fine (an append whose acknowledgement was lost is appended again); fewer is not.
    if malformed < poisoned {
        violations.push(Violation {
            experiment: "explore".into(),
            message: format!("{poisoned} malformed records appended, {malformed} in order-events"),
        });
    }
    if !settled {
        violations.push(Violation {
            experiment: "explore".into(),
            message: format!("not settled {} s after the last record was appended", SETTLE_WITHIN.as_secs()),
        });
    }
    Ok((violations, business))
}

/// What a finished run decided, by each order's place in the schedule: its decision, then the
/// units taken, the malformed records dead-lettered and Analytics' count of each minute.
fn business(events: &[OrderPlaced], decided: &decisions::Decisions, metrics: &Metrics) -> Business {
    let mut lines = Business::new();
    for (i, e) in events.iter().enumerate() {
        let decision = match decided.outcomes.get(e.order.order_id.as_str()) {
            Some(true) => "reserved",
            Some(false) => "failed",
            None => "undecided",
        };
        lines.insert(format!("order #{i}"), decision.to_owned());
    }
    lines.insert("stock taken".into(), format!("{} units", decided.reserved_units));
    lines.insert("malformed records dead-lettered".into(), decided.malformed.to_string());
    for (minute, m) in &metrics.per_minute {
        lines.insert(format!("analytics, minute {minute}"), format!("{} orders, {} reserved, {} failed", m.orders, m.reserved, m.failed));
    }
    lines
}
