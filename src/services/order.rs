//! Order: gives each order its id and, in the synchronous model (Part A), drives the whole
//! workflow by calling Inventory and then Notification, each call bounded by a timeout.
//!
//! **When Notification fails after a successful reservation** the order stands: the stock is
//! reserved and the student gets `201` with `"notification": "failed"` and the reason. Undoing a
//! good reservation because an e-mail could not be sent would turn a cosmetic failure into a
//! lost sale. The unsent confirmation is reported, not retried: in the synchronous model
//! nothing remembers to retry it, which is exactly the gap Part B's queue closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::EventClock;
use crate::domain::{Order, OrderId, OrderRequest, OrderStatus};
use crate::model::{Protocol, Service};
use crate::proto;
use crate::retry::Policy;
use crate::store::{OrderStore, OutboxRow, StoreError};
use crate::telemetry::metrics::Counters;
use crate::telemetry::{stats, ServiceMetrics};
use crate::transport::queue::{Message, MessageQueue, QueueError, QueueName, Route};
use crate::transport::{RequestReply, TRACEPARENT};
use crate::wire::{ErrorBody, ReserveRequest, SendRequest};

/// Where order ids come from. A clone draws from the same sequence (a restarted service goes on
/// where the last one stopped).
#[derive(Debug, Clone)]
pub enum OrderIds {
    /// `o-<seed in hex>-<n>`: the same seed gives the same ids, run after run.
    Seeded { seed: u64, next: Arc<AtomicU64> },
    /// `o-<uuid v4>`: unique across processes and restarts (real mode).
    Random,
}

impl OrderIds {
    pub fn seeded(seed: u64) -> Self {
        OrderIds::Seeded { seed, next: Arc::new(AtomicU64::new(1)) }
    }

    /// The order `request` asks for: under the client's own id (its idempotency key) if it
    /// gave one, else under the next id.
    pub fn assign(&self, request: OrderRequest) -> Order {
        let id = request.order_id.clone().unwrap_or_else(|| self.next());
        Order::new(id, request)
    }

    pub fn next(&self) -> OrderId {
        let id = match self {
            OrderIds::Seeded { seed, next } => format!("o-{seed:x}-{:06}", next.fetch_add(1, Ordering::Relaxed)),
            OrderIds::Random => format!("o-{}", uuid::Uuid::new_v4().simple()),
        };
        OrderId::parse(id).expect("generated ids are valid")
    }
}

/// Whether the confirmation went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notified {
    Sent,
    Failed { detail: String },
}

/// A placed order (stock reserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order_id: OrderId,
    pub notified: Notified,
}

/// Why an order was not placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("{reason}")]
    OutOfStock { order_id: OrderId, reason: String },
    #[error("inventory did not answer within {} ms", timeout.as_millis())]
    InventoryTimeout { order_id: OrderId, timeout: Duration },
    #[error("inventory unavailable: {detail}")]
    InventoryUnavailable { order_id: OrderId, detail: String },
    #[error("{limit} orders in flight already: refused before any work, retry later")]
    Overloaded { order_id: OrderId, limit: usize },
}

impl PlaceError {
    pub fn order_id(&self) -> &OrderId {
        match self {
            PlaceError::OutOfStock { order_id, .. }
            | PlaceError::InventoryTimeout { order_id, .. }
            | PlaceError::InventoryUnavailable { order_id, .. }
            | PlaceError::Overloaded { order_id, .. } => order_id,
        }
    }
}

/// The order service of the synchronous model.
pub struct SyncOrderService {
    ids: OrderIds,
    peers: Arc<dyn RequestReply>,
    call_timeout: Duration,
    protocol: Protocol,
    /// Orders that may be in flight at once, and the permits for them; `None`: no limit.
    in_flight: Option<(usize, Arc<tokio::sync::Semaphore>)>,
    /// What became of each order (`campus_orders_total{outcome}`).
    outcomes: Counters,
}

