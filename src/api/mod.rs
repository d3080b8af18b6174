//! The HTTP faces of the services and the wire contract between them (Part A):
//!
//! - Order `POST /order` → 201 placed, 409 out of stock, 504 inventory timed out,
//!   503 inventory down or failing, 4xx invalid input;
//! - Inventory `POST /reserve` → 200 reserved, 409 out of stock;
//! - Notification `POST /send` → 200 sent;
//! - `GET /health` on each.
//!
//! Each service is one `fn app(state) -> Router`, so tests call it with `oneshot` and the lab
//! runs the very same router in memory. Every error is JSON ([`ErrorBody`]); internals stay
//! in the logs.

pub mod inventory;
pub mod notification;
pub mod order;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::OrderId;
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

    /// A store failure: 500, the detail in the logs.
    pub fn store(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", "the service could not read or write its store")
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

/// `GET /health` of every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub service: String,
}

fn health(service: &'static str) -> Json<Health> {
    Json(Health { status: "ok".into(), service: service.into() })
}

/// Unknown paths answer 404 in JSON too.
async fn not_found(request: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {} {}", request.method(), request.uri().path()))
}

/// The pieces every service's router shares: health, the JSON 404 and the body limit.
fn finish(router: axum::Router, service: &'static str) -> axum::Router {
    router
        .route("/health", axum::routing::get(move || async move { health(service) }))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}
