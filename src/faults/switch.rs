//! A fault plan that changes at run time: [`FaultSwitch`], read by the fault layer at every
//! request, and the admin endpoint that sets it — what course scripts expect of an Inventory
//! (`POST /admin/fault`), beside the fault flags that set it at start.
//!
//! | request | effect |
//! |---|---|
//! | `GET /admin/fault` | the plan now: `{"delay_ms", "reply_delay_ms", "error_status", "hang"}` |
//! | `POST /admin/fault` `{"delay_ms": 2000}`, `{"reply_delay_ms": 2000}`, `{"error_status": 500}`, `{"hang": true}` (any together) | replaces the plan; 200 with it |
//! | `DELETE /admin/fault` | no fault any more; 200 |
//!
//! Only a caller on loopback may use it (403 otherwise, e.g. through a container's published
//! port): a fault is the lab's to inject, never a visitor's. The endpoint itself is never
//! faulted, so a hung Inventory can still be mended.
//!
//! **Aliases.** Scripts written against other implementations of the assignment switch the
//! same faults under other names; these run unchanged here. Each alias changes only what its
//! body names, answers 200 with the plan now (as `GET /admin/fault` does; `GET` on an alias
//! shows it too), and follows the same loopback-only rule. Failing means answering 500, so
//! Order answers 503 as with `error_status` 500.
//!
//! | alias | body (any of the fields) |
//! |---|---|
//! | `POST /admin/delay` | `{"seconds": 2}` |
//! | `POST /admin/fail` | `{"enabled": true}` |
//! | `POST /config` | `{"delay_seconds": 2, "failure_enabled": true}` |
//! | `POST /configure` | `{"delay": 2, "failure_rate": 1}` |
//! | `POST /inject` | `{"delayMs": 2000, "forceFail": false}` |
//!
//! Every alias also takes the other aliases' fields (`delay_ms`, `fail`, `fail_enabled`,
//! `hang`), except `enabled`, which is ambiguous anywhere but `/admin/fail`. A `failure_rate`
//! other than 0 or 1 is refused: a fault here hits every request or none, so that a run is
//! reproducible (the lab's experiments need no dice). An unknown field is refused with 422
//! naming it; our own status codes and error shape stay as they are.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::ApiError;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
    /// Hold the reply this long after handling the request.
    #[serde(default)]
    pub reply_delay_ms: u64,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub hang: bool,
}

/// The longest delay the endpoint accepts (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

impl FaultBody {
    pub fn of(plan: &FaultPlan) -> Self {
        FaultBody {
            delay_ms: plan.delay.map_or(0, |d| d.as_millis() as u64),
            reply_delay_ms: plan.reply_delay.map_or(0, |d| d.as_millis() as u64),
            error_status: plan.error.map(|s| s.as_u16()),
            hang: plan.hang,
        }
    }

    fn plan(&self) -> Result<FaultPlan, String> {
        for (name, ms) in [("delay_ms", self.delay_ms), ("reply_delay_ms", self.reply_delay_ms)] {
            if ms > MAX_DELAY_MS {
                return Err(format!("{name} must be 0 to {MAX_DELAY_MS}, got {ms}"));
            }
        }
        let error = match self.error_status {
            None => None,
            Some(code @ 400..=599) => Some(StatusCode::from_u16(code).expect("in range")),
            Some(code) => return Err(format!("error_status must be 400 to 599, got {code}")),
        };
        let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Ok(FaultPlan { delay: millis(self.delay_ms), reply_delay: millis(self.reply_delay_ms), error, hang: self.hang, down: false })
    }
}

/// The paths of the aliases (see the module's table).
pub const ALIASES: [&str; 5] = ["/admin/delay", "/admin/fail", "/config", "/configure", "/inject"];

/// `/admin/fault` and its aliases over `switch`, for callers on loopback only.
pub fn routes(switch: FaultSwitch) -> Router {
    let mut router = Router::new().route("/admin/fault", get(show).post(set).delete(clear));
    for path in ALIASES {
        let enabled_means_fail = path == "/admin/fail";
        router = router.route(path, get(show).post(move |state, body| change(state, body, enabled_means_fail)));
    }
    router.layer(axum::middleware::from_fn(loopback_only)).with_state(switch)
}

