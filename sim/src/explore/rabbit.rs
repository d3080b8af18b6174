//! Part B's property: whatever the schedule — `OrderPlaced` delivered twice, Inventory (any of
//! its 1–3 instances) or Notification crashing at any point of its handling, Inventory down for
//! a while, the broker down for a while, the broker node the services use lost (they fail over),
//! malformed messages on Inventory's queue — every accepted order ends in
//! exactly one terminal state, stock
//! is taken once per reserved order, each reserved order gets one notification, every malformed
//! message is dead-lettered and no good one is (`crate::async_rabbitmq::invariants`, the same
//! accounting as the experiments).
//!
//! The services are the production ones (`AsyncOrderService` and its relay, the consumers of
//! `campus::async_rabbitmq::consumer`, the SQLite stores in memory) over `SimQueue`, with the crashes
//! applied by [`CrashingQueue`]. Consumers take windows of up to the schedule's prefetch (1 to
//! 4) deliveries. A crashed
//! consumer's task is aborted and a new one starts on the same store 200 ms later. Several
//! Inventory instances compete for its queue and share its store, as they share PostgreSQL in
//! the real cluster; each sees the queue through a view of its own (its own deliveries, its
//! own crashes).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use campus::api::order::OrderAcceptedReply;
use campus::domain::{Envelope, Event, Items, Order, OrderId, OrderPlaced, OrderRequest, StudentId};
use campus::host::Transport;
use campus::store::{MemoryStores, Spare};
use campus::transport::queue::{MessageQueue, QueueName, Route};
use campus::{Model, Service};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{
    each_left_out, items_strategy, items_text, window_strategy, without_order_at, without_order_named, Break, Business, Outcome, Window,
};
use crate::async_rabbitmq::observe::read_final;
use crate::async_rabbitmq::{invariants, poison_bodies, Config, Deployment, Detail, Run};
use crate::fault::queue::{CrashPoint, CrashingQueue, QueueCrash};
use crate::fault::served::ServedFaults;
use crate::hosts::Hosts;
use crate::simulator::world::{Scope, World};
use crate::violation::Violation;
use crate::Mode;

/// Orders are accepted this far apart.
const ORDER_GAP_MS: u64 = 20;
/// A crashed consumer is back this long after it died.
pub(super) const RESTART_AFTER: Duration = Duration::from_millis(200);
/// Inventory instances, as the trace names them.
pub(super) const INSTANCE_NAMES: [&str; 3] = ["inventory", "inventory #1", "inventory #2"];
/// A run that has not settled this long after its last scheduled action has lost something.
pub(super) const SETTLE_WITHIN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consumer {
    Inventory,
    Notification,
}

