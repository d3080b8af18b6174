//! Asynchronous messaging (Part B): the [`MessageQueue`] trait, and the topology both of its
//! implementations — RabbitMQ ([`super::amqp::AmqpQueue`]) and the lab's `SimQueue` — build.
//!
//! ```text
//!  publish(route) ──► exchange <ns>.events (direct)
//!     OrderPlaced        ──► <ns>.inventory.order-placed          (Inventory consumes)
//!     InventoryReserved  ──► <ns>.order.inventory-results         (Order consumes: status)
//!                        ──► <ns>.notification.inventory-reserved (Notification consumes)
//!     InventoryFailed    ──► <ns>.order.inventory-results
//!  nack(requeue=false), the delivery limit, dead_letter(reason)
//!                        ──► exchange <ns>.dlx (fanout) ──► <ns>.dead-letter
//! ```
//!
//! Semantics both implementations keep: durable queues, persistent messages, a publish
//! returns once the broker has taken responsibility for the message (publisher confirm),
//! at-least-once delivery with manual acks, at most `prefetch` unacknowledged deliveries per
//! consumer, unacknowledged deliveries of a consumer that goes away are delivered again with
//! `redelivered` set, and a message returned more than [`DELIVERY_LIMIT`] times is dead-lettered.
//!
//! **A broker outage** (a restart, `rabbitmqctl stop_app`, a network blip): while the broker is
//! away every call fails with [`QueueError::Unreachable`], every subscription ends (its
//! deliveries channel closes) and the deliveries it held go back to their queue, to be
//! delivered again; acks of those deliveries fail. Once the broker is back, calls succeed again:
//! the implementation reconnects by itself and declares its topology again, and a new
//! `consume` starts a new subscription. What was published and confirmed before the outage
//! is still there (durable queues, persistent messages). A publish whose confirm was lost with
//! the connection may or may not have reached the queue: the publisher publishes it again, and
//! the consumer's dedup absorbs the repeat.

use std::fmt;

use bytes::Bytes;

use crate::domain::Event;

use super::{header, set_header, BoxFuture, Headers};

/// A message returned to its queue more than this many times (nack with requeue, or its
/// consumer went away) is dead-lettered instead of being delivered again — RabbitMQ's
/// `x-delivery-limit` on quorum queues: at most `DELIVERY_LIMIT + 1` deliveries. A message that
/// keeps failing must not block the queue forever.
pub const DELIVERY_LIMIT: u32 = 5;

/// The reason a message dead-lettered at [`DELIVERY_LIMIT`] carries (RabbitMQ's
/// `x-first-death-reason`): the broker's doing, not a consumer's verdict.
pub const DELIVERY_LIMIT_REASON: &str = "delivery_limit";

/// Where a message goes: the routing key it is published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    OrderPlaced,
    InventoryReserved,
    InventoryFailed,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::OrderPlaced, Route::InventoryReserved, Route::InventoryFailed];

    /// The route an event is published on: its kind.
    pub fn of(event: &Event) -> Route {
        match event {
            Event::OrderPlaced(_) => Route::OrderPlaced,
            Event::InventoryReserved(_) => Route::InventoryReserved,
            Event::InventoryFailed(_) => Route::InventoryFailed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Route::OrderPlaced => "OrderPlaced",
            Route::InventoryReserved => "InventoryReserved",
            Route::InventoryFailed => "InventoryFailed",
        }
    }

    /// The queues a message on this route lands in.
    pub fn queues(self) -> &'static [QueueName] {
        match self {
            Route::OrderPlaced => &[QueueName::InventoryInbox],
            Route::InventoryReserved => &[QueueName::OrderInbox, QueueName::NotificationInbox],
            Route::InventoryFailed => &[QueueName::OrderInbox],
        }
    }
}

/// The queues of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueName {
    /// `OrderPlaced`, consumed by Inventory.
    InventoryInbox,
    /// `InventoryReserved` / `InventoryFailed`, consumed by Order to update the order's status.
    OrderInbox,
    /// `InventoryReserved`, consumed by Notification.
    NotificationInbox,
    /// Everything dead-lettered, with the reason.
    DeadLetter,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [QueueName::InventoryInbox, QueueName::OrderInbox, QueueName::NotificationInbox, QueueName::DeadLetter];

    pub fn suffix(self) -> &'static str {
        match self {
            QueueName::InventoryInbox => "inventory.order-placed",
            QueueName::OrderInbox => "order.inventory-results",
            QueueName::NotificationInbox => "notification.inventory-reserved",
            QueueName::DeadLetter => "dead-letter",
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// Names of the broker objects, under a namespace so that runs sharing a broker (tests in
/// parallel, a sim-vs-real comparison) never see each other's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub namespace: String,
}

impl Topology {
    pub fn new(namespace: impl Into<String>) -> Self {
        Topology { namespace: namespace.into() }
    }
    pub fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.namespace)
    }
    pub fn queue(&self, queue: QueueName) -> String {
        format!("{}.{}", self.namespace, queue.suffix())
    }
}

/// One message to publish: its route, body and headers (a `traceparent`, see
/// `docs/tracing.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub route: Route,
    pub body: Bytes,
    pub headers: Headers,
}

