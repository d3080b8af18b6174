//! Consumer crashes on the messaging model, as data: a [`QueueCrash`] names a consumer's queue,
//! the n-th delivery on it, and the point of its handling where the consumer dies.
//! [`CrashingQueue`] wraps the [`SimQueue`] and is the one place these crashes happen: when a
//! consumer reaches the point, the wrapper tells the harness (which aborts the consumer's task,
//! as a SIGKILL would, and later starts a new one) and never lets the consumer go further.
//!
//! The same wrapper runs inside a real service process for `explore --real-brokers`
//! ([`CrashingQueue::in_process`], over the process's RabbitMQ connection): there the crash is
//! the process aborting itself at the point, and the deliveries it has counted are kept in a
//! file of the run's, so that its next life goes on counting as the simulation's harness does.
//!
//! The points, in the order a consumer's handling of a window passes them (see
//! `campus::async_rabbitmq::consumer`: a window of up to `prefetch` deliveries, one store
//! transaction, one ack):
//!
//! | point           | the consumer dies …                                                    |
//! |-----------------|------------------------------------------------------------------------|
//! | `BeforeCommit`  | as the delivery is handed over: its window not committed               |
//! | `BeforePublish` | after the store commit, before publishing this delivery's outcome (Inventory only) |
//! | `BeforeAck`     | after the publish, before the ack that covers the delivery (one per window) |
//!
//! Several instances of a consumer (competing for its queue) each
//! see the queue through a [`CrashingQueue::view`] of their own: each counts its own deliveries
//! and dies at its own crash points, announced to its own supervisor.
//!
//! `--break auto-ack` lives here too: Inventory's deliveries of orders are acknowledged as they
//! are handed over (the `no_ack` consumer mode), so a crash loses the order in hand. A
//! malformed message is not (it is rejected onto the dead-letter queue, which a real broker
//! allows only before the ack).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use campus::transport::queue::{Delivery, Message, MessageQueue, QueueError, QueueName, Route, Subscription};
use campus::transport::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::simulator::queue::SimQueue;

/// Where in its handling a consumer dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// The message received, nothing done with it.
    BeforeCommit,
    /// The store committed, the outcome not yet published.
    BeforePublish,
    /// The outcome published, the message not yet acknowledged (offsets not committed).
    BeforeAck,
}

impl CrashPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::BeforeCommit => "before the store commit",
            CrashPoint::BeforePublish => "between commit and publish",
            CrashPoint::BeforeAck => "between publish and ack",
        }
    }
}

/// Instance `instance` of the consumer of `queue` dies at `point` while handling its
/// `delivery`-th delivery (1-based, counting redeliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueCrash {
    pub queue: QueueName,
    pub instance: usize,
    pub delivery: u32,
    pub point: CrashPoint,
}

/// A consumer instance: its queue and its number.
type Instance = (QueueName, usize);

/// What the wrapper saw: kept for the trace and the events-per-second figure.
#[derive(Default)]
struct Shared {
    crashes: BTreeSet<QueueCrash>,
    /// Deliveries handed over, per consumer instance.
    delivered: BTreeMap<Instance, u32>,
    /// (subscription, tag) → the delivery's number on its queue, from its hand-over until it
    /// is settled.
    numbers: BTreeMap<(u64, u64), u32>,
    /// (Inventory instance, order id) → the number of the delivery of that order it was last
    /// handed, until it publishes the order's outcome.
    awaiting_outcome: BTreeMap<(usize, String), u32>,
    /// Acknowledged by the wrapper on hand-over (`auto-ack`).
    auto_acked: BTreeSet<(u64, u64)>,
    /// Messages moved: publishes and deliveries.
    events: u64,
    trace: super::trace::Trace,
    /// In a process: the file that keeps the count of its deliveries across its lives.
    count_file: Option<PathBuf>,
}

pub struct CrashingQueue {
    inner: Arc<dyn MessageQueue>,
    shared: Arc<Mutex<Shared>>,
    /// One sender per consumer instance that may crash: its supervisor listens.
    crashed: BTreeMap<Instance, flume::Sender<()>>,
    auto_ack: bool,
    /// Which instance of its consumers this view serves.
    instance: usize,
}

impl CrashingQueue {
    /// Wraps `inner` as instance 0 sees it; a crash of instance `k` of the consumer of `queue`
    /// is announced on `crashed[(queue, k)]`.
    pub fn new(
        inner: Arc<SimQueue>,
        crashes: impl IntoIterator<Item = QueueCrash>,
        crashed: BTreeMap<Instance, flume::Sender<()>>,
        auto_ack: bool,
    ) -> Self {
        let shared = Shared { crashes: crashes.into_iter().collect(), ..Shared::default() };
        CrashingQueue { inner, shared: Arc::new(Mutex::new(shared)), crashed, auto_ack, instance: 0 }
    }

