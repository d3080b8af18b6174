//! Inventory's HTTP face: `POST /reserve`, `GET /stock`, `GET /health`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Ack, ApiError, JsonBody, ReserveRequest};
use crate::services::inventory::{Inventory, ReserveOutcome};
use crate::store::{InventoryStats, InventoryStore};

/// The shared inventory. A std mutex: every critical section is short and never awaits.
pub type SharedInventory = Arc<Mutex<Inventory>>;

pub fn app(inventory: SharedInventory) -> Router {
    let router = Router::new().route("/reserve", post(reserve)).route("/stock", get(stock)).with_state(inventory);
    super::finish(router, "inventory", super::Probe::None)
}

async fn reserve(State(inventory): State<SharedInventory>, JsonBody(request): JsonBody<ReserveRequest>) -> Result<Json<Ack>, ApiError> {
    let reservation = inventory.lock().expect("inventory lock").reserve(&request.order_id, &request.items);
    match reservation.outcome {
        ReserveOutcome::Reserved => {
            Ok(Json(Ack { order_id: request.order_id, status: "reserved".into(), repeat: !reservation.first_attempt }))
        }
        ReserveOutcome::Rejected { reason } => {
            Err(ApiError::new(StatusCode::CONFLICT, "insufficient_stock", reason).for_order(request.order_id))
        }
    }
}

async fn stock(State(inventory): State<SharedInventory>) -> Json<BTreeMap<String, u32>> {
    let inventory = inventory.lock().expect("inventory lock");
    Json(inventory.levels().iter().map(|(sku, n)| (sku.to_string(), *n)).collect())
}

/// Inventory's HTTP face in the messaging model, where orders arrive by queue: `GET /stats`,
/// `GET /outcomes` (order id → outcome), `GET /health`. For the lab's accounting.
pub fn admin_app(store: Arc<InventoryStore>, probe: super::Probe) -> Router {
    let router = Router::new().route("/stats", get(stats)).route("/outcomes", get(outcomes)).with_state(store);
    super::finish(router, "inventory", probe)
}

async fn stats(State(store): State<Arc<InventoryStore>>) -> Result<Json<InventoryStats>, ApiError> {
    Ok(Json(store.stats().await.map_err(ApiError::store)?))
}

async fn outcomes(State(store): State<Arc<InventoryStore>>) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    Ok(Json(store.outcomes().await.map_err(ApiError::store)?))
}