/// A change in any alias's words.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    seconds: Option<f64>,
    delay: Option<f64>,
    delay_seconds: Option<f64>,
    delay_ms: Option<u64>,
    #[serde(rename = "delayMs")]
    delay_ms_camel: Option<u64>,
    enabled: Option<bool>,
    fail: Option<bool>,
    fail_enabled: Option<bool>,
    failure_enabled: Option<bool>,
    #[serde(rename = "forceFail")]
    force_fail: Option<bool>,
    failure_rate: Option<f64>,
    hang: Option<bool>,
}

/// At most one of a setting's spellings.
fn one<T>(named: impl IntoIterator<Item = (&'static str, Option<T>)>) -> Result<Option<T>, String> {
    let given: Vec<(&str, T)> = named.into_iter().filter_map(|(name, v)| v.map(|v| (name, v))).collect();
    match given.len() {
        0 | 1 => Ok(given.into_iter().next().map(|(_, v)| v)),
        _ => Err(format!("give one of {}, not several", given.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))),
    }
}

impl Change {
    /// `plan` with this change applied.
    fn apply(self, mut plan: FaultPlan, enabled_means_fail: bool) -> Result<FaultPlan, String> {
        if self.enabled.is_some() && !enabled_means_fail {
            return Err("`enabled` is ambiguous here: say `failure_enabled` (or use POST /admin/fail)".into());
        }
        let seconds = one([("seconds", self.seconds), ("delay", self.delay), ("delay_seconds", self.delay_seconds)])?;
        let millis = one([("delay_ms", self.delay_ms), ("delayMs", self.delay_ms_camel)])?;
        let delay_ms = match (seconds, millis) {
            (Some(_), Some(_)) => return Err("give the delay in seconds or in milliseconds, not both".into()),
            (Some(s), None) if !(0.0..=(MAX_DELAY_MS / 1000) as f64).contains(&s) => {
                return Err(format!("a delay of {s} s: 0 to {} s", MAX_DELAY_MS / 1000))
            }
            (Some(s), None) => Some((s * 1000.0).round() as u64),
            (None, ms) => ms,
        };
        let rate = match self.failure_rate {
            None => None,
            Some(r) if r == 0.0 || r == 1.0 => Some(r == 1.0),
            Some(r) => {
                return Err(format!(
                    "failure_rate {r}: 0 or 1 only (a fault here hits every request or none, so that runs are reproducible)"
                ))
            }
        };
        let fail = one([
            ("enabled", self.enabled),
            ("fail", self.fail),
            ("fail_enabled", self.fail_enabled),
            ("failure_enabled", self.failure_enabled),
            ("forceFail", self.force_fail),
            ("failure_rate", rate),
        ])?;
        if let Some(ms) = delay_ms {
            if ms > MAX_DELAY_MS {
                return Err(format!("a delay of {ms} ms: 0 to {MAX_DELAY_MS} ms"));
            }
            plan.delay = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(fail) = fail {
            plan.error = fail.then_some(StatusCode::INTERNAL_SERVER_ERROR);
        }
        if let Some(hang) = self.hang {
            plan.hang = hang;
        }
        Ok(plan)
    }
}

async fn change(State(switch): State<FaultSwitch>, body: axum::body::Bytes, enabled_means_fail: bool) -> Response {
    let parsed: Result<Change, String> =
        if body.is_empty() { Ok(Change::default()) } else { serde_json::from_slice(&body).map_err(|e| e.to_string()) };
    match parsed.and_then(|c| c.apply(switch.get(), enabled_means_fail)) {
        Ok(plan) => {
            switch.set(plan.clone());
            Json(FaultBody::of(&plan)).into_response()
        }
        Err(reason) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_fault", reason).into_response(),
    }
}

async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if peer.is_some_and(|p| p.ip().is_loopback()) {
        return next.run(request).await;
    }
    let who = peer.map_or("an unknown caller".to_owned(), |p| p.ip().to_string());
    ApiError::new(StatusCode::FORBIDDEN, "admin_loopback_only", format!("/admin/fault answers callers on loopback only, not {who}"))
        .into_response()
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

