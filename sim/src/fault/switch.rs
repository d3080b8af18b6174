//! A fault plan that changes at run time: [`FaultSwitch`], read by the fault layer at every
//! request, and the admin endpoint that sets it — what course scripts expect of an Inventory
//! (`POST /admin/fault`), beside the fault flags that set it at start.
//!
//! | request | effect |
//! |---|---|
//! | `GET /admin/fault` | the plan now: `{"delay_ms", "error_status", "hang"}` |
//! | `POST /admin/fault` `{"delay_ms": 2000}`, `{"error_status": 500}`, `{"hang": true}` (any together) | replaces the plan; 200 with it |
//! | `DELETE /admin/fault` | no fault any more; 200 |
//!
//! Only a caller on loopback may use it (403 otherwise, e.g. through a container's published
//! port): a fault is the lab's to inject, never a visitor's. The endpoint itself is never
//! faulted, so a hung Inventory can still be mended.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use campus::api::ApiError;
use serde::{Deserialize, Serialize};

use super::FaultPlan;

/// The plan a running service suffers now.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<RwLock<FaultPlan>>);

impl FaultSwitch {
    pub fn new(plan: FaultPlan) -> Self {
        FaultSwitch(Arc::new(RwLock::new(plan)))
    }

    pub fn get(&self) -> FaultPlan {
        self.0.read().expect("fault switch lock").clone()
    }

    pub fn set(&self, plan: FaultPlan) {
        tracing::info!(fault = %plan, "fault switched");
        *self.0.write().expect("fault switch lock") = plan;
    }
}

/// A plan as the admin endpoint reads and writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultBody {
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub hang: bool,
}

/// The longest delay the endpoint accepts (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

impl FaultBody {
    fn of(plan: &FaultPlan) -> Self {
        FaultBody { delay_ms: plan.delay.map_or(0, |d| d.as_millis() as u64), error_status: plan.error.map(|s| s.as_u16()), hang: plan.hang }
    }

    fn plan(&self) -> Result<FaultPlan, String> {
        if self.delay_ms > MAX_DELAY_MS {
            return Err(format!("delay_ms must be 0 to {MAX_DELAY_MS}, got {}", self.delay_ms));
        }
        let error = match self.error_status {
            None => None,
            Some(code @ 400..=599) => Some(StatusCode::from_u16(code).expect("in range")),
            Some(code) => return Err(format!("error_status must be 400 to 599, got {code}")),
        };
        Ok(FaultPlan { delay: (self.delay_ms > 0).then(|| Duration::from_millis(self.delay_ms)), error, hang: self.hang, down: false })
    }
}

/// `/admin/fault` over `switch`, for callers on loopback only.
pub fn routes(switch: FaultSwitch) -> Router {
    Router::new()
        .route("/admin/fault", get(show).post(set).delete(clear))
        .layer(axum::middleware::from_fn(loopback_only))
        .with_state(switch)
}

async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if peer.is_some_and(|p| p.ip().is_loopback()) {
        return next.run(request).await;
    }
    let who = peer.map_or("an unknown caller".to_owned(), |p| p.ip().to_string());
    ApiError::new(StatusCode::FORBIDDEN, "admin_loopback_only", format!("/admin/fault answers callers on loopback only, not {who}")).into_response()
}

async fn show(State(switch): State<FaultSwitch>) -> Json<FaultBody> {
    Json(FaultBody::of(&switch.get()))
}

async fn set(State(switch): State<FaultSwitch>, body: axum::body::Bytes) -> Response {
    let parsed: Result<FaultBody, String> = serde_json::from_slice(&body).map_err(|e| e.to_string());
    match parsed.and_then(|b| b.plan()) {
        Ok(plan) => {
            switch.set(plan.clone());
            Json(FaultBody::of(&plan)).into_response()
        }
        Err(reason) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_fault", reason).into_response(),
    }
}

async fn clear(State(switch): State<FaultSwitch>) -> Json<FaultBody> {
    switch.set(FaultPlan::healthy());
    Json(FaultBody::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn status_from(peer: &str) -> StatusCode {
        let mut request = Request::get("/admin/fault").body(axum::body::Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        routes(FaultSwitch::default()).oneshot(request).await.unwrap().status()
    }

    #[test]
    fn only_a_caller_on_loopback_may_switch_a_fault() {
        crate::world::block_on(async {
            assert_eq!(status_from("127.0.0.1:5000").await, StatusCode::OK);
            assert_eq!(status_from("[::1]:5000").await, StatusCode::OK);
            assert_eq!(status_from("172.17.0.1:5000").await, StatusCode::FORBIDDEN, "a container's published port is not loopback");
        });
    }
}