    /// Wraps a service process's own connection `inner`: the process dies (aborts, as a
    /// SIGKILL would leave it) at each of `crashes` (all of instance 0, the process itself),
    /// counting its deliveries on from `before` and keeping the count in `count_file`.
    pub fn in_process(
        inner: Arc<dyn MessageQueue>,
        crashes: Vec<QueueCrash>,
        (count_file, before): (PathBuf, u32),
        auto_ack: bool,
    ) -> Self {
        let (tx, rx) = flume::unbounded::<()>();
        std::thread::spawn(move || {
            if rx.recv().is_ok() {
                std::process::abort();
            }
        });
        let queues: BTreeSet<QueueName> = crashes.iter().map(|c| c.queue).chain(auto_ack.then_some(QueueName::InventoryInbox)).collect();
        let delivered = queues.iter().map(|q| ((*q, 0), before)).collect();
        let crashed = queues.iter().map(|q| ((*q, 0), tx.clone())).collect();
        let shared = Shared {
            crashes: crashes.into_iter().collect(),
            delivered,
            count_file: Some(count_file),
            trace: super::trace::Trace::new(false),
            ..Shared::default()
        };
        CrashingQueue { inner, shared: Arc::new(Mutex::new(shared)), crashed, auto_ack, instance: 0 }
    }

    /// The same queue and crashes as instance `instance` of its consumers sees them.
    pub fn view(&self, instance: usize) -> CrashingQueue {
        CrashingQueue {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            crashed: self.crashed.clone(),
            auto_ack: self.auto_ack,
            instance,
        }
    }

    /// The same wrapper, keeping no trace (`explore`'s search).
    pub fn untraced(self) -> Self {
        self.lock().trace = super::trace::Trace::new(false);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("crash state lock")
    }

    /// Messages published and delivered so far.
    pub fn events(&self) -> u64 {
        self.lock().events
    }

    /// Adds a line to the trace (the harness's own steps: orders accepted, restarts).
    pub fn note(&self, line: String) {
        self.lock().trace.push(|| line);
    }

    /// Every message moved and every crash, with its virtual time, in order.
    pub fn take_trace(&self) -> Vec<String> {
        self.lock().trace.take()
    }

    /// The deliveries of subscription `consumer` up to and including `tag` not settled yet, in
    /// the order they were handed over: their keys and numbers.
    fn held_through(&self, (consumer, tag): (u64, u64)) -> Vec<((u64, u64), u32)> {
        self.lock().numbers.range((consumer, 0)..=(consumer, tag)).map(|(key, number)| (*key, *number)).collect()
    }

    /// If the consumer of `queue` must die at `point` of delivery `number`: announce it and
    /// return true (the caller then waits forever; the harness aborts it).
    fn crash_here(
        shared: &Mutex<Shared>,
        crashed: &BTreeMap<Instance, flume::Sender<()>>,
        (queue, instance): Instance,
        number: u32,
        point: CrashPoint,
    ) -> bool {
        let mut s = shared.lock().expect("crash state lock");
        if !s.crashes.remove(&QueueCrash { queue, instance, delivery: number, point }) {
            return false;
        }
        let who = if instance == 0 { String::new() } else { format!(" #{instance}") };
        s.trace.push(|| format!("CRASH {queue} consumer{who} {} (delivery #{number})", point.as_str()));
        drop(s);
        if let Some(tx) = crashed.get(&(queue, instance)) {
            let _ = tx.send(());
        }
        true
    }
}

fn describe(body: &[u8]) -> String {
    match campus::domain::Envelope::decode(body) {
        Ok(event) => format!("{} {}", event.kind(), event.order_id()),
        Err(e) => format!("malformed ({})", e.label()),
    }
}

