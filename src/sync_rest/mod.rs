//! Part A, synchronous REST. Part A's services: each is a `Router`; Order calls the others through a
//! [`RequestReply`] — HTTP between processes, the simulation's in-memory network in the lab.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use crate::api;
use crate::api::inventory::SharedInventory;
use crate::api::notification::SharedNotifier;
use crate::config::ServiceConfig;
use crate::host::{BuildError, Built, Host, Transport};
use crate::model::{Model, Service};
use crate::services::inventory::Inventory;
use crate::services::notification::Notifier;
use crate::services::order::{OrderIds, SyncOrderService};
use crate::transport::RequestReply;

/// Order: `POST /order` calls Inventory, then Notification, each call bounded by `call_timeout`.
pub fn order(ids: OrderIds, peers: Arc<dyn RequestReply>, call_timeout: Duration) -> Router {
    api::order::sync_app(Arc::new(SyncOrderService::new(ids, peers, call_timeout)))
}

/// A fresh Inventory holding `stock` units of every menu item, and the handle to inspect it.
pub fn inventory_state(stock: u32) -> SharedInventory {
    Arc::new(Mutex::new(Inventory::with_stock(stock)))
}

/// Inventory: `POST /reserve` against `state`.
pub fn inventory(state: SharedInventory) -> Router {
    api::inventory::app(state)
}

/// A fresh Notification and the handle to inspect what it sent.
pub fn notification_state() -> SharedNotifier {
    Arc::new(Mutex::new(Notifier::default()))
}

/// Notification: `POST /send` recording into `state`.
pub fn notification(state: SharedNotifier) -> Router {
    api::notification::app(state)
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
            order(host.ids.clone(), peers.clone(), Duration::from_millis(config.timeout_ms))
        }
        Service::Inventory => inventory(inventory_state(config.stock)),
        Service::Notification => notification(notification_state()),
        Service::Producer | Service::Analytics => return Err(BuildError::NoSuchService { model: Model::SyncRest, service }),
    };
    Ok(Built { service, app, loops: Vec::new() })
}