    /// POSTs `body` to `path` from loopback; the status and the plan the switch holds after.
    async fn post(switch: &FaultSwitch, path: &str, body: &str) -> (StatusCode, FaultPlan) {
        let mut request =
            Request::post(path).header("content-type", "application/json").body(axum::body::Body::from(body.to_owned())).unwrap();
        request.extensions_mut().insert(ConnectInfo("127.0.0.1:5000".parse::<SocketAddr>().unwrap()));
        let status = routes(switch.clone()).oneshot(request).await.unwrap().status();
        (status, switch.get())
    }

    fn delayed(ms: u64) -> FaultPlan {
        FaultPlan { delay: Some(Duration::from_millis(ms)), ..FaultPlan::healthy() }
    }

    fn failing() -> FaultPlan {
        FaultPlan { error: Some(StatusCode::INTERNAL_SERVER_ERROR), ..FaultPlan::healthy() }
    }

    #[tokio::test]
    async fn the_fault_endpoints_of_other_implementations_switch_the_same_faults_with_their_own_bodies() {
        let cases = [
            ("/admin/delay", r#"{"seconds": 2}"#, delayed(2000)),
            ("/admin/delay", r#"{"seconds": 0}"#, FaultPlan::healthy()),
            ("/admin/fail", r#"{"enabled": true}"#, failing()),
            ("/admin/fail", r#"{"enabled": false}"#, FaultPlan::healthy()),
            (
                "/config",
                r#"{"delay_seconds": 2, "failure_enabled": true}"#,
                FaultPlan { error: Some(StatusCode::INTERNAL_SERVER_ERROR), ..delayed(2000) },
            ),
            ("/config", r#"{"delay_seconds": 0, "failure_enabled": false}"#, FaultPlan::healthy()),
            ("/configure", r#"{"delay": 1.5}"#, delayed(1500)),
            ("/configure", r#"{"delay": 0, "failure_rate": 1.0}"#, failing()),
            ("/configure", r#"{"failure_rate": 0}"#, FaultPlan::healthy()),
            ("/inject", r#"{"delayMs": 2000, "forceFail": false}"#, delayed(2000)),
            ("/inject", r#"{"delayMs": 0, "forceFail": true}"#, failing()),
            ("/inject", r#"{"forceFail": false}"#, FaultPlan::healthy()),
        ];
        let switch = FaultSwitch::default();
        for (path, body, want) in cases {
            assert_eq!(post(&switch, path, body).await, (StatusCode::OK, want), "POST {path} {body}");
        }
    }

    #[tokio::test]
    async fn an_alias_changes_only_what_its_body_names() {
        let switch = FaultSwitch::new(failing());
        let (status, plan) = post(&switch, "/admin/delay", r#"{"seconds": 2}"#).await;
        assert_eq!((status, plan), (StatusCode::OK, FaultPlan { error: Some(StatusCode::INTERNAL_SERVER_ERROR), ..delayed(2000) }));
    }

    #[tokio::test]
    async fn an_alias_refuses_what_it_cannot_do_and_changes_nothing() {
        let switch = FaultSwitch::new(delayed(100));
        for (path, body) in [
            ("/configure", r#"{"failure_rate": 0.3}"#),
            ("/config", r#"{"enabled": true}"#),
            ("/inject", r#"{"delayMs": 2000, "delay_ms": 100}"#),
            ("/admin/delay", r#"{"seconds": -1}"#),
            ("/admin/delay", r#"{"seconds": 2, "colour": "red"}"#),
        ] {
            assert_eq!(post(&switch, path, body).await, (StatusCode::UNPROCESSABLE_ENTITY, delayed(100)), "POST {path} {body}");
        }
    }

    #[tokio::test]
    async fn only_a_caller_on_loopback_may_switch_a_fault() {
        assert_eq!(status_from("127.0.0.1:5000").await, StatusCode::OK);
        assert_eq!(status_from("[::1]:5000").await, StatusCode::OK);
        assert_eq!(status_from("172.17.0.1:5000").await, StatusCode::FORBIDDEN, "a container's published port is not loopback");
    }
}
