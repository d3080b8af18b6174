//! Order's HTTP face: in the synchronous model ([`sync_app`]) and the messaging model
//! ([`async_app`]).
//!
//! | outcome                                   | status | `error`                 |
//! |-------------------------------------------|--------|-------------------------|
//! | reserved (and notified, or not: see body) | 201    | —                       |
//! | stock short                               | 409    | `insufficient_stock`    |
//! | Inventory did not answer in time          | 504    | `inventory_timeout`     |
//! | Inventory down, or answered 5xx           | 503    | `inventory_unavailable` |
//! | body not JSON / invalid order / too large | 400 / 422 / 413 | `malformed_json` / `invalid_order` / `body_too_large` |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, IdempotencyKey, JsonBody};
use crate::domain::{OrderId, OrderRequest, OrderStatus};
use crate::services::order::{AsyncOrderService, Notified, PlaceError, SyncOrderService};
use crate::store::{OrderRecord, OrderStats};
use crate::telemetry::trace;

/// The 201 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlacedReply {
    pub order_id: OrderId,
    /// Always `confirmed`: the stock is reserved.
    pub status: String,
    /// `sent`, or `failed` with `notification_detail` saying why.
    pub notification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_detail: Option<String>,
}

pub fn sync_app(service: Arc<SyncOrderService>) -> Router {
    super::finish(Router::new().route("/order", post(place)).with_state(service), "order", super::Probe::None)
}

async fn place(
    State(service): State<Arc<SyncOrderService>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<OrderRequest>,
) -> Result<(StatusCode, Json<OrderPlacedReply>), ApiError> {
    let placed = service.place(key.apply(request)?).await.inspect_err(|e| trace::tag_order(e.order_id().as_str()))?;
    trace::tag_order(placed.order_id.as_str());
    let (notification, notification_detail) = match placed.notified {
        Notified::Sent => ("sent", None),
        Notified::Failed { detail } => ("failed", Some(detail)),
    };
    Ok((
        StatusCode::CREATED,
        Json(OrderPlacedReply {
            order_id: placed.order_id,
            status: "confirmed".into(),
            notification: notification.into(),
            notification_detail,
        }),
    ))
}

impl From<PlaceError> for ApiError {
    fn from(e: PlaceError) -> Self {
        let (status, label) = match &e {
            PlaceError::OutOfStock { .. } => (StatusCode::CONFLICT, "insufficient_stock"),
            PlaceError::InventoryTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "inventory_timeout"),
            PlaceError::InventoryUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "inventory_unavailable"),
            PlaceError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        };
        ApiError::new(status, label, e.to_string()).for_order(e.order_id().clone())
    }
}

/// The 202 body of the messaging model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAcceptedReply {
    pub order_id: OrderId,
    /// `accepted`: stored, and on its way to Inventory. `GET /order/{id}` tells the rest. For a
    /// repeat of a client's key, the order's status now (`accepted`, `reserved` or `failed`).
    pub status: OrderStatus,
    /// True when the key (order id) was accepted before: nothing was stored or published now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
}

/// Order's state for the lab's accounting (`GET /orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersReply {
    pub stats: OrderStats,
    /// order id → status
    pub statuses: BTreeMap<String, OrderStatus>,
}

/// Order's HTTP face in the messaging model: `POST /order` (202), `GET /order/{id}`,
/// `GET /orders`, `GET /health`.
pub fn async_app(service: Arc<AsyncOrderService>, probe: super::Probe) -> Router {
    let router = Router::new()
        .route("/order", post(accept))
        .route("/order/{id}", get(status))
        .route("/orders", get(orders))
        .route("/stats", get(stats))
        .with_state(service);
    super::finish(router, "order", probe)
}

async fn accept(
    State(service): State<Arc<AsyncOrderService>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<OrderRequest>,
) -> Result<(StatusCode, Json<OrderAcceptedReply>), ApiError> {
    // The request's span (the door's), for the relay to publish the order under.
    let traceparent = trace::traceparent_of(&opentelemetry::Context::current());
    let accepted = service.accept(key.apply(request)?, traceparent).await.map_err(ApiError::store)?;
    trace::tag_order(accepted.order_id.as_str());
    Ok((StatusCode::ACCEPTED, Json(OrderAcceptedReply { order_id: accepted.order_id, status: accepted.status, repeat: accepted.repeat })))
}

async fn status(State(service): State<Arc<AsyncOrderService>>, Path(id): Path<String>) -> Result<Json<OrderRecord>, ApiError> {
    match service.store().get(&id).await.map_err(ApiError::store)? {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_order", format!("no order {id:?}"))),
    }
}

async fn stats(State(service): State<Arc<AsyncOrderService>>) -> Result<Json<OrderStats>, ApiError> {
    Ok(Json(service.stats().await.map_err(ApiError::store)?))
}

async fn orders(State(service): State<Arc<AsyncOrderService>>) -> Result<Json<OrdersReply>, ApiError> {
    Ok(Json(OrdersReply {
        stats: service.stats().await.map_err(ApiError::store)?,
        statuses: service.store().statuses().await.map_err(ApiError::store)?,
    }))
}