impl MessageQueue for CrashingQueue {
    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            for message in messages {
                // Only Inventory publishes outcomes; it is handling its last delivery.
                // Only Inventory publishes outcomes: of the orders it was handed.
                if message.route != Route::OrderPlaced {
                    let me = (QueueName::InventoryInbox, self.instance);
                    let order = campus::domain::Envelope::decode(&message.body).map(|e| e.order_id().to_string()).unwrap_or_default();
                    let number = self.lock().awaiting_outcome.remove(&(self.instance, order));
                    if let Some(number) = number {
                        if Self::crash_here(&self.shared, &self.crashed, me, number, CrashPoint::BeforePublish) {
                            std::future::pending::<()>().await;
                        }
                    }
                }
                let body = message.body.clone();
                self.inner.publish_all(vec![message]).await?;
                let mut s = self.lock();
                s.events += 1;
                s.trace.push(|| format!("publish {}", describe(&body)));
            }
            Ok(())
        })
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        Box::pin(async move {
            let inner_sub = self.inner.consume(queue, prefetch).await?;
            let id = inner_sub.id;
            let (tx, rx) = flume::unbounded();
            let (cancel, mut cancelled) = tokio::sync::oneshot::channel::<()>();
            let (shared, crashed, inner, auto_ack) = (self.shared.clone(), self.crashed.clone(), self.inner.clone(), self.auto_ack);
            let me = (queue, self.instance);
            // Hands deliveries over one by one, numbering them; ends (dropping the broker's
            // subscription, so unacked deliveries return to the queue) when the consumer drops
            // its subscription or crashes.
            tokio::spawn(async move {
                loop {
                    let delivery = tokio::select! {
                        biased;
                        _ = &mut cancelled => break,
                        next = inner_sub.deliveries.recv_async() => match next { Ok(d) => d, Err(_) => break },
                    };
                    let number = {
                        let mut s = shared.lock().expect("crash state lock");
                        let n = s.delivered.entry(me).or_default();
                        *n += 1;
                        let number = *n;
                        if let Some(file) = &s.count_file {
                            // Kept before the delivery is handed over: a crash at any later
                            // point finds it counted.
                            if let Err(e) = std::fs::write(file, number.to_string()) {
                                tracing::error!(error = %e, file = %file.display(), "keeping the delivery count");
                            }
                        }
                        s.numbers.insert((delivery.consumer, delivery.tag), number);
                        if let Ok(campus::domain::Event::OrderPlaced(placed)) = campus::domain::Envelope::decode(&delivery.body) {
                            s.awaiting_outcome.insert((me.1, placed.order.order_id.to_string()), number);
                        }
                        s.events += 1;
                        let again = if delivery.redelivered { " (redelivered)" } else { "" };
                        let to = if me.1 == 0 { String::new() } else { format!(" (instance {})", me.1) };
                        s.trace.push(|| format!("deliver #{number} on {queue}{to}: {}{again}", describe(&delivery.body)));
                        number
                    };
                    // Only an order is acked on receipt: a malformed message, which has nothing
                    // to lose, is still rejected onto the dead-letter queue (once acked, a real
                    // broker could no longer take it back).
                    let an_order = matches!(campus::domain::Envelope::decode(&delivery.body), Ok(campus::domain::Event::OrderPlaced(_)));
                    if auto_ack && queue == QueueName::InventoryInbox && an_order {
                        if inner.ack(&delivery).await.is_err() {
                            break;
                        }
                        shared.lock().expect("crash state lock").auto_acked.insert((delivery.consumer, delivery.tag));
                    }
                    if Self::crash_here(&shared, &crashed, me, number, CrashPoint::BeforeCommit) {
                        break;
                    }
                    if tx.send(delivery).is_err() {
                        break;
                    }
                }
                drop(inner_sub);
            });
            Ok(Subscription::new(id, rx, cancel))
        })
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            let key = (delivery.consumer, delivery.tag);
            let (number, auto_acked) = {
                let s = self.lock();
                (s.numbers.get(&key).copied(), s.auto_acked.contains(&key))
            };
            if let Some(number) = number {
                if Self::crash_here(&self.shared, &self.crashed, (delivery.queue, self.instance), number, CrashPoint::BeforeAck) {
                    std::future::pending::<()>().await;
                }
            }
            if !auto_acked {
                self.inner.ack(&delivery).await?;
            }
            self.lock().numbers.remove(&key);
            Ok(())
        })
    }

    /// A window's one ack: the consumer dies before it if any delivery it covers was to die
    /// before its ack; deliveries acknowledged on hand-over (`auto-ack`) are not acknowledged
    /// again (RabbitMQ would refuse a tag it no longer holds).
    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            let me = (delivery.queue, self.instance);
            let covered = self.held_through((delivery.consumer, delivery.tag));
            for &(_, number) in &covered {
                if Self::crash_here(&self.shared, &self.crashed, me, number, CrashPoint::BeforeAck) {
                    std::future::pending::<()>().await;
                }
            }
            if covered.len() > 1 {
                let listed: Vec<String> = covered.iter().map(|(_, n)| format!("#{n}")).collect();
                self.note(format!("one ack for the window of deliveries {} on {}", listed.join(", "), delivery.queue));
            }
            let last = {
                let s = self.lock();
                covered.iter().rev().find(|(key, _)| !s.auto_acked.contains(key)).map(|((_, tag), _)| *tag)
            };
            if let Some(tag) = last {
                self.inner.ack_through(&Delivery { tag, ..delivery }).await?;
            }
            let mut s = self.lock();
            for (key, _) in &covered {
                s.numbers.remove(key);
            }
            Ok(())
        })
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            let key = (delivery.consumer, delivery.tag);
            if !self.lock().auto_acked.contains(&key) {
                self.inner.nack(&delivery, requeue).await?;
            }
            self.lock().numbers.remove(&key);
            Ok(())
        })
    }

    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        let (delivery, reason) = (delivery.clone(), reason.to_owned());
        Box::pin(async move {
            {
                let mut s = self.lock();
                s.trace.push(|| format!("dead-letter {}: {reason}", describe(&delivery.body)));
            }
            let key = (delivery.consumer, delivery.tag);
            if !self.lock().auto_acked.contains(&key) {
                self.inner.dead_letter(&delivery, &reason).await?;
            }
            self.lock().numbers.remove(&key);
            Ok(())
        })
    }

    fn depth(&self, queue: QueueName) -> BoxFuture<'_, Result<u64, QueueError>> {
        self.inner.depth(queue)
    }
}
