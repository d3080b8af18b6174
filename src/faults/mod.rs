//! Failure injection, the assignment's for Part A ("each part includes failure injection":
//! a 2 s delay, a failure of Inventory): a [`FaultPlan`] says what is wrong with a service,
//! and [`apply_switch`] is the one place where a plan becomes behaviour. The same layer wraps
//! Part A's Inventory in the `campus` binary (its fault flags, [`FaultArgs`]) and in the lab's
//! simulated world, so a fault behaves the same in both.
//!
//! | fault   | what the caller sees                                  | where it is applied                  |
//! |---------|-------------------------------------------------------|--------------------------------------|
//! | `delay` | the reply comes `delay` later (the request is held *before* the handler runs: a caller that gives up first leaves nothing done) | [`apply_switch`] |
//! | `reply_delay` | the reply comes `reply_delay` later (held *after* the handler ran: a caller that gives up first leaves the work done, e.g. stock reserved behind a 504) | [`apply_switch`] |
//! | `error` | an immediate reply with that status and a JSON body   | [`apply_switch`]                     |
//! | `hang`  | no reply, ever (until the caller gives up)            | [`apply_switch`]                     |
//! | `down`  | nothing listens: connection refused                   | the lab's hosts: the world drops the instance, a process is SIGKILLed |
//! | silence (Part C) | a consumer's polls answer nothing while its partitions have records; it stays in its group | [`silence::SilencedLog`] |
//!
//! `GET /health` (and gRPC's `grpc.health.v1.Health` and reflection) is never faulted, so a harness can still
//! tell "up but slow" from "down". The faults hit the gRPC face as they hit the REST face (one
//! layer wraps both); an injected error reaches a gRPC caller as its code (`error_status` 500
//! reads `INTERNAL`, see `api::grpc::status`).
//! A running Inventory holds its plan in a [`FaultSwitch`]: set by the fault flags at start,
//! and changed at run time through its loopback-only `/admin/fault` ([`switch::routes`]).
//!
//! It lives in the production crate, not the lab, because the assignment makes injecting these
//! faults part of the service (and a compose deployment injects them into the production
//! binary); it is off unless a flag or the loopback-only endpoint turns it on.

pub mod args;
pub mod silence;
pub mod switch;

pub use args::{serve_env, FaultArgs, FAULT_ENV};
pub use switch::FaultSwitch;

use std::fmt;
use std::time::Duration;

use crate::api::ApiError;
use crate::model::{Model, Service};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

/// What is wrong with one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    /// Hold each request this long before handling it.
    pub delay: Option<Duration>,
    /// Hold each reply this long after the handler ran (the work is done, the answer is late).
    pub reply_delay: Option<Duration>,
    /// Answer every request with this status (e.g. 500) instead of handling it.
    #[serde(serialize_with = "status_code")]
    pub error: Option<StatusCode>,
    /// Never answer.
    pub hang: bool,
    /// Not running at all.
    pub down: bool,
}

fn status_code<S: serde::Serializer>(status: &Option<StatusCode>, s: S) -> Result<S::Ok, S::Error> {
    status.map(|c| c.as_u16()).serialize(s)
}

impl FaultPlan {
    pub fn healthy() -> Self {
        FaultPlan::default()
    }
    pub fn delayed(delay: Duration) -> Self {
        FaultPlan { delay: Some(delay), ..FaultPlan::default() }
    }
    /// Handles each request at once and holds its reply `delay`: Inventory reserves, then
    /// answers late.
    pub fn slow_reply(delay: Duration) -> Self {
        FaultPlan { reply_delay: Some(delay), ..FaultPlan::default() }
    }
    pub fn erroring(status: StatusCode) -> Self {
        FaultPlan { error: Some(status), ..FaultPlan::default() }
    }
    pub fn hanging() -> Self {
        FaultPlan { hang: true, ..FaultPlan::default() }
    }
    pub fn down() -> Self {
        FaultPlan { down: true, ..FaultPlan::default() }
    }
    pub fn is_healthy(&self) -> bool {
        *self == FaultPlan::default()
    }

    /// The `campus inventory` (and `campus-sim serve inventory`) flags that inject this plan (all but `down`).
    pub fn serve_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(delay) = self.delay {
            flags.extend(["--delay-ms".to_owned(), delay.as_millis().to_string()]);
        }
        if let Some(delay) = self.reply_delay {
            flags.extend(["--reply-delay-ms".to_owned(), delay.as_millis().to_string()]);
        }
        if let Some(status) = self.error {
            flags.extend(["--error-status".to_owned(), status.as_u16().to_string()]);
        }
        if self.hang {
            flags.push("--hang".to_owned());
        }
        flags
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_healthy() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if let Some(d) = self.delay {
            parts.push(format!("delay {} ms", d.as_millis()));
        }
        if let Some(d) = self.reply_delay {
            parts.push(format!("reply delay {} ms", d.as_millis()));
        }
        if let Some(s) = self.error {
            parts.push(format!("error {}", s.as_u16()));
        }
        if self.hang {
            parts.push("hang".into());
        }
        if self.down {
            parts.push("down".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// Whether `service` of `model` takes faults: Part A's Inventory, the one the assignment injects
/// a delay or a failure into.
pub fn takes_faults(model: Model, service: Service) -> bool {
    model == Model::SyncRest && service == Service::Inventory
}

/// A faultable service's router as it runs, in a process and in the lab's simulation alike:
/// suffering whatever plan `switch` holds at each request, and answering its loopback-only
/// `/admin/fault` (and the aliases other implementations use) to change it at run time.
pub fn switchable(router: Router, switch: &FaultSwitch) -> Router {
    apply_switch(router, switch).merge(switch::routes(switch.clone()))
}

/// Wraps a service's router so that it suffers whatever plan `switch` holds at each request
/// (the admin endpoint, [`switch::routes`], changes it at run time).
pub fn apply_switch(router: Router, switch: &FaultSwitch) -> Router {
    router.layer(axum::middleware::from_fn_with_state(switch.clone(), faulty))
}

/// Health checks, REST's and gRPC's, gRPC reflection (what a tool asks before it calls
/// anything) and the metrics scrape are never faulted.
fn is_probe(path: &str) -> bool {
    path == "/health" || path == "/metrics" || path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// A gRPC call (its content type is `application/grpc`, `application/grpc+proto`, …).
fn is_grpc(request: &Request) -> bool {
    request.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

async fn faulty(State(switch): State<FaultSwitch>, request: Request, next: Next) -> Response {
    if is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let plan = switch.get();
    if plan.is_healthy() {
        return next.run(request).await;
    }
    tracing::debug!(path = %request.uri().path(), plan = %plan, "injecting fault");
    if plan.hang {
        std::future::pending::<()>().await;
    }
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = plan.error {
        let error = ApiError::new(status, "injected_fault", format!("fault injected by the lab: answering {status}"));
        // A gRPC caller gets the status's code (500 reads `INTERNAL`), as gRPC answers errors.
        return if is_grpc(&request) { tonic::Status::from(error).into_http() } else { error.into_response() };
    }
    let response = next.run(request).await;
    if let Some(delay) = plan.reply_delay {
        tokio::time::sleep(delay).await;
    }
    response
}