impl Consumer {
    fn queue(self) -> QueueName {
        match self {
            Consumer::Inventory => QueueName::InventoryInbox,
            Consumer::Notification => QueueName::NotificationInbox,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The order's `OrderPlaced` is published again, `after_ms` after the order was accepted.
    Duplicate { order: usize, after_ms: u64 },
    /// The consumer (its instance `instance`, for Inventory) dies at `point` of its
    /// `delivery`-th delivery.
    Crash {
        consumer: Consumer,
        delivery: u32,
        point: CrashPoint,
        #[serde(default, skip_serializing_if = "is_zero")]
        instance: usize,
    },
    /// The broker node the services are connected to dies at `at_ms`: their connections close
    /// and they fail over to another node (the world's node loss).
    NodeLoss { at_ms: u64 },
    /// Inventory is down from `at_ms` for `for_ms`.
    Down { at_ms: u64, for_ms: u64 },
    /// A malformed message (one of the poison experiment's kinds) lands on Inventory's queue.
    Malformed { kind: usize, at_ms: u64 },
}

impl Fault {
    /// Whether it loses the broker node the services use.
    pub fn is_node_loss(&self) -> bool {
        matches!(self, Fault::NodeLoss { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Units of each item Inventory starts with.
    pub stock: u32,
    /// Orders accepted 20 ms apart.
    pub orders: Vec<Items>,
    pub faults: Vec<Fault>,
    /// The broker (RabbitMQ) down for a window: connections drop, unacked messages return,
    /// publishes fail until it is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_down: Option<Window>,
    /// Inventory instances competing for its queue (1 to 3).
    #[serde(default = "super::one", skip_serializing_if = "super::is_one")]
    pub inventories: usize,
    /// The broker (RabbitMQ) hung for a window: connections stay open, nothing answers, nothing
    /// is lost (real: its VM SIGSTOPped). Never with `broker_down` in one schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_hang: Option<Window>,
    /// The database the services' stores share down for a window (real: PostgreSQL stopped and
    /// started again, on the cluster): every store call fails meanwhile, nothing stored is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_down: Option<Window>,
    /// The broker (RabbitMQ) flapping: down and back again and again (real: stopped and
    /// started). Never with `broker_down` or `broker_hang` in one schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_flaps: Option<Flaps>,
    /// Each consumer's prefetch (1 to 4): the most deliveries one window of its handling takes,
    /// decided in one store transaction and acknowledged with one ack
    /// (`campus::async_rabbitmq::consumer`), so that a crash at any point of a window's
    /// handling is explored. A window is as large as the backlog the consumer finds.
    #[serde(default = "super::one", skip_serializing_if = "super::is_one")]
    pub prefetch: u16,
}

/// The broker going down [`FLAP_DOWN_MS`] and coming back [`FLAP_UP_MS`], `times` times from
/// `at_ms`. Each time, what a consumer holds unacknowledged goes back to its queue, and
/// RabbitMQ counts that return towards the message's `x-delivery-limit` (a channel closing
/// counts, as a nack does): a good message returned more often than the limit allows is
/// dead-lettered by the broker, which the checker calls a good message dead-lettered. It does
/// not happen here: a consumer waiting on its store (the database down) keeps its delivery and
/// subscribes again only once its handler is done, so a message it holds goes back once per
/// store outage, not once per flap; other deliveries are in hand for milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flaps {
    pub at_ms: u64,
    pub times: u32,
}

/// How long each of a flapping broker's outages lasts.
pub const FLAP_DOWN_MS: u64 = 100;
/// How long a flapping broker stays up between two outages.
pub const FLAP_UP_MS: u64 = 200;

impl Flaps {
    /// Each outage, in order.
    fn windows(self) -> impl Iterator<Item = Window> {
        (0..u64::from(self.times)).map(move |k| Window { at_ms: self.at_ms + k * (FLAP_DOWN_MS + FLAP_UP_MS), for_ms: FLAP_DOWN_MS })
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stock {} of each item", self.stock)?;
        if self.inventories > 1 {
            writeln!(f, "  {} Inventory instances share its queue and its store", self.inventories)?;
        }
        if self.prefetch > 1 {
            writeln!(f, "  each consumer takes windows of up to {} deliveries (prefetch)", self.prefetch)?;
        }
        for (i, items) in self.orders.iter().enumerate() {
            writeln!(f, "  order #{i} at {} ms: {}", i as u64 * ORDER_GAP_MS, items_text(items))?;
        }
        if let Some(w) = &self.broker_down {
            writeln!(f, "  the broker (RabbitMQ) down at {} ms for {} ms", w.at_ms, w.for_ms)?;
        }
        if let Some(w) = &self.broker_hang {
            writeln!(f, "  the broker (RabbitMQ) hangs at {} ms for {} ms (connections open, nothing answers)", w.at_ms, w.for_ms)?;
        }
        if let Some(w) = &self.database_down {
            writeln!(f, "  the stores' database (PostgreSQL) down at {} ms for {} ms", w.at_ms, w.for_ms)?;
        }
        if let Some(flaps) = &self.broker_flaps {
            writeln!(
                f,
                "  the broker (RabbitMQ) flaps {} times from {} ms: down {FLAP_DOWN_MS} ms, back {FLAP_UP_MS} ms",
                flaps.times, flaps.at_ms
            )?;
        }
        for fault in &self.faults {
            match fault {
                Fault::Duplicate { order, after_ms } => writeln!(
                    f,
                    "  OrderPlaced of order #{} published again {after_ms} ms after it was accepted",
                    order % self.orders.len()
                )?,
                Fault::Crash { consumer, delivery, point, instance } => {
                    let who = if *consumer == Consumer::Inventory && self.inventories > 1 {
                        format!(" #{}", instance % self.inventories)
                    } else {
                        String::new()
                    };
                    writeln!(f, "  {consumer:?}{who} crashes {} on its delivery #{delivery}", point.as_str())?
                }
                Fault::NodeLoss { at_ms } => writeln!(f, "  the broker node the services use lost at {at_ms} ms (they fail over)")?,
                Fault::Down { at_ms, for_ms } => writeln!(f, "  Inventory down at {at_ms} ms for {for_ms} ms")?,
                Fault::Malformed { kind, at_ms } => writeln!(f, "  a malformed message ({}) at {at_ms} ms", poison_bodies(5)[kind % 5].0)?,
            }
        }
        Ok(())
    }
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    let inventory_point = prop::sample::select(vec![CrashPoint::BeforeCommit, CrashPoint::BeforePublish, CrashPoint::BeforeAck]);
    let notification_point = prop::sample::select(vec![CrashPoint::BeforeCommit, CrashPoint::BeforeAck]);
    prop_oneof![
        (0usize..6, 0u64..500).prop_map(|(order, after_ms)| Fault::Duplicate { order, after_ms }),
        (1u32..=8, inventory_point, 0usize..3).prop_map(|(delivery, point, instance)| Fault::Crash {
            consumer: Consumer::Inventory,
            delivery,
            point,
            instance
        }),
        (1u32..=6, notification_point).prop_map(|(delivery, point)| Fault::Crash {
            consumer: Consumer::Notification,
            delivery,
            point,
            instance: 0
        }),
        (0u64..300).prop_map(|at_ms| Fault::NodeLoss { at_ms }),
        (0u64..300, 100u64..3000).prop_map(|(at_ms, for_ms)| Fault::Down { at_ms, for_ms }),
        (0usize..5, 0u64..300).prop_map(|(kind, at_ms)| Fault::Malformed { kind, at_ms }),
    ]
}

impl super::Schedule for Schedule {
    fn strategy() -> BoxedStrategy<Self> {
        // proptest shrinks a tuple's parts in order and does not come back: faults first, so
        // that the ones that do not matter are gone before the orders are cut down.
        // The broker outage first: it is gone (or at its shortest) before the rest shrinks.
        // Instances last: a counterexample keeps several only if it needs them.
        // The hang last but one, and only where the broker does not go down (one or the other);
        // the stores' database after them (it may go down in a schedule whose broker does too),
        // and the broker's flapping last of all, only where it neither goes down nor hangs
        // otherwise (one broker fault at a time). The prefetch after everything: a
        // counterexample keeps windows of several deliveries only if it needs them.
        let flaps = prop::option::weighted(0.3, (0u64..300, 2u32..=8).prop_map(|(at_ms, times)| Flaps { at_ms, times }));
        (
            window_strategy(),
            prop::collection::vec(fault_strategy(), 0..=4),
            prop::collection::vec(items_strategy(), 1..=6),
            0u32..=5,
            1usize..=3,
            window_strategy(),
            window_strategy(),
            flaps,
            1u16..=4,
        )
            .prop_map(|(broker_down, faults, orders, stock, inventories, hang, database_down, flaps, prefetch)| {
                let broker_hang = hang.filter(|_| broker_down.is_none());
                Schedule {
                    stock,
                    orders,
                    faults,
                    broker_down,
                    inventories,
                    broker_hang,
                    database_down,
                    broker_flaps: flaps.filter(|_| broker_down.is_none() && broker_hang.is_none()),
                    prefetch,
                }
            })
            .boxed()
    }

    fn run_traced(&self, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
        run(self, seed, broken, traced)
    }

    /// The broker's windows, its flapping (or one flap fewer), each fault, each order but a last
    /// one (what is timed after it one gap earlier: [`super::without_order_at`]), the extra
    /// Inventory instances.
    fn without_one_part(&self) -> Vec<Self> {
        let windows = [
            self.broker_down.map(|_| Schedule { broker_down: None, ..self.clone() }),
            self.broker_hang.map(|_| Schedule { broker_hang: None, ..self.clone() }),
            self.database_down.map(|_| Schedule { database_down: None, ..self.clone() }),
            self.broker_flaps.map(|_| Schedule { broker_flaps: None, ..self.clone() }),
            self.broker_flaps
                .filter(|f| f.times > 1)
                .map(|f| Schedule { broker_flaps: Some(Flaps { times: f.times - 1, ..f }), ..self.clone() }),
            (self.inventories > 1).then(|| Schedule { inventories: 1, ..self.clone() }),
            (self.prefetch > 1).then(|| Schedule { prefetch: 1, ..self.clone() }),
        ];
        let faults = each_left_out(&self.faults).map(|faults| Schedule { faults, ..self.clone() });
        let orders = (0..self.orders.len()).filter(|_| self.orders.len() > 1).map(|i| self.without_order(i));
        windows.into_iter().flatten().chain(faults).chain(orders).collect()
    }
}

/// A schedule as steps in time, and what it injects.
pub(super) struct Timeline {
    /// (ms from the start, the step), in order of time.
    pub steps: Vec<(u64, Action)>,
    pub duplicates: usize,
    pub malformed: u64,
}

impl Schedule {
    /// The timeline: orders, then the faults at their times (an order before a fault at the
    /// same moment, so a duplicate always follows its original).
    pub(super) fn timeline(&self) -> Timeline {
        let n = self.orders.len();
        let mut steps: Vec<(u64, Action)> = (0..n).map(|i| (i as u64 * ORDER_GAP_MS, Action::Accept(i))).collect();
        let (mut malformed, mut duplicates) = (0, 0);
        for fault in &self.faults {
            match *fault {
                Fault::Duplicate { order, after_ms } => {
                    duplicates += 1;
                    let order = order % n;
                    steps.push((order as u64 * ORDER_GAP_MS + after_ms, Action::Duplicate(order)));
                }
                Fault::Down { at_ms, for_ms } => {
                    steps.push((at_ms, Action::Down));
                    steps.push((at_ms + for_ms, Action::Up));
                }
                Fault::Malformed { kind, at_ms } => {
                    malformed += 1;
                    steps.push((at_ms, Action::Malformed(kind % 5)));
                }
                Fault::NodeLoss { at_ms } => steps.push((at_ms, Action::NodeLoss)),
                Fault::Crash { .. } => {}
            }
        }
        if let Some(w) = &self.broker_down {
            steps.push((w.at_ms, Action::BrokerDown));
            steps.push((w.at_ms + w.for_ms, Action::BrokerUp));
        }
        if let Some(w) = &self.broker_hang {
            steps.push((w.at_ms, Action::BrokerHang));
            steps.push((w.at_ms + w.for_ms, Action::BrokerThaw));
        }
        if let Some(w) = &self.database_down {
            steps.push((w.at_ms, Action::DatabaseDown));
            steps.push((w.at_ms + w.for_ms, Action::DatabaseUp));
        }
        for w in self.broker_flaps.iter().flat_map(|f| f.windows()) {
            steps.push((w.at_ms, Action::BrokerDown));
            steps.push((w.at_ms + w.for_ms, Action::BrokerUp));
        }
        steps.sort_by_key(|(t, _)| *t);
        Timeline { steps, duplicates, malformed }
    }

    /// The same schedule without what the real deployment cannot be made to suffer, and what
    /// was taken out (empty: nothing). On one broker node a node loss cannot happen, nor a
    /// restart of the stores' database (each service keeps a SQLite file of its own there). On
    /// the 3-node cluster, whose services share PostgreSQL, the lab loses node 1, once: a second
    /// loss would take the majority every quorum queue needs (the simulation, which fails over
    /// again, does not model that), and the whole broker going away or hanging is not played.
    pub fn for_real(&self, cluster: bool) -> (Schedule, String) {
        let mut dropped = Vec::new();
        let mut losses = 0;
        let faults: Vec<Fault> = self
            .faults
            .iter()
            .copied()
            .filter(|f| {
                let node_loss = f.is_node_loss();
                losses += usize::from(node_loss);
                !node_loss || (cluster && losses == 1)
            })
            .collect();
        match (cluster, losses) {
            (false, 1..) => dropped.push("the node loss (one broker node)"),
            (true, 2..) => dropped.push("the second node loss (it would take the cluster's majority)"),
            _ => {}
        }
        let (broker_down, broker_hang, broker_flaps) =
            if cluster { (None, None, None) } else { (self.broker_down, self.broker_hang, self.broker_flaps) };
        if cluster && self.broker_down.is_some() {
            dropped.push("the broker outage (not played on the cluster)");
        }
        if cluster && self.broker_flaps.is_some() {
            dropped.push("the broker flapping (not played on the cluster)");
        }
        if cluster && self.broker_hang.is_some() {
            dropped.push("the broker hang (not played on the cluster)");
        }
        let database_down = self.database_down.filter(|_| cluster);
        if !cluster && self.database_down.is_some() {
            dropped.push("the database restart (SQLite files here; played with --cluster, on PostgreSQL)");
        }
        (Schedule { faults, broker_down, broker_hang, database_down, broker_flaps, ..self.clone() }, dropped.join("; "))
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
                Fault::NodeLoss { at_ms } => Fault::NodeLoss { at_ms: earlier(at_ms) },
                Fault::Down { at_ms, for_ms } => Fault::Down { at_ms: earlier(at_ms), for_ms },
                Fault::Malformed { kind, at_ms } => Fault::Malformed { kind, at_ms: earlier(at_ms) },
                crash @ Fault::Crash { .. } => crash,
            })
            .collect();
        let window = |w: Option<Window>| w.map(|w| Window { at_ms: earlier(w.at_ms), ..w });
        let mut orders = self.orders.clone();
        orders.remove(i);
        Schedule {
            orders,
            faults,
            broker_down: window(self.broker_down),
            broker_hang: window(self.broker_hang),
            database_down: window(self.database_down),
            broker_flaps: self.broker_flaps.map(|f| Flaps { at_ms: earlier(f.at_ms), ..f }),
            ..self.clone()
        }
    }

    /// Whether the schedule loses the node the services use.
    pub(super) fn loses_a_node(&self) -> bool {
        self.faults.iter().any(Fault::is_node_loss)
    }

    /// The lab's faults of instance `instance` of `service` in this schedule (a real process's
    /// crashes, `broken`'s safeguard off), keeping its delivery count in `dir`.
    pub(super) fn served_faults(&self, service: Service, instance: usize, broken: Option<Break>, dir: &std::path::Path) -> ServedFaults {
        let inventories = self.inventories.max(1);
        let crashes = self
            .faults
            .iter()
            .filter_map(|f| match *f {
                Fault::Crash { consumer, delivery, point, instance: k } => {
                    let (mine, k) = match consumer {
                        Consumer::Inventory => (service == Service::Inventory, k % inventories),
                        Consumer::Notification => (service == Service::Notification, 0),
                    };
                    (mine && k == instance).then_some(QueueCrash { queue: consumer.queue(), instance: 0, delivery, point })
                }
                _ => None,
            })
            .collect();
        ServedFaults { crashes, count_file: Some(dir.join(format!("crash-count.{service}.{instance}"))), ..Break::served(broken, service) }
    }
}

/// What a finished run decided, by each order's place in the schedule (`accepted[i]` its id).
fn business(run: &Run, accepted: &[Option<(OrderId, OrderRequest)>]) -> Business {
    let mut lines = Business::new();
    for (i, order) in accepted.iter().enumerate() {
        let line = match order {
            Some((id, _)) => {
                let status = run.end.orders.statuses.get(id.as_str()).map_or("unknown", |s| s.as_str());
                let decided = run.end.inventory_outcomes.get(id.as_str()).map_or("nothing", String::as_str);
                let notified = run.end.notified.iter().filter(|n| *n == id.as_str()).count();
                format!("{status} at Order, {decided} at Inventory, notified {notified}×")
            }
            None => "not accepted".into(),
        };
        lines.insert(format!("order #{i}"), line);
    }
    let inventory = &run.end.inventory;
    lines.insert("stock taken".into(), format!("{} units for {} reservations", inventory.units_taken, inventory.stock_applications));
    lines.insert("dead letters".into(), run.end.dead_letters.len().to_string());
    lines
}

/// One step of the timeline.
pub(super) enum Action {
    Accept(usize),
    Duplicate(usize),
    Malformed(usize),
    Down,
    Up,
    BrokerDown,
    BrokerUp,
    BrokerHang,
    BrokerThaw,
    DatabaseDown,
    DatabaseUp,
    NodeLoss,
}

/// Restarts what crashes: a crash of `service`'s instance `instance` announced on `crashed`
/// kills it and starts it again `RESTART_AFTER` later (unless Inventory is down by then: it
/// starts with the others when the window ends).
async fn supervise(
    d: &Deployment<'_>,
    (service, instance, name): (Service, usize, &str),
    held_down: &Cell<bool>,
    chaos: &CrashingQueue,
    crashed: flume::Receiver<()>,
) {
    while crashed.recv_async().await.is_ok() {
        if let Err(e) = d.kill(service, instance).await {
            chaos.note(format!("{name} could not be killed: {e}"));
        }
        tokio::time::sleep(RESTART_AFTER).await;
        if service == Service::Inventory && held_down.get() {
            continue;
        }
        match d.start_instance(service, instance).await {
            Ok(()) => chaos.note(format!("{name} restarted")),
            Err(e) => chaos.note(format!("{name} could not be restarted: {e}")),
        }
    }
}

/// The harness's own publishes (a duplicate, a malformed message): like any publisher it
/// waits out a broker outage and publishes again — then in a task of its own, so that the
/// timeline (which brings the broker back) goes on meanwhile; while the broker hangs, the one
/// publish waits in such a task from the start (it is confirmed once the broker answers). A
/// run has not settled while one of them is still waiting ([`Publisher::waiting`]): it would
/// otherwise be judged before the message it owes was ever delivered.
///
/// A publish that failed may still have landed (the broker took the message and went away
/// before its confirm came back): publishing it again may deliver it twice. For a duplicate
/// that is one more repeat Inventory absorbs; a malformed message may be dead-lettered twice,
/// so the failed attempts at malformed ones are counted ([`Publisher::malformed_failed`]),
/// the most extra dead letters the checker allows.
pub(super) struct Publisher {
    mq: Arc<dyn MessageQueue>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// The broker hangs now (the timeline hung it).
    hung: std::sync::atomic::AtomicBool,
    malformed_failed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Publisher {
    pub(super) fn new(mq: Arc<dyn MessageQueue>) -> Self {
        Publisher { mq, waiting: Default::default(), hung: Default::default(), malformed_failed: Default::default() }
    }

    pub(super) fn set_hung(&self, hung: bool) {
        self.hung.store(hung, std::sync::atomic::Ordering::SeqCst);
    }

    /// Publishes a duplicate of an order's `OrderPlaced`.
    pub(super) async fn publish(&self, body: bytes::Bytes) {
        self.publish_counting(body, false).await
    }

    /// Publishes a malformed message, counting the attempts that failed.
    pub(super) async fn publish_malformed(&self, body: bytes::Bytes) {
        self.publish_counting(body, true).await
    }

    /// Publishes `body`, counting its failed attempts in [`Publisher::malformed_failed`] if
    /// `count_failed`.
    async fn publish_counting(&self, body: bytes::Bytes, count_failed: bool) {
        use std::sync::atomic::Ordering;
        let failed = self.malformed_failed.clone();
        let count_failure = move || {
            if count_failed {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        };
        let hung = self.hung.load(Ordering::SeqCst);
        if !hung {
            if self.mq.publish(Route::OrderPlaced, body.clone()).await.is_ok() {
                return;
            }
            count_failure();
        }
        let (mq, waiting) = (self.mq.clone(), self.waiting.clone());
        waiting.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if !hung {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            while mq.publish(Route::OrderPlaced, body.clone()).await.is_err() {
                count_failure();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            waiting.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Attempts at publishing a malformed message that failed: each may have landed too.
    pub(super) fn malformed_failed(&self) -> usize {
        self.malformed_failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Publishes still waiting for the broker.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

std::thread_local! {
    /// The last run's stores on this thread, handed to the next run emptied: creating three
    /// in-memory databases and their tables took about a third of a run.
    static SPARE: std::cell::RefCell<Option<Spare>> = const { std::cell::RefCell::new(None) };
}

/// Stores as new for a run: the spare ones emptied and restocked with `stock` units per item,
/// or new ones (opened by the world on first use).
fn fresh_stores(stock: u32, dedup: bool) -> anyhow::Result<MemoryStores> {
    Ok(match SPARE.take() {
        Some(spare) => MemoryStores::reusing(spare, stock, dedup)?,
        None => MemoryStores::default(),
    })
}

pub fn run(schedule: &Schedule, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
    let safeguards = super::safeguards(broken);
    let stores = match fresh_stores(schedule.stock, safeguards.dedup) {
        Ok(stores) => stores,
        Err(e) => return Outcome::failed(e),
    };
    let world = World::new(seed, Model::AsyncRabbitmq, Scope::Explore).with_stores(stores).with_safeguards(safeguards);
    // The queue every service sees through the crashes of the schedule: Inventory's instances
    // each through a view of their own (their own deliveries, their own crashes).
    let inventories = schedule.inventories.max(1);
    let (inventory_announce, inventory_crashed): (Vec<_>, Vec<_>) = (0..inventories).map(|_| flume::unbounded()).unzip();
    let (notification_crash, notification_crashed) = flume::unbounded();
    let crashes = schedule.faults.iter().filter_map(|f| match *f {
        Fault::Crash { consumer, delivery, point, instance } => {
            let instance = if consumer == Consumer::Inventory { instance % inventories } else { 0 };
            Some(QueueCrash { queue: consumer.queue(), instance, delivery, point })
        }
        _ => None,
    });
    let mut announce: BTreeMap<_, _> =
        inventory_announce.into_iter().enumerate().map(|(k, tx)| ((QueueName::InventoryInbox, k), tx)).collect();
    announce.insert((QueueName::NotificationInbox, 0), notification_crash);
    let mut chaos = CrashingQueue::new(world.queue(), crashes, announce, broken == Some(Break::AutoAck));
    if !traced {
        chaos = chaos.untraced();
    }
    let chaos = Arc::new(chaos);
    let transport = {
        let chaos = chaos.clone();
        move |service: Service, instance: usize| {
            let mq: Arc<dyn MessageQueue> = if service == Service::Inventory { Arc::new(chaos.view(instance)) } else { chaos.clone() };
            Transport::Queue(mq)
        }
    };
    let world = world.with_transport(Arc::new(transport));
    let crashed = Crashed { inventory: inventory_crashed, notification: notification_crashed };
    let outcome = world.block_on(run_in_world(&world, schedule, &chaos, crashed)).unwrap_or_else(Outcome::failed);
    if let Some(spare) = world.into_stores().and_then(MemoryStores::spare) {
        SPARE.set(Some(spare));
    }
    outcome
}

/// Where each consumer's crashes are announced.
struct Crashed {
    inventory: Vec<flume::Receiver<()>>,
    notification: flume::Receiver<()>,
}

async fn run_in_world(world: &World, schedule: &Schedule, chaos: &CrashingQueue, crashed: Crashed) -> anyhow::Result<Outcome> {
    // Part B's deployment, as the graded run starts it, at the schedule's prefetch.
    let config = Config { prefetch: schedule.prefetch, stock: schedule.stock, ..Config::default() };
    let d = Deployment::start(Hosts::Sim(world), &config, schedule.inventories.max(1)).await?;
    // Inventory is held down while any of the schedule's down windows covers the moment.
    let held_down = Cell::new(false);
    let mut supervisors: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> = Vec::new();
    for (k, crashed) in crashed.inventory.into_iter().enumerate() {
        supervisors.push(Box::pin(supervise(&d, (Service::Inventory, k, INSTANCE_NAMES[k]), &held_down, chaos, crashed)));
    }
    supervisors.push(Box::pin(supervise(&d, (Service::Notification, 0, "notification"), &held_down, chaos, crashed.notification)));
    let run = super::while_running(drive(world, schedule, chaos, &d, &held_down), supervisors).await;
    d.teardown().await;
    run
}

/// Plays `steps` on the running deployment `d`, each at its time × `scale` (wall or virtual
/// milliseconds) from now, telling `note` what it does: the one timeline of both runs of a
/// schedule, simulated and real. Returns each order's id and request, by its place.
pub(super) async fn play(
    schedule: &Schedule,
    steps: Vec<(u64, Action)>,
    d: &Deployment<'_>,
    (publisher, held_down): (&Publisher, &Cell<bool>),
    note: &dyn Fn(String),
    scale: u32,
) -> anyhow::Result<Played> {
    let t0 = Instant::now();
    let (observer, order_store) = (d.observer(), d.storage().order().await?);
    // Inventory's down windows may overlap: it is up when no window covers the moment. (The
    // broker has at most one window.)
    let mut down_windows = 0i32;
    let mut played = Played { accepted: vec![None; schedule.orders.len()], refused: 0 };
    let mut placed_at = vec![0; schedule.orders.len()];
    let mut database_down = false;
    // Inventory started again at a window's end: a real process started while the database is
    // down waits for it before it reports READY, and the timeline (which brings the database
    // back) must go on meanwhile.
    let mut starting: Vec<Starting<'_>> = Vec::new();
    for (t, action) in steps {
        let at = t0 + Duration::from_millis(t * u64::from(scale));
        loop {
            // In this order, always (the simulation replays a seed to the same trace).
            tokio::select! {
                biased;
                started = first_done(&mut starting), if !starting.is_empty() => started?,
                _ = tokio::time::sleep_until(at) => break,
            }
        }
        match action {
            Action::Accept(i) => {
                let request = OrderRequest::new(StudentId::parse(format!("s-{i:04}"))?, schedule.orders[i].clone());
                let reply = observer.post_json(Service::Order, "/order", &request).await?;
                if reply.status() == http::StatusCode::SERVICE_UNAVAILABLE {
                    // While the database is down the student is told so, and the order is not
                    // theirs to expect (the checks count accepted orders); at any other time
                    // Order must accept.
                    note(format!("order #{i} refused: {}", String::from_utf8_lossy(reply.body())));
                    played.refused += usize::from(!database_down);
                    continue;
                }
                anyhow::ensure!(
                    reply.status().is_success(),
                    "POST /order answered {}: {}",
                    reply.status(),
                    String::from_utf8_lossy(reply.body())
                );
                let id = serde_json::from_slice::<OrderAcceptedReply>(reply.body())?.order_id;
                note(format!("order #{i} accepted as {id}"));
                // Read now, while the store answers (the timeline takes the database down
                // only as a step of its own): the duplicate carries the same time.
                let record = order_store.get(id.as_str()).await?.expect("accepted orders are stored");
                played.accepted[i] = Some((id, request));
                placed_at[i] = record.placed_at_ms;
            }
            Action::Duplicate(i) => {
                let Some((id, request)) = played.accepted[i].clone() else {
                    note(format!("no duplicate of order #{i}: it was refused"));
                    continue;
                };
                let event = Event::OrderPlaced(OrderPlaced { order: Order::new(id, request), placed_at_ms: placed_at[i] });
                note(format!("duplicate of order #{i}"));
                publisher.publish(Envelope::new(event).encode().into()).await;
            }
            Action::Malformed(kind) => {
                let (label, body) = poison_bodies(5).swap_remove(kind);
                note(format!("malformed message ({label})"));
                publisher.publish_malformed(body.into()).await;
            }
            Action::Down => {
                down_windows += 1;
                held_down.set(true);
                for name in &INSTANCE_NAMES[..d.inventories_running()] {
                    note(format!("{name} down"));
                }
                // A start still under way is given up (its process killed): it is down again.
                starting.clear();
                d.stop_inventory().await?;
            }
            Action::Up => {
                down_windows -= 1;
                if down_windows == 0 {
                    held_down.set(false);
                    starting.push(Box::pin(d.start_inventory()));
                }
            }
            Action::BrokerDown => {
                note("the broker goes down".into());
                d.stop_broker().await?;
            }
            Action::BrokerUp => {
                note("the broker is back".into());
                d.start_broker().await?;
            }
            Action::BrokerHang => {
                note("the broker hangs".into());
                publisher.set_hung(true);
                d.hang_broker().await?;
            }
            Action::BrokerThaw => {
                note("the broker answers again".into());
                d.thaw_broker().await?;
                publisher.set_hung(false);
            }
            Action::DatabaseDown => {
                note("the stores' database goes down".into());
                database_down = true;
                d.stop_database().await?;
            }
            Action::DatabaseUp => {
                note("the stores' database is back".into());
                d.start_database().await?;
                database_down = false;
            }
            Action::NodeLoss => {
                note("the broker node the services use is lost; they fail over".into());
                d.lose_node().await?;
            }
        }
    }
    while !starting.is_empty() {
        first_done(&mut starting).await?;
    }
    Ok(played)
}

/// A start of Inventory under way.
type Starting<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// The first of `starting` to finish, taken out of it (never, while it is empty).
async fn first_done(starting: &mut Vec<Starting<'_>>) -> anyhow::Result<()> {
    std::future::poll_fn(|cx| {
        let done = starting.iter_mut().enumerate().find_map(|(i, start)| match start.as_mut().poll(cx) {
            std::task::Poll::Ready(result) => Some((i, result)),
            std::task::Poll::Pending => None,
        });
        match done {
            Some((i, result)) => {
                drop(starting.swap_remove(i));
                std::task::Poll::Ready(result)
            }
            None => std::task::Poll::Pending,
        }
    })
    .await
}

/// What the timeline's orders came to at Order.
pub(super) struct Played {
    /// Each order's id and request once accepted; `None`: refused while the database was down.
    pub accepted: Vec<Option<(OrderId, OrderRequest)>>,
    /// Orders refused while the database was up (Order must accept then).
    pub refused: usize,
}

impl Played {
    /// The orders accepted.
    pub fn count(&self) -> usize {
        self.accepted.iter().flatten().count()
    }
}

/// The schedule's timeline on the running deployment, the wait until it settles, and the
/// judgement.
async fn drive(
    world: &World,
    schedule: &Schedule,
    chaos: &CrashingQueue,
    d: &Deployment<'_>,
    held_down: &Cell<bool>,
) -> anyhow::Result<Outcome> {
    let (sim, publisher) = (world.queue(), Publisher::new(d.mq()));
    let storage = world.storage();
    let (order_store, notification_store) = (storage.order().await?, storage.notification().await?);

    let Timeline { steps, duplicates, malformed } = schedule.timeline();
    let played = play(schedule, steps, d, (&publisher, held_down), &|line| chaos.note(line), 1).await?;
    let n = played.count();

    // Settled: every order decided at Order, every reserved one notified, every queue empty
    // and nothing in flight, every malformed message dead-lettered.
    let deadline = Instant::now() + SETTLE_WITHIN;
    let mut settled = false;
    while Instant::now() < deadline {
        let mut quiet = true;
        for queue in [QueueName::InventoryInbox, QueueName::OrderInbox, QueueName::NotificationInbox] {
            // The lab's own view of the queue: it answers while the broker is away too.
            quiet &= sim.ready(queue) == 0 && sim.unacked(queue) == 0;
        }
        // …and the broker serving again (a node loss's failover may outlast the work).
        // (A malformed message published again after a failed attempt may be dead-lettered
        // twice: the checker holds the count to its bounds.)
        quiet &= !sim.is_down() && publisher.waiting() == 0 && sim.ready(QueueName::DeadLetter) >= malformed;
        // The stores are asked only once the queues are quiet: the lab's view costs nothing,
        // the stores' queries do.
        if quiet {
            let stats = order_store.stats().await?;
            let notified = notification_store.stats().await?.notified;
            if stats.reserved + stats.failed == n as u64 && notified == stats.reserved {
                settled = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let injected = Injected { duplicates, malformed: malformed as usize, malformed_failed: publisher.malformed_failed() };
    let (violations, business) = judged(d, schedule, injected, &played, settled).await?;
    Ok(Outcome { violations, trace: chaos.take_trace(), events: chaos.events(), business })
}

/// What the harness published on its own: duplicates, malformed messages, and how many of its
/// attempts at a malformed one failed (each may have landed as well).
pub(super) struct Injected {
    pub duplicates: usize,
    pub malformed: usize,
    pub malformed_failed: usize,
}

/// The run on `d` read and judged, once settled (or not, in time): its stores, Order's account
/// and the dead letters, the invariants' verdict and its business outcome.
pub(super) async fn judged(
    d: &Deployment<'_>,
    schedule: &Schedule,
    Injected { duplicates, malformed, malformed_failed }: Injected,
    played: &Played,
    settled: bool,
) -> anyhow::Result<(Vec<Violation>, Business)> {
    let run = Run {
        mode: d.mode(),
        accepted: played.count(),
        refused: played.refused,
        traced: Default::default(),
        detail: Detail::Explore { duplicates, malformed, malformed_failed },
        end: read_final(&d.storage(), schedule.stock, d.mq().as_ref(), d.observer().as_ref()).await?,
    };
    Ok((judge(&run, settled, schedule.loses_a_node()), business(&run, &played.accepted)))
}

/// The invariants' verdict on a run, and whether it settled in time. Explore holds a real run
/// to the simulation's rule about Order's reconciler too: the one way RabbitMQ itself loses a
/// message here is its delivery limit, reached through a cluster's failovers (see
/// docs/cluster.md), which needs a node loss; a flapping broker does not pass it (see
/// [`Flaps`]). So, unless the schedule lost a node, an order published again was lost by the
/// services.
fn judge(run: &Run, settled: bool, node_lost: bool) -> Vec<Violation> {
    let mut violations = invariants::check(run);
    let republished = run.end.orders.stats.republished;
    if run.mode == Mode::Real && !node_lost && republished > 0 {
        violations.push(Violation {
            experiment: "explore".into(),
            message: format!("Order's reconciler published {republished} OrderPlaced again: they were lost on the way"),
        });
    }
    if !settled {
        violations.push(Violation {
            experiment: "explore".into(),
            message: format!("not settled {} s after the last scheduled action", SETTLE_WITHIN.as_secs()),
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(faults: Vec<Fault>, broker_down: Option<Window>) -> Schedule {
        Schedule {
            stock: 1,
            orders: vec![],
            faults,
            broker_down,
            inventories: 1,
            broker_hang: None,
            database_down: None,
            broker_flaps: None,
            prefetch: 1,
        }
    }

    #[test]
    fn a_real_deployment_is_spared_only_what_it_cannot_suffer_and_says_so() {
        let outage = Some(Window { at_ms: 5, for_ms: 100 });
        let losses = vec![Fault::NodeLoss { at_ms: 1 }, Fault::Down { at_ms: 2, for_ms: 3 }, Fault::NodeLoss { at_ms: 4 }];
        let schedule = with(losses, outage);

        let (one_node, dropped) = schedule.for_real(false);
        assert_eq!(one_node, with(vec![Fault::Down { at_ms: 2, for_ms: 3 }], outage));
        assert_eq!(dropped, "the node loss (one broker node)");

        let (cluster, dropped) = schedule.for_real(true);
        assert_eq!(cluster, with(vec![Fault::NodeLoss { at_ms: 1 }, Fault::Down { at_ms: 2, for_ms: 3 }], None));
        assert!(dropped.contains("second node loss") && dropped.contains("broker outage"), "{dropped}");

        let quiet = with(vec![Fault::Down { at_ms: 2, for_ms: 3 }], None);
        assert_eq!(quiet.for_real(true), (quiet.clone(), String::new()));

        let hang = Schedule { broker_hang: outage, ..quiet.clone() };
        assert_eq!(hang.for_real(false), (hang.clone(), String::new()));
        assert_eq!(hang.for_real(true), (quiet.clone(), "the broker hang (not played on the cluster)".to_owned()));

        let flapping = Schedule { broker_flaps: Some(Flaps { at_ms: 7, times: 6 }), ..quiet.clone() };
        assert_eq!(flapping.for_real(false), (flapping.clone(), String::new()));
        assert_eq!(flapping.for_real(true), (quiet, "the broker flapping (not played on the cluster)".to_owned()));
    }

    #[test]
    fn a_flapping_broker_goes_down_and_comes_back_each_time_in_turn() {
        let flapping = Schedule { broker_flaps: Some(Flaps { at_ms: 7, times: 3 }), ..with(vec![], None) };
        let broker: Vec<(u64, bool)> = flapping
            .timeline()
            .steps
            .into_iter()
            .filter_map(|(t, action)| match action {
                Action::BrokerDown => Some((t, false)),
                Action::BrokerUp => Some((t, true)),
                _ => None,
            })
            .collect();
        assert_eq!(broker, [(7, false), (107, true), (307, false), (407, true), (607, false), (707, true)]);
    }

    #[test]
    fn leaving_out_an_order_keeps_each_later_fault_in_its_place_among_the_orders() {
        let items: Items = serde_json::from_str(r#"[{"sku":"pho","qty":1}]"#).unwrap();
        let faults = vec![
            Fault::Malformed { kind: 0, at_ms: 10 },
            Fault::Down { at_ms: 41, for_ms: 100 },
            Fault::Duplicate { order: 2, after_ms: 5 },
            Fault::Duplicate { order: 0, after_ms: 5 },
        ];
        let schedule =
            Schedule { orders: vec![items.clone(); 3], broker_hang: Some(Window { at_ms: 20, for_ms: 9 }), ..with(faults, None) };

        let smaller = schedule.without_order(1);
        assert_eq!(smaller.orders.len(), 2);
        assert_eq!(
            smaller.faults,
            [
                Fault::Malformed { kind: 0, at_ms: 10 },
                Fault::Down { at_ms: 21, for_ms: 100 },
                Fault::Duplicate { order: 1, after_ms: 5 },
                Fault::Duplicate { order: 0, after_ms: 5 },
            ]
        );
        assert_eq!(smaller.broker_hang, Some(Window { at_ms: 20, for_ms: 9 }), "at the cut itself it stays");

        let parts = super::super::Schedule::without_one_part(&schedule);
        assert_eq!(parts.len(), 1 + 4 + 3, "the hang, each fault, each order");
        assert!(parts.iter().all(|p| p != &schedule));
    }
}
