//! The HTTP faces of the services and the wire contract between them (Part A):
//!
//! - Order `POST /order` → 201 placed, 409 out of stock, 504 inventory timed out,
//!   503 inventory down or failing, 4xx invalid input;
//! - Inventory `POST /reserve` → 200 reserved, 409 out of stock;
//! - Notification `POST /send` → 200 sent;
//! - `GET /health` on each;
//! - Part C's faces live with Part C (the `api` module of `streaming_kafka`).
//!
//! Each service is one `fn app(state) -> Router`, so tests call it with `oneshot` and the lab
//! runs the very same router in memory. Every error is JSON ([`ErrorBody`]); internals stay
//! in the logs.

pub mod grpc;
pub mod inventory;
pub mod notification;
pub mod order;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::domain::OrderId;
use crate::transport::queue::MessageQueue;
pub use crate::wire::{Ack, ErrorBody, ReserveRequest, SendRequest};

/// Larger request bodies are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An error reply: a status and an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, detail: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), detail: detail.into(), order_id: None } }
    }

    /// A store failure, the detail in the logs: 503 while the store's database does not answer
    /// (it is restarting; whether a write that was under way landed is not known, so the client
    /// sends the request again under the same `Idempotency-Key`, and it stays one order), else
    /// 500.
    pub fn store(e: crate::store::StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "the store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the service's database does not answer: send the request again under the same Idempotency-Key (it stays one order)",
            )
        } else {
            tracing::error!(error = %e, "store failure");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", "the service could not read or write its store")
        }
    }

    pub fn for_order(mut self, order_id: OrderId) -> Self {
        self.body.order_id = Some(order_id);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let label = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_order",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "bad_request",
        };
        ApiError::new(rejection.status(), label, rejection.body_text())
    }
}

/// `Json<T>`, but a rejection is an [`ApiError`] (JSON), not axum's plain-text one.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state).await.map(|Json(v)| JsonBody(v)).map_err(ApiError::from)
    }
}

/// A request's `Idempotency-Key` header, read as the order's id (1 to 64 of `[A-Za-z0-9_-]`;
/// anything else is refused with 422 `invalid_order`). See [`crate::domain::OrderRequest::order_id`].
pub struct IdempotencyKey(pub Option<OrderId>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKey(None)) };
        let text = value
            .to_str()
            .map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_order", "the Idempotency-Key header is not text"))?;
        OrderId::parse(text)
            .map(|id| IdempotencyKey(Some(id)))
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_order", format!("Idempotency-Key: {e}")))
    }
}

impl IdempotencyKey {
    /// `request` under this key, or 422 if its body names another order id.
    pub fn apply(self, request: crate::domain::OrderRequest) -> Result<crate::domain::OrderRequest, ApiError> {
        request.keyed(self.0).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_order", e.to_string()))
    }
}

/// `GET /health` of every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`; `degraded` (working, without a dependency); `unavailable` (cannot do its job now).
    pub status: String,
    pub service: String,
    /// The broker connection of a messaging service: `connected` or `reconnecting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// What `GET /health` reports about a service's broker.
///
/// The decision: `/health` tells whether the service can do its job *now*, and the status
/// code says whether to send it work. Order without its broker still accepts orders (its
/// outbox holds them until the relay can publish), so it answers **200 `degraded`**; Inventory
/// and Notification can do nothing without the broker, so they answer **503 `unavailable`**
/// until it is back. Either way the process keeps running and reconnects by itself: a
/// supervisor should not restart it for this (the process answering at all is its liveness).
#[derive(Clone)]
pub enum Probe {
    /// No broker (Part A): always `ok`.
    None,
    /// 200 `degraded` while the queue is disconnected.
    DegradedWithout(Arc<dyn MessageQueue>),
    /// 503 `unavailable` while the queue is disconnected.
    UnavailableWithout(Arc<dyn MessageQueue>),
}

impl Probe {
    pub fn degraded_without(mq: Arc<dyn MessageQueue>) -> Self {
        Probe::DegradedWithout(mq)
    }

    pub fn unavailable_without(mq: Arc<dyn MessageQueue>) -> Self {
        Probe::UnavailableWithout(mq)
    }

    fn report(&self, service: &'static str) -> (StatusCode, Json<Health>) {
        let health = |status: &str, broker: Option<&str>| {
            Json(Health { status: status.into(), service: service.into(), broker: broker.map(str::to_owned) })
        };
        match self {
            Probe::None => (StatusCode::OK, health("ok", None)),
            Probe::DegradedWithout(mq) | Probe::UnavailableWithout(mq) if mq.is_connected() => {
                (StatusCode::OK, health("ok", Some("connected")))
            }
            Probe::DegradedWithout(_) => (StatusCode::OK, health("degraded", Some("reconnecting"))),
            Probe::UnavailableWithout(_) => (StatusCode::SERVICE_UNAVAILABLE, health("unavailable", Some("reconnecting"))),
        }
    }
}

/// Unknown paths answer 404 in JSON too.
async fn not_found(request: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {} {}", request.method(), request.uri().path()))
}

/// `GET /completions`: when each order's workflow ended at this service (the lab's
/// completion latency), oldest first.
pub(crate) fn completions(completions: crate::services::completions::Completions) -> axum::Router {
    axum::Router::new().route("/completions", axum::routing::get(move || async move { axum::Json(completions.list()) }))
}

/// The pieces every service's router shares: health, the JSON 404 and the body limit.
pub(crate) fn finish(router: axum::Router, service: &'static str, probe: Probe) -> axum::Router {
    router
        .route("/health", axum::routing::get(move || async move { probe.report(service) }))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}
