//! Part A, synchronous request/reply. Part A's services: each is a `Router` answering REST and
//! gRPC on one port; Order calls the others through a [`RequestReply`], over the protocol its
//! configuration names — HTTP between processes, the simulation's in-memory network in the lab.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use crate::api;
use crate::api::grpc;
use crate::api::inventory::SharedInventory;
use crate::api::notification::SharedNotifier;
use crate::config::ServiceConfig;
use crate::host::{BuildError, Built, Host, Transport};
use crate::model::{Model, Protocol, Service};
use crate::proto::inventory_server::InventoryServer;
use crate::proto::notification_server::NotificationServer;
use crate::proto::order_server::OrderServer;
use crate::services::inventory::Inventory;
use crate::services::notification::Notifier;
use crate::services::order::{OrderIds, SyncOrderService};
use crate::telemetry::{stats, ServiceMetrics};
use crate::transport::RequestReply;

/// Order: `POST /order` and gRPC `PlaceOrder` call Inventory, then Notification, over
/// `protocol`, each call bounded by `call_timeout`; at most `max_in_flight` orders at once (0:
/// no limit); each order's outcome counted in `metrics`.
pub fn order(
    ids: OrderIds,
    peers: Arc<dyn RequestReply>,
    call_timeout: Duration,
    protocol: Protocol,
    max_in_flight: usize,
    metrics: &ServiceMetrics,
) -> Router {
    let service = Arc::new(SyncOrderService::new(ids, peers, call_timeout, protocol).limited_to(max_in_flight).counted_in(metrics));
    grpc::beside(api::order::sync_app(service.clone()), OrderServer::new(grpc::OrderFace(service)))
}

/// A fresh Inventory holding `stock` units of every menu item, and the handle to inspect it.
pub fn inventory_state(stock: u32) -> SharedInventory {
    Arc::new(Mutex::new(Inventory::with_stock(stock)))
}

/// Inventory: `POST /reserve` and gRPC `Reserve` against `state`.
pub fn inventory(state: SharedInventory) -> Router {
    grpc::beside(api::inventory::app(state.clone()), InventoryServer::new(grpc::InventoryFace(state)))
}

/// A fresh Notification and the handle to inspect what it sent.
pub fn notification_state() -> SharedNotifier {
    Arc::new(Mutex::new(Notifier::default()))
}

/// Notification: `POST /send` and gRPC `Send` recording into `state`.
pub fn notification(state: SharedNotifier) -> Router {
    grpc::beside(api::notification::app(state.clone()), NotificationServer::new(grpc::NotificationFace(state)))
}

/// A Part A service as `config` says, on `host`: Order calls the others over the host's
/// request/reply transport; Inventory and Notification start empty (stock at `--stock`).
pub fn build(config: &ServiceConfig, host: &Host) -> Result<Built, BuildError> {
    let service = config.service;
    let app = match service {
        Service::Order => {
            let Transport::RequestReply(peers) = &host.transport else {
                return Err(BuildError::Transport { service, needs: "request/reply" });
            };
            let timeout = Duration::from_millis(config.timeout_ms);
            order(host.ids.clone(), peers.clone(), timeout, config.protocol, config.max_in_flight, &host.metrics)
        }
        Service::Inventory => {
            let state = inventory_state(config.stock);
            let counted = state.clone();
            host.metrics.source(move || {
                let (reserved, failed) = counted.lock().expect("inventory lock").decided();
                Box::pin(std::future::ready(stats::decided(reserved, failed)))
            });
            inventory(state)
        }
        Service::Notification => {
            let state = notification_state();
            let counted = state.clone();
            host.metrics.source(move || Box::pin(std::future::ready(vec![stats::notified(counted.lock().expect("notifier lock").sent())])));
            notification(state)
        }
        Service::Producer | Service::Analytics => return Err(BuildError::NoSuchService { model: Model::SyncRest, service }),
    };
    Ok(Built { service, app, loops: Vec::new() })
}
