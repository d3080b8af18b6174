//! Part B, asynchronous messaging: its services wired over a [`MessageQueue`], and the one
//! consumer loop they share ([`consumer`]).
//!
//! Part B's services: each is its HTTP face (a `Router`) and its work — the consumers that read
//! its queues and, for Order, the outbox relay — over a [`MessageQueue`] and the service's own
//! store. The work future ends only when the broker fails; whoever runs it decides what then.

pub mod consumer;

use std::sync::Arc;

use crate::api;
use crate::config::ServiceConfig;
use crate::host::{BuildError, Built, Host, Loop, Transport};
use crate::model::{Model, Service};
use crate::retry::Policy;

use crate::services::completions::Completions;
use crate::services::order::AsyncOrderService;
use crate::store::{InventoryStore, NotificationStore, StoreError};
use crate::telemetry::{stats, Sample, Tracer};
use crate::transport::queue::MessageQueue;

/// Order: `POST /order` stores the order and its `OrderPlaced` (202); the relay publishes the
/// outbox; a consumer records Inventory's verdicts as the orders' statuses; the reconciler
/// publishes again what the broker lost.
pub fn order(service: Arc<AsyncOrderService>, mq: Arc<dyn MessageQueue>, prefetch: u16, policy: Policy, tracer: Tracer) -> Built {
    let app = api::order::async_app(service.clone(), api::Probe::degraded_without(mq.clone()));
    let status = consumer::run_order_status(mq.clone(), service.store().clone(), prefetch, policy, tracer);
    let reconciler = {
        let (service, mq) = (service.clone(), mq.clone());
        async move { service.run_reconciler(mq, policy).await }
    };
    let relay = async move { service.run_relay(mq, policy).await };
    let loops = vec![Loop::endless("relay", relay), Loop::endless("order-status", status), Loop::endless("reconciler", reconciler)];
    Built { service: Service::Order, app, loops }
}

/// Inventory: consumes `OrderPlaced`, reserves against `store` (idempotently), publishes the
/// outcome; its HTTP face serves the accounting (`/stats`, `/outcomes`).
pub fn inventory(store: Arc<InventoryStore>, mq: Arc<dyn MessageQueue>, prefetch: u16, policy: Policy, tracer: Tracer) -> Built {
    Built {
        service: Service::Inventory,
        app: api::inventory::admin_app(store.clone(), api::Probe::unavailable_without(mq.clone())),
        loops: vec![Loop::endless("inventory", consumer::run_inventory(mq, store, prefetch, policy, tracer))],
    }
}

/// Notification: consumes `InventoryReserved`, one confirmation per order; its HTTP face serves
/// the accounting (`/stats`, `/notified`, `/completions`: when each confirmation was recorded).
pub fn notification(
    store: Arc<NotificationStore>,
    mq: Arc<dyn MessageQueue>,
    prefetch: u16,
    policy: Policy,
    completions: Completions,
    tracer: Tracer,
) -> Built {
    Built {
        service: Service::Notification,
        app: api::notification::admin_app(store.clone(), completions.clone(), api::Probe::unavailable_without(mq.clone())),
        loops: vec![Loop::endless("notification", consumer::run_notification(mq, store, prefetch, policy, completions, tracer))],
    }
}

/// A Part B service as `config` says, on `host`: over the host's queue, its store where the
/// host keeps it (`--prefetch` unacknowledged deliveries per consumer; Inventory stocked with
/// `--stock` when its store is new).
pub async fn build(config: &ServiceConfig, host: &Host) -> Result<Built, BuildError> {
    let service = config.service;
    let Transport::Queue(mq) = &host.transport else { return Err(BuildError::Transport { service, needs: "a message queue" }) };
    let (mq, policy, prefetch) = (mq.clone(), host.policy(), config.prefetch);
    let store_error = |source| BuildError::Store { service, source };
    Ok(match service {
        Service::Order => {
            let service = Arc::new(AsyncOrderService::new(host.ids.clone(), host.storage.order().await.map_err(store_error)?, host.clock));
            let counted = service.clone();
            host.metrics.source(move || {
                let service = counted.clone();
                Box::pin(async move { read(service.stats().await, stats::order) })
            });
            order(service, mq, prefetch, policy, host.tracer.clone())
        }
        Service::Inventory => {
            let store = host.storage.inventory(config.stock, host.safeguards.dedup).await.map_err(store_error)?;
            let counted = store.clone();
            host.metrics.source(move || {
                let store = counted.clone();
                Box::pin(async move { read(store.stats().await, |s| stats::inventory(s)) })
            });
            inventory(store, mq, prefetch, policy, host.tracer.clone())
        }
        Service::Notification => {
            let store = host.storage.notification().await.map_err(store_error)?;
            let counted = store.clone();
            host.metrics.source(move || {
                let store = counted.clone();
                Box::pin(async move { read(store.stats().await, stats::notification) })
            });
            notification(store, mq, prefetch, policy, Completions::new(host.clock), host.tracer.clone())
        }
        Service::Producer | Service::Analytics => return Err(BuildError::NoSuchService { model: Model::AsyncRabbitmq, service }),
    })
}

/// A store's counts as samples; none while the store cannot be read (the scrape still answers,
/// with what was counted as it happened).
fn read<T>(stats: Result<T, StoreError>, samples: impl FnOnce(&T) -> Vec<Sample>) -> Vec<Sample> {
    match stats {
        Ok(stats) => samples(&stats),
        Err(e) => {
            tracing::debug!(error = %e, "the store's counts were not read for /metrics");
            Vec::new()
        }
    }
}
