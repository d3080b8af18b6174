//! Part B, asynchronous messaging: its services wired over a [`MessageQueue`], and the one
//! consumer loop they share ([`consumer`]).
//!
//! Part B's services: each is its HTTP face (a `Router`) and its work — the consumers that read
//! its queues and, for Order, the outbox relay — over a [`MessageQueue`] and the service's own
//! store. The work future ends only when the broker fails; whoever runs it decides what then.

pub mod consumer;

use std::sync::Arc;

use axum::Router;

use crate::api;
use crate::retry::Policy;

use crate::services::order::AsyncOrderService;
use crate::store::{InventoryStore, NotificationStore};
use crate::transport::queue::{MessageQueue, QueueError};
use crate::transport::BoxFuture;

/// One loop a service runs besides answering HTTP: a consumer, or Order's relay. It ends only
/// when the broker fails.
pub type Work = BoxFuture<'static, Result<(), QueueError>>;

/// One service of Part B, wired: its HTTP face and its loops, each named (each runs as a task
/// of its own).
pub struct Wired {
    pub app: Router,
    pub work: Vec<(&'static str, Work)>,
}

/// Order: `POST /order` stores the order and its `OrderPlaced` (202); the relay publishes the
/// outbox; a consumer records Inventory's verdicts as the orders' statuses; the reconciler
/// publishes again what the broker lost.
pub fn order(service: Arc<AsyncOrderService>, mq: Arc<dyn MessageQueue>, prefetch: u16, policy: Policy) -> Wired {
    let app = api::order::async_app(service.clone(), api::Probe::degraded_without(mq.clone()));
    let status = consumer::run_order_status(mq.clone(), service.store().clone(), prefetch, policy);
    let reconciler = {
        let (service, mq) = (service.clone(), mq.clone());
        async move { service.run_reconciler(mq, policy).await }
    };
    let relay = async move { service.run_relay(mq, policy).await };
    Wired { app, work: vec![("relay", Box::pin(relay)), ("order-status", Box::pin(status)), ("reconciler", Box::pin(reconciler))] }
}

/// Inventory: consumes `OrderPlaced`, reserves against `store` (idempotently), publishes the
/// outcome; its HTTP face serves the accounting (`/stats`, `/outcomes`).
pub fn inventory(store: Arc<InventoryStore>, mq: Arc<dyn MessageQueue>, prefetch: u16, policy: Policy) -> Wired {
    Wired {
        app: api::inventory::admin_app(store.clone(), api::Probe::unavailable_without(mq.clone())),
        work: vec![("inventory", Box::pin(consumer::run_inventory(mq, store, prefetch, policy)))],
    }
}

/// Notification: consumes `InventoryReserved`, one confirmation per order; its HTTP face serves
/// the accounting (`/stats`, `/notified`).
pub fn notification(store: Arc<NotificationStore>, mq: Arc<dyn MessageQueue>, prefetch: u16, policy: Policy) -> Wired {
    Wired {
        app: api::notification::admin_app(store.clone(), api::Probe::unavailable_without(mq.clone())),
        work: vec![("notification", Box::pin(consumer::run_notification(mq, store, prefetch, policy)))],
    }
}