/// What a call to Inventory or Notification came to, whichever protocol carried it.
enum Reply {
    Done,
    /// Inventory refused: the stock is short (409 / `FAILED_PRECONDITION`).
    Refused(String),
    /// The callee said the caller's deadline passed (`DEADLINE_EXCEEDED`).
    Late,
    /// Unreachable, or answered anything else.
    Failed(String),
}

impl SyncOrderService {
    /// `call_timeout` bounds each downstream call (Inventory, then Notification), made over
    /// `protocol`.
    pub fn new(ids: OrderIds, peers: Arc<dyn RequestReply>, call_timeout: Duration, protocol: Protocol) -> Self {
        SyncOrderService { ids, peers, call_timeout, protocol, in_flight: None, outcomes: Counters::default() }
    }

    /// At most `limit` orders in flight at once (0: no limit); one more is refused at once
    /// ([`PlaceError::Overloaded`]). Load shedding: an order Order cannot hold is refused
    /// before it reserves anything, rather than failing halfway when the process runs out of
    /// sockets.
    pub fn limited_to(self, limit: usize) -> Self {
        let in_flight = (limit > 0).then(|| (limit, Arc::new(tokio::sync::Semaphore::new(limit))));
        SyncOrderService { in_flight, ..self }
    }

    /// Counts each order's outcome in `metrics`: `campus_orders_total{outcome}`, the outcome
    /// `placed`, `placed_unconfirmed` (placed, its confirmation not sent), or the reason it was
    /// refused (`out_of_stock`, `inventory_timeout`, `inventory_unavailable`, `overloaded`).
    pub fn counted_in(self, metrics: &ServiceMetrics) -> Self {
        let outcomes = metrics.counters("campus_orders", "Orders Order answered, per outcome (placed, or why not)");
        let counted = outcomes.clone();
        metrics.source(move || {
            let placed =
                ["placed", "placed_unconfirmed"].iter().map(|o| counted.get_or_create(&vec![("outcome", (*o).to_owned())]).get()).sum();
            Box::pin(std::future::ready(vec![stats::accepted(placed)]))
        });
        SyncOrderService { outcomes, ..self }
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Places the order: reserves at Inventory, then notifies. A request under a key placed
    /// before is the same order again: Inventory answers with the first attempt's outcome and
    /// Notification confirms once.
    pub async fn place(&self, request: OrderRequest) -> Result<Placed, PlaceError> {
        self.place_within(request, None).await
    }

    /// [`Self::place`] for a caller that gives the call `within` (gRPC's deadline): each
    /// downstream call is bounded by what is left of it as well as by the call timeout, and
    /// carries that bound on to Inventory and Notification.
    pub async fn place_within(&self, request: OrderRequest, within: Option<Duration>) -> Result<Placed, PlaceError> {
        let placed = self.attempt(request, within).await;
        let outcome = match &placed {
            Ok(Placed { notified: Notified::Sent, .. }) => "placed",
            Ok(Placed { notified: Notified::Failed { .. }, .. }) => "placed_unconfirmed",
            Err(PlaceError::OutOfStock { .. }) => "out_of_stock",
            Err(PlaceError::InventoryTimeout { .. }) => "inventory_timeout",
            Err(PlaceError::InventoryUnavailable { .. }) => "inventory_unavailable",
            Err(PlaceError::Overloaded { .. }) => "overloaded",
        };
        self.outcomes.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
        placed
    }

    async fn attempt(&self, request: OrderRequest, within: Option<Duration>) -> Result<Placed, PlaceError> {
        let deadline = within.map(|w| tokio::time::Instant::now() + w);
        let order = self.ids.assign(request);
        let order_id = order.order_id.clone();
        let _held = match &self.in_flight {
            Some((limit, permits)) => Some(
                permits.clone().try_acquire_owned().map_err(|_| PlaceError::Overloaded { order_id: order_id.clone(), limit: *limit })?,
            ),
            None => None,
        };
        self.reserve(&order, deadline).await?;
        let notified = self.notify(&order, deadline).await;
        if let Notified::Failed { detail } = &notified {
            tracing::warn!(%order_id, %detail, "order placed but its confirmation was not sent");
        }
        Ok(Placed { order_id, notified })
    }

    /// The bound of the next call: the call timeout, or what is left of the caller's deadline.
    fn bound(&self, deadline: Option<tokio::time::Instant>) -> Duration {
        deadline.map_or(self.call_timeout, |d| self.call_timeout.min(d.saturating_duration_since(tokio::time::Instant::now())))
    }

    async fn reserve(&self, order: &Order, deadline: Option<tokio::time::Instant>) -> Result<(), PlaceError> {
        let order_id = order.order_id.clone();
        let body = ReserveRequest { order_id: order_id.clone(), items: order.items.clone() };
        let bound = self.bound(deadline);
        let call = async {
            match self.protocol {
                Protocol::Rest => rest_reply(self.peers.post_json(Service::Inventory, "/reserve", &body).await, "inventory"),
                Protocol::Grpc => {
                    let mut client = proto::inventory_client::InventoryClient::new(self.peers.clone().grpc(Service::Inventory));
                    grpc_reply(client.reserve(with_timeout(proto::ReserveRequest::from(&body), bound)).await, "inventory")
                }
            }
        };
        match tokio::time::timeout(bound, call).await {
            Ok(Reply::Done) => Ok(()),
            Ok(Reply::Refused(reason)) => Err(PlaceError::OutOfStock { order_id, reason }),
            Err(_) | Ok(Reply::Late) => Err(PlaceError::InventoryTimeout { order_id, timeout: bound }),
            Ok(Reply::Failed(detail)) => Err(PlaceError::InventoryUnavailable { order_id, detail }),
        }
    }

    async fn notify(&self, order: &Order, deadline: Option<tokio::time::Instant>) -> Notified {
        let body = SendRequest { order_id: order.order_id.clone(), student_id: order.student_id.clone() };
        let bound = self.bound(deadline);
        let call = async {
            match self.protocol {
                Protocol::Rest => rest_reply(self.peers.post_json(Service::Notification, "/send", &body).await, "notification"),
                Protocol::Grpc => {
                    let mut client = proto::notification_client::NotificationClient::new(self.peers.clone().grpc(Service::Notification));
                    grpc_reply(client.send(with_timeout(proto::SendRequest::from(&body), bound)).await, "notification")
                }
            }
        };
        match tokio::time::timeout(bound, call).await {
            Ok(Reply::Done) => Notified::Sent,
            Ok(Reply::Refused(detail) | Reply::Failed(detail)) => Notified::Failed { detail },
            Err(_) | Ok(Reply::Late) => Notified::Failed { detail: format!("notification did not answer within {} ms", bound.as_millis()) },
        }
    }
}

/// A REST reply read: 200 done, 409 refused (the reason from its body), anything else failed.
fn rest_reply(reply: Result<http::Response<Bytes>, crate::transport::CallError>, peer: &str) -> Reply {
    match reply {
        Ok(reply) if reply.status() == StatusCode::OK => Reply::Done,
        Ok(reply) if reply.status() == StatusCode::CONFLICT => Reply::Refused(
            serde_json::from_slice::<ErrorBody>(reply.body()).map(|b| b.detail).unwrap_or_else(|_| "insufficient stock".into()),
        ),
        Ok(reply) => Reply::Failed(format!("{peer} answered {}", reply.status())),
        Err(e) => Reply::Failed(e.to_string()),
    }
}

/// A gRPC reply read: `OK` done, `FAILED_PRECONDITION` refused, `DEADLINE_EXCEEDED` late,
/// anything else failed (an unreachable peer is `UNAVAILABLE`, see [`crate::transport::GrpcChannel`]).
fn grpc_reply<T>(reply: Result<tonic::Response<T>, tonic::Status>, peer: &str) -> Reply {
    match reply {
        Ok(_) => Reply::Done,
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Reply::Refused(s.message().to_owned()),
        Err(s) if s.code() == tonic::Code::DeadlineExceeded => Reply::Late,
        Err(s) if s.code() == tonic::Code::Unavailable => Reply::Failed(s.message().to_owned()),
        Err(s) => Reply::Failed(format!("{peer} answered {:?}: {}", s.code(), s.message())),
    }
}

/// `message` as a request that tells the callee it has `bound` (`grpc-timeout`).
fn with_timeout<T>(message: T, bound: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(bound);
    request
}

/// An order Order has stored (Part B's `POST /order`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub order_id: OrderId,
    /// `accepted` when just stored; for a repeat, the order's status now.
    pub status: OrderStatus,
    /// The key was stored before: nothing was stored or published now.
    pub repeat: bool,
}

