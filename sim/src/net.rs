//! [`SimNet`]: request/reply in memory. Each call goes to the very same axum `Router` a service
//! serves over TCP, through `tower::ServiceExt::oneshot`, after a seeded one-way link latency,
//! and the reply comes back after another. Time is the runtime's (virtual in the lab).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use campus::transport::{BoxFuture, CallError, RequestReply};
use campus::Service;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::rng::SimRng;

/// One-way latency of a hop, uniform in `min..=max`. The default, 1–3 ms, stands for a hop
/// across a campus network plus a little handler time. It is drawn in whole milliseconds
/// because tokio's timer has millisecond resolution (a 0.2 ms sleep lasts 1 ms). It is a
/// model, and the report says so next to every simulated latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkModel {
    pub min: Duration,
    pub max: Duration,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel { min: Duration::from_millis(1), max: Duration::from_millis(3) }
    }
}

enum Host {
    Up(Router),
    Down,
}

/// The in-memory network of request/reply services.
pub struct SimNet {
    hosts: Mutex<BTreeMap<Service, Host>>,
    rng: Mutex<SimRng>,
    link: LinkModel,
    /// Calls made (each a request and, unless refused or abandoned, a reply).
    calls: AtomicU64,
}

impl SimNet {
    pub fn new(rng: SimRng, link: LinkModel) -> Self {
        SimNet { hosts: Mutex::new(BTreeMap::new()), rng: Mutex::new(rng), link, calls: AtomicU64::new(0) }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `peer` now answers with `router`.
    pub fn host(&self, peer: Service, router: Router) {
        self.hosts.lock().expect("hosts lock").insert(peer, Host::Up(router));
    }

    /// `peer` stops answering: calls to it are refused, as a closed port refuses.
    pub fn take_down(&self, peer: Service) {
        self.hosts.lock().expect("hosts lock").insert(peer, Host::Down);
    }

    /// Whether `peer` is hosted and up.
    pub fn is_up(&self, peer: Service) -> bool {
        matches!(self.hosts.lock().expect("hosts lock").get(&peer), Some(Host::Up(_)))
    }

    /// Forgets every host (routers hold services that hold this net: this breaks the cycle).
    pub fn clear(&self) {
        self.hosts.lock().expect("hosts lock").clear();
    }

    fn hop(&self) -> Duration {
        let (lo, hi) = (self.link.min.as_millis() as u64, self.link.max.as_millis() as u64);
        Duration::from_millis(self.rng.lock().expect("rng lock").between(lo, hi))
    }

    async fn send(&self, to: Service, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, CallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.hop()).await;
        let router = match self.hosts.lock().expect("hosts lock").get(&to) {
            Some(Host::Up(router)) => router.clone(),
            Some(Host::Down) => return Err(CallError::Unreachable { peer: to, detail: "connection refused (host is down)".into() }),
            None => return Err(CallError::Unreachable { peer: to, detail: "no such host in the simulation".into() }),
        };
        let (parts, body) = request.into_parts();
        let response =
            router.oneshot(http::Request::from_parts(parts, axum::body::Body::from(body))).await.unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| CallError::Failed { peer: to, detail: format!("reading the reply: {e}") })?.to_bytes();
        tokio::time::sleep(self.hop()).await;
        Ok(http::Response::from_parts(parts, body))
    }
}

impl RequestReply for SimNet {
    fn call(&self, to: Service, request: http::Request<Bytes>) -> BoxFuture<'_, Result<http::Response<Bytes>, CallError>> {
        Box::pin(self.send(to, request))
    }
}