impl Message {
    pub fn new(route: Route, body: impl Into<Bytes>) -> Self {
        Message { route, body: body.into(), headers: Vec::new() }
    }

    /// The message with header `name` set to `value` (replacing one of that name).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        set_header(&mut self.headers, name, value);
        self
    }

    /// The value of the header `name`, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// One message handed to a consumer. Settle it with exactly one of `ack`, `nack`,
/// `dead_letter` (or with a later delivery's `ack_through`); until then it counts against the consumer's prefetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub queue: QueueName,
    /// The subscription it was delivered on, and its tag there.
    pub consumer: u64,
    pub tag: u64,
    pub body: Bytes,
    /// Delivered before and not acknowledged (its consumer died, or it was nacked).
    pub redelivered: bool,
    /// Why it was dead-lettered (only on the dead-letter queue).
    pub reason: Option<String>,
    /// The headers it was published with.
    pub headers: Headers,
}

impl Delivery {
    /// The value of the header `name`, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A consumer: deliveries arrive on `deliveries` until it is cancelled or the connection dies.
/// Dropping it cancels it: its unacknowledged deliveries go back to the queue.
pub struct Subscription {
    pub id: u64,
    pub deliveries: flume::Receiver<Delivery>,
    /// Dropped with the subscription: the implementation's task waiting on the other end then
    /// cancels the consumer.
    _cancel: tokio::sync::oneshot::Sender<()>,
}

impl Subscription {
    /// `cancel`'s receiver must cancel the consumer when the sender is dropped.
    pub fn new(id: u64, deliveries: flume::Receiver<Delivery>, cancel: tokio::sync::oneshot::Sender<()>) -> Self {
        Subscription { id, deliveries, _cancel: cancel }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    #[error("the broker refused the message (publisher confirm was a nack)")]
    NotConfirmed,
    #[error("broker error: {0}")]
    Broker(String),
}

/// Asynchronous messaging (Part B).
pub trait MessageQueue: Send + Sync + 'static {
    /// Publishes every message persistently and returns once the broker confirmed all of them.
    /// An implementation may keep them all in flight at once (AMQP confirms are asynchronous),
    /// which is what makes a relay fast.
    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Publishes `body` persistently on `route`, with no header; returns once the broker
    /// confirmed it.
    fn publish(&self, route: Route, body: Bytes) -> BoxFuture<'_, Result<(), QueueError>> {
        self.publish_all(vec![Message::new(route, body)])
    }
    /// Starts a consumer of `queue` with at most `prefetch` unacknowledged deliveries.
    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>>;
    /// Done with it: the message is gone.
    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Done with it and with every earlier delivery of its subscription not settled yet: one
    /// acknowledgement for a window of deliveries (AMQP's `basic.ack` with `multiple`). The
    /// caller settles first whatever of the window must not be acknowledged.
    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Not done: back to the queue (`requeue`), or to the dead-letter queue.
    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Never processable (malformed, unknown schema): to the dead-letter queue with `reason`,
    /// confirmed, then acknowledged here. Never blocks the queue.
    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Messages ready in `queue` (not counting those delivered and not yet acknowledged).
    fn depth(&self, queue: QueueName) -> BoxFuture<'_, Result<u64, QueueError>>;
    /// Whether the connection to the broker is up now (for `/health`; a call may still fail).
    fn is_connected(&self) -> bool {
        true
    }
}

/// A queue wrapped around another to change a few of its calls: a fault, a count, a trace. A
/// layer names the queue it wraps and overrides the calls it changes; every other call goes to
/// the wrapped queue unchanged, for every layer is a [`MessageQueue`].
pub trait QueueLayer: Send + Sync + 'static {
    /// The queue this layer wraps.
    fn inner(&self) -> &dyn MessageQueue;

    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        self.inner().publish_all(messages)
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        self.inner().consume(queue, prefetch)
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        self.inner().ack(delivery)
    }

    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        self.inner().ack_through(delivery)
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        self.inner().nack(delivery, requeue)
    }

    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        self.inner().dead_letter(delivery, reason)
    }
}

impl<L: QueueLayer> MessageQueue for L {
    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        QueueLayer::publish_all(self, messages)
    }
    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        QueueLayer::consume(self, queue, prefetch)
    }
    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        QueueLayer::ack(self, delivery)
    }
    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        QueueLayer::ack_through(self, delivery)
    }
    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        QueueLayer::nack(self, delivery, requeue)
    }
    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        QueueLayer::dead_letter(self, delivery, reason)
    }
    fn depth(&self, queue: QueueName) -> BoxFuture<'_, Result<u64, QueueError>> {
        self.inner().depth(queue)
    }
    fn is_connected(&self) -> bool {
        self.inner().is_connected()
    }
}

impl QueueError {
    /// Whether waiting and trying again can help: the broker is away, answered with an error
    /// of the moment, or nacked a publish. A nack says the broker did not take the message (a
    /// quorum queue nacks what it cannot replicate while it has no leader, as after a node
    /// loss: seen on the lab's cluster), so publishing it again is the way to deliver it; if
    /// part of a batch had been taken, the repeat is a duplicate the stores absorb.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unreachable(_) | QueueError::Broker(_) | QueueError::NotConfirmed)
    }
}