/// How often Order's reconciler looks for orders that lost their way.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// An order still without a verdict this long after it was placed, while nothing waits in
/// Inventory's queue or Order's, is a suspect; one still a suspect at the next look is
/// published again.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// An outbox row as the message the relay publishes: its `OrderPlaced`, under the trace of the
/// request that placed it.
fn outbox_message(row: OutboxRow) -> Message {
    let message = Message::new(Route::OrderPlaced, row.body);
    match row.trace {
        Some(trace) => message.with_header(TRACEPARENT, trace),
        None => message,
    }
}

/// The order service of the messaging model (Part B): accepting an order is storing it with
/// its `OrderPlaced` in the outbox (one transaction); [`AsyncOrderService::run_relay`]
/// publishes the outbox with confirms; [`AsyncOrderService::run_reconciler`] publishes again
/// the `OrderPlaced` of an order whose message or verdict the broker lost.
pub struct AsyncOrderService {
    ids: OrderIds,
    store: Arc<OrderStore>,
    clock: EventClock,
    outbox_filled: tokio::sync::Notify,
    republished: AtomicU64,
}

impl AsyncOrderService {
    pub fn new(ids: OrderIds, store: Arc<OrderStore>, clock: EventClock) -> Self {
        AsyncOrderService { ids, store, clock, outbox_filled: tokio::sync::Notify::new(), republished: AtomicU64::new(0) }
    }

