//! Order's HTTP face in the synchronous model: `POST /order`, `GET /health`.
//!
//! | outcome                                   | status | `error`                 |
//! |-------------------------------------------|--------|-------------------------|
//! | reserved (and notified, or not: see body) | 201    | —                       |
//! | stock short                               | 409    | `insufficient_stock`    |
//! | Inventory did not answer in time          | 504    | `inventory_timeout`     |
//! | Inventory down, or answered 5xx           | 503    | `inventory_unavailable` |
//! | body not JSON / invalid order / too large | 400 / 422 / 413 | `malformed_json` / `invalid_order` / `body_too_large` |

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, JsonBody};
use crate::domain::{OrderId, OrderRequest};
use crate::services::order::{Notified, PlaceError, SyncOrderService};

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
    super::finish(Router::new().route("/order", post(place)).with_state(service), "order")
}

async fn place(
    State(service): State<Arc<SyncOrderService>>,
    JsonBody(request): JsonBody<OrderRequest>,
) -> Result<(StatusCode, Json<OrderPlacedReply>), ApiError> {
    let placed = service.place(request).await?;
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
        };
        ApiError::new(status, label, e.to_string()).for_order(e.order_id().clone())
    }
}
