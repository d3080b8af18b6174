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
use crate::domain::{Order, OrderId, OrderRequest};
use crate::retry::Policy;
use crate::store::{OrderStore, StoreError};
use crate::transport::queue::{MessageQueue, QueueError, Route};
use crate::transport::{Peer, RequestReply};
use crate::wire::{ErrorBody, ReserveRequest, SendRequest};

/// Where order ids come from.
#[derive(Debug)]
pub enum OrderIds {
    /// `o-<seed in hex>-<n>`: the same seed gives the same ids, run after run.
    Seeded { seed: u64, next: AtomicU64 },
    /// `o-<uuid v4>`: unique across processes and restarts (real mode).
    Random,
}

impl OrderIds {
    pub fn seeded(seed: u64) -> Self {
        OrderIds::Seeded { seed, next: AtomicU64::new(1) }
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
}

impl PlaceError {
    pub fn order_id(&self) -> &OrderId {
        match self {
            PlaceError::OutOfStock { order_id, .. }
            | PlaceError::InventoryTimeout { order_id, .. }
            | PlaceError::InventoryUnavailable { order_id, .. } => order_id,
        }
    }
}

/// The order service of the synchronous model.
pub struct SyncOrderService {
    ids: OrderIds,
    peers: Arc<dyn RequestReply>,
    call_timeout: Duration,
}

impl SyncOrderService {
    /// `call_timeout` bounds each downstream call (Inventory, then Notification).
    pub fn new(ids: OrderIds, peers: Arc<dyn RequestReply>, call_timeout: Duration) -> Self {
        SyncOrderService { ids, peers, call_timeout }
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub async fn place(&self, request: OrderRequest) -> Result<Placed, PlaceError> {
        let order = Order::new(self.ids.next(), request);
        let order_id = order.order_id.clone();
        self.reserve(&order).await?;
        let notified = self.notify(&order).await;
        if let Notified::Failed { detail } = &notified {
            tracing::warn!(%order_id, %detail, "order placed but its confirmation was not sent");
        }
        Ok(Placed { order_id, notified })
    }

    async fn reserve(&self, order: &Order) -> Result<(), PlaceError> {
        let order_id = order.order_id.clone();
        let body = ReserveRequest { order_id: order_id.clone(), items: order.items.clone() };
        let call = self.peers.post_json(Peer::Inventory, "/reserve", &body);
        let reply = match tokio::time::timeout(self.call_timeout, call).await {
            Err(_elapsed) => return Err(PlaceError::InventoryTimeout { order_id, timeout: self.call_timeout }),
            Ok(Err(e)) => return Err(PlaceError::InventoryUnavailable { order_id, detail: e.to_string() }),
            Ok(Ok(reply)) => reply,
        };
        match reply.status() {
            StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => {
                let reason = serde_json::from_slice::<ErrorBody>(reply.body())
                    .map(|b| b.detail)
                    .unwrap_or_else(|_| "insufficient stock".into());
                Err(PlaceError::OutOfStock { order_id, reason })
            }
            status => Err(PlaceError::InventoryUnavailable { order_id, detail: format!("inventory answered {status}") }),
        }
    }

    async fn notify(&self, order: &Order) -> Notified {
        let body = SendRequest { order_id: order.order_id.clone(), student_id: order.student_id.clone() };
        let call = self.peers.post_json(Peer::Notification, "/send", &body);
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(reply)) if reply.status().is_success() => Notified::Sent,
            Ok(Ok(reply)) => Notified::Failed { detail: format!("notification answered {}", reply.status()) },
            Ok(Err(e)) => Notified::Failed { detail: e.to_string() },
            Err(_elapsed) => Notified::Failed {
                detail: format!("notification did not answer within {} ms", self.call_timeout.as_millis()),
            },
        }
    }
}

/// The order service of the messaging model (Part B): accepting an order is storing it with
/// its `OrderPlaced` in the outbox (one transaction); [`AsyncOrderService::run_relay`]
/// publishes the outbox with confirms.
pub struct AsyncOrderService {
    ids: OrderIds,
    store: Arc<OrderStore>,
    clock: EventClock,
    outbox_filled: tokio::sync::Notify,
}

impl AsyncOrderService {
    pub fn new(ids: OrderIds, store: Arc<OrderStore>, clock: EventClock) -> Self {
        AsyncOrderService { ids, store, clock, outbox_filled: tokio::sync::Notify::new() }
    }

    pub fn store(&self) -> &Arc<OrderStore> {
        &self.store
    }

    /// Stores the order and its event; the relay publishes it.
    pub async fn accept(&self, request: OrderRequest) -> Result<OrderId, StoreError> {
        let order = Order::new(self.ids.next(), request);
        self.store.accept(&order, self.clock.now_ms()).await?;
        self.outbox_filled.notify_one();
        Ok(order.order_id)
    }

    /// Publishes outbox rows in batches (oldest first), each batch confirmed by the broker
    /// before its rows are marked published. A crash between the confirm and the mark
    /// publishes those rows again after a restart: at-least-once, which Inventory's dedup
    /// absorbs. While the broker is away the batch is retried with backoff (the outbox keeps
    /// filling: Order accepts regardless); runs for ever, unless `policy` says not to
    /// reconnect (the lab's `--break no-reconnect`), when a failed publish ends it.
    pub async fn run_relay(&self, mq: Arc<dyn MessageQueue>, policy: Policy) -> Result<(), QueueError> {
        let mut backoff = policy.backoff("relay");
        loop {
            let rows = match self.store.unpublished(100).await {
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
            let batch: Vec<(Route, Bytes)> = rows.into_iter().map(|r| (r.route, r.body.into())).collect();
            policy.until_ok(&mut backoff, "the outbox relay", QueueError::is_transient, || mq.publish_all(batch.clone())).await?;
            if let Err(e) = self.store.mark_published(&seqs).await {
                tracing::error!(error = %e, rows = seqs.len(), "marking outbox rows published; they will be published again");
            }
        }
    }
}
