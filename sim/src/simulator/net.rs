//! [`SimNet`]: request/reply in memory. Each call goes to the very same axum `Router` a service
//! serves over TCP, through `tower::ServiceExt::oneshot`, after a seeded one-way link latency,
//! and the reply comes back after another. Time is the runtime's (virtual in the lab). A gRPC
//! call takes the same path ([`RequestReply::grpc`]): the router answers it on its gRPC face,
//! and its reply streams back with its trailers. The link is one model for both protocols:
//! what differs on the wire (HTTP/2 framing, protobuf's smaller bodies, one connection) is not
//! modelled, so the simulation shows how the protocols' semantics differ (deadlines, status
//! codes), and the real runs how their costs do.
//!
//! A service may run as several instances (Part B's Inventory, Part C's scaled-out members): a
//! call to the service reaches its first instance that is up, as the lab's HTTP client does in
//! real mode. [`SimNet::observer`] is the lab's own look at the services: the same routers,
//! without the link (no latency, nothing drawn), so that reading an account changes nothing in
//! the run; [`SimNet::instance`] looks at one instance the same way.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use campus::transport::{BoxFuture, CallError, GrpcChannel, RequestReply};
use campus::Service;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::simulator::rng::SimRng;

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
    hosts: Mutex<BTreeMap<(Service, usize), Host>>,
    rng: Mutex<SimRng>,
    link: LinkModel,
    /// Calls made (each a request and, unless refused or abandoned, a reply).
    calls: AtomicU64,
    /// Calls made to each service.
    calls_to: Mutex<BTreeMap<Service, u64>>,
}

impl SimNet {
    pub fn new(rng: SimRng, link: LinkModel) -> Self {
        SimNet {
            hosts: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(rng),
            link,
            calls: AtomicU64::new(0),
            calls_to: Mutex::new(BTreeMap::new()),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls made to `service` so far (the lab's own looks not counted).
    pub fn calls_to(&self, service: Service) -> u64 {
        self.calls_to.lock().expect("calls lock").get(&service).copied().unwrap_or(0)
    }

    /// Instance `instance` of `service` now answers with `router`.
    pub fn host(&self, service: Service, instance: usize, router: Router) {
        self.hosts.lock().expect("hosts lock").insert((service, instance), Host::Up(router));
    }

    /// Instance `instance` of `service` stops answering: calls that would reach it are refused,
    /// as a closed port refuses.
    pub fn take_down(&self, service: Service, instance: usize) {
        self.hosts.lock().expect("hosts lock").insert((service, instance), Host::Down);
    }

    /// Whether some instance of `service` is up.
    pub fn is_up(&self, service: Service) -> bool {
        self.hosts.lock().expect("hosts lock").iter().any(|((s, _), host)| *s == service && matches!(host, Host::Up(_)))
    }

    /// The router a call to `service` (instance `instance` if given) reaches now.
    fn route(&self, to: Service, instance: Option<usize>) -> Result<Router, CallError> {
        let hosts = self.hosts.lock().expect("hosts lock");
        let mut known = false;
        for ((service, k), host) in hosts.iter() {
            if *service != to || instance.is_some_and(|wanted| wanted != *k) {
                continue;
            }
            known = true;
            if let Host::Up(router) = host {
                return Ok(router.clone());
            }
        }
        let detail = if known { "connection refused (host is down)" } else { "no such host in the simulation" };
        Err(CallError::Unreachable { peer: to, detail: detail.into() })
    }

    /// The lab's own look at the services: no link between (see the module's doc).
    pub fn observer(self: &Arc<Self>) -> Arc<dyn RequestReply> {
        Arc::new(Look { net: self.clone(), instance: None })
    }

    /// The lab's own look at instance `instance` of whichever service it calls.
    pub fn instance(self: &Arc<Self>, instance: usize) -> Arc<dyn RequestReply> {
        Arc::new(Look { net: self.clone(), instance: Some(instance) })
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
        *self.calls_to.lock().expect("calls lock").entry(to).or_default() += 1;
        tokio::time::sleep(self.hop()).await;
        let response = handle(self.route(to, None)?, to, request).await?;
        tokio::time::sleep(self.hop()).await;
        Ok(response)
    }
}

impl SimNet {
    /// A gRPC call: like [`SimNet::send`], but the reply is handed on as it streams, trailers
    /// (where gRPC puts its status) and all.
    async fn send_grpc(
        &self,
        to: Service,
        request: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<tonic::body::Body>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        *self.calls_to.lock().expect("calls lock").entry(to).or_default() += 1;
        tokio::time::sleep(self.hop()).await;
        let router = self.route(to, None).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let response = router.oneshot(request.map(axum::body::Body::new)).await.unwrap_or_else(|never| match never {});
        tokio::time::sleep(self.hop()).await;
        Ok(response.map(tonic::body::Body::new))
    }
}

/// `request` handled by `router`, its reply read whole.
async fn handle(router: Router, to: Service, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, CallError> {
    let (parts, body) = request.into_parts();
    let response =
        router.oneshot(http::Request::from_parts(parts, axum::body::Body::from(body))).await.unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| CallError::Failed { peer: to, detail: format!("reading the reply: {e}") })?.to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

/// The lab's look at the services: the routers, straight.
struct Look {
    net: Arc<SimNet>,
    instance: Option<usize>,
}

impl RequestReply for Look {
    fn call(&self, to: Service, request: http::Request<Bytes>) -> BoxFuture<'_, Result<http::Response<Bytes>, CallError>> {
        Box::pin(async move { handle(self.net.route(to, self.instance)?, to, request).await })
    }

    fn grpc(self: Arc<Self>, to: Service) -> GrpcChannel {
        GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let look = self.clone();
            async move {
                let router = look.net.route(to, look.instance).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                let response = router.oneshot(request.map(axum::body::Body::new)).await.unwrap_or_else(|never| match never {});
                Ok(response.map(tonic::body::Body::new))
            }
        }))
    }
}

impl RequestReply for SimNet {
    fn call(&self, to: Service, request: http::Request<Bytes>) -> BoxFuture<'_, Result<http::Response<Bytes>, CallError>> {
        Box::pin(self.send(to, request))
    }

    fn grpc(self: Arc<Self>, to: Service) -> GrpcChannel {
        GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let net = self.clone();
            async move { net.send_grpc(to, request).await }
        }))
    }
}