    /// `OrderPlaced` the reconciler published again since this service started.
    pub fn republished(&self) -> u64 {
        self.republished.load(Ordering::Relaxed)
    }

    /// Order's counts, with the reconciler's.
    pub async fn stats(&self) -> Result<crate::store::OrderStats, StoreError> {
        let mut stats = self.store.stats().await?;
        stats.republished = self.republished();
        Ok(stats)
    }

    pub fn store(&self) -> &Arc<OrderStore> {
        &self.store
    }

    /// Stores the order and its event; the relay publishes it, under `trace` (the request's
    /// `traceparent`, if traced). A request under a key (order id) already stored stores
    /// nothing: the order as it stands is returned, as a repeat.
    pub async fn accept(&self, request: OrderRequest, trace: Option<String>) -> Result<Accepted, StoreError> {
        let order = self.ids.assign(request);
        if let Some(known) = self.store.accept(&order, self.clock.now_ms(), trace.as_deref()).await? {
            return Ok(Accepted { order_id: order.order_id, status: known, repeat: true });
        }
        self.outbox_filled.notify_one();
        Ok(Accepted { order_id: order.order_id, status: OrderStatus::Accepted, repeat: false })
    }

    /// Publishes outbox rows in batches (oldest first), each batch confirmed by the broker
    /// before its rows are marked published. A crash between the confirm and the mark
    /// publishes those rows again after a restart: at-least-once, which Inventory's dedup
    /// absorbs. While the broker is away the batch is retried with backoff (the outbox keeps
    /// filling: Order accepts regardless), and so is the store while its database does not
    /// answer (a restart: reading the outbox waits, and a confirmed batch is marked once it is
    /// back rather than published again); runs for ever, unless `policy` says not to
    /// reconnect (the lab's `--break no-reconnect`), when a failed publish ends it.
    pub async fn run_relay(&self, mq: Arc<dyn MessageQueue>, policy: Policy) -> Result<(), QueueError> {
        let (mut backoff, mut store_backoff) = (policy.backoff("relay"), policy.backoff("relay's store"));
        let store = "the outbox relay's store";
        loop {
            let rows = match policy.until_ok(&mut store_backoff, store, StoreError::is_transient, || self.store.unpublished()).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "reading the outbox; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if rows.is_empty() {
                self.outbox_filled.notified().await;
                continue;
            }
            // The batch in flight at once, confirmed as a whole, then marked in one
            // transaction.
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let batch: Vec<Message> = rows.into_iter().map(outbox_message).collect();
            policy.until_ok(&mut backoff, "the outbox relay", QueueError::is_transient, || mq.publish_all(batch.clone())).await?;
            if let Err(e) = policy.until_ok(&mut store_backoff, store, StoreError::is_transient, || self.store.mark_published(&seqs)).await
            {
                tracing::error!(error = %e, rows = seqs.len(), "marking outbox rows published; they will be published again");
            }
        }
    }

    /// The safety net for what the broker loses. Every [`RECONCILE_EVERY`], while nothing is
    /// ready in Inventory's queue or Order's (a backlog, e.g. Inventory away, means the
    /// messages are still on their way), it lists the orders placed [`STUCK_AFTER`] ago or
    /// more that have no verdict; an order listed at two looks in a row — so not one a
    /// consumer is handling right now — has its `OrderPlaced` published again. Inventory's
    /// dedup re-emits a decided order's stored outcome, so a lost verdict comes back too.
    ///
    /// Why it exists: RabbitMQ 3.10 counts every return of a message to a quorum queue towards
    /// `x-delivery-limit`, a consumer's channel closing included (a probe here: a message whose
    /// consumer's channel closed three times, no nack, was dead-lettered at a limit of 2), so a
    /// failover that closes a consumer's channel again and again can dead-letter a good
    /// `OrderPlaced` or verdict. In the simulation, where nothing is lost, the reconciler must
    /// never fire (`explore` checks that it re-published nothing). Several Orders sharing one
    /// PostgreSQL store each look: an order may then be published again twice, which
    /// Inventory's dedup absorbs like any repeat.
    pub async fn run_reconciler(&self, mq: Arc<dyn MessageQueue>, policy: Policy) -> Result<(), QueueError> {
        let mut suspects: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            let mut quiet = true;
            for queue in [QueueName::InventoryInbox, QueueName::OrderInbox] {
                match mq.depth(queue).await {
                    Ok(0) => {}
                    Ok(_) => quiet = false,
                    Err(e) if !policy.reconnect => return Err(e),
                    Err(_) => quiet = false,
                }
            }
            if !quiet {
                suspects.clear();
                continue;
            }
            let placed_by = self.clock.now_ms().saturating_sub(STUCK_AFTER.as_millis() as u64);
            let rows = match self.store.stuck(placed_by).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "reading the orders without a verdict; retrying");
                    continue;
                }
            };
            let (again, now): (Vec<OutboxRow>, Vec<OutboxRow>) = rows.into_iter().partition(|r| suspects.contains(&r.seq));
            suspects = now.iter().chain(&again).map(|r| r.seq).collect();
            if again.is_empty() {
                continue;
            }
            tracing::warn!(
                orders = again.len(),
                "orders without a verdict long after they were published; publishing their OrderPlaced again"
            );
            let n = again.len() as u64;
            let batch: Vec<Message> = again.into_iter().map(outbox_message).collect();
            match mq.publish_all(batch).await {
                Ok(()) => {
                    self.republished.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) if !policy.reconnect => return Err(e),
                Err(e) => tracing::warn!(error = %e, "publishing again failed; the next look tries again"),
            }
        }
    }
}
