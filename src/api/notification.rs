//! Notification's HTTP face: `POST /send`, `GET /sent` (the last [`SENT_SHOWN`] confirmations,
//! oldest first, and in the `x-campus-sent` header how many were sent in all), `GET /health`.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Ack, ApiError, JsonBody, SendRequest};
use crate::services::completions::Completions;
use crate::services::notification::{Confirmation, Notifier};
use crate::store::{NotificationStats, NotificationStore};

pub type SharedNotifier = Arc<Mutex<Notifier>>;

pub fn app(notifier: SharedNotifier) -> Router {
    let router = Router::new().route("/send", post(send)).route("/sent", get(sent)).with_state(notifier);
    super::finish(router, "notification", super::Probe::None)
}

async fn send(State(notifier): State<SharedNotifier>, JsonBody(request): JsonBody<SendRequest>) -> Result<Json<Ack>, ApiError> {
    let first = notifier.lock().expect("notifier lock").send(request.order_id.clone(), request.student_id);
    Ok(Json(Ack { order_id: request.order_id, status: "sent".into(), repeat: !first }))
}

/// Confirmations `GET /sent` shows: the latest, so that the answer stays small however many
/// orders passed.
pub const SENT_SHOWN: usize = 1000;

async fn sent(State(notifier): State<SharedNotifier>) -> ([(&'static str, String); 1], Json<Vec<Confirmation>>) {
    let notifier = notifier.lock().expect("notifier lock");
    ([("x-campus-sent", notifier.sent().to_string())], Json(notifier.latest(SENT_SHOWN)))
}

/// Notification's HTTP face in the messaging model: `GET /stats`, `GET /notified` (order ids),
/// `GET /completions` (when each was confirmed), `GET /health`. For the lab's accounting.
pub fn admin_app(store: Arc<NotificationStore>, completions: Completions, probe: super::Probe) -> Router {
    let router = Router::new()
        .route("/stats", get(stats))
        .route("/notified", get(notified))
        .with_state(store)
        .merge(super::completions(completions));
    super::finish(router, "notification", probe)
}

async fn stats(State(store): State<Arc<NotificationStore>>) -> Result<Json<NotificationStats>, ApiError> {
    Ok(Json(store.stats().await.map_err(ApiError::store)?))
}

async fn notified(State(store): State<Arc<NotificationStore>>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(store.notified().await.map_err(ApiError::store)?))
}
