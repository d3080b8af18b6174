//! Trace context over HTTP: a server span for every request that does something (not a `GET`:
//! probes, scrapes and the lab's reads are not the workflow), under the caller's `traceparent`;
//! and a client span for every call Part A's Order makes, REST or gRPC, its `traceparent` sent
//! with the call (a header; in gRPC, request metadata, which is one).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;

use super::trace::{self, Kind, Span, Tracer, WithContext};
use crate::model::Service;
use crate::transport::{BoxFuture, CallError, GrpcChannel, RequestReply, TRACEPARENT};

/// `router` with a server span around each request that is not a `GET` (unchanged if `tracer`
/// is off).
pub fn traced(router: Router, tracer: &Tracer) -> Router {
    if !tracer.is_on() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(tracer.clone(), trace_request))
}

async fn trace_request(State(tracer): State<Tracer>, request: Request, next: Next) -> Response {
    if request.method() == http::Method::GET {
        return next.run(request).await;
    }
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().as_str().to_owned();
    let parent = trace::remote(request.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let span = tracer.start(format!("{method} {route}"), Kind::Server, &parent, Vec::new());
    span.set("http.request.method", method);
    span.set("http.route", route);
    let response = next.run(request).with_context(span.context()).await;
    if let Some(failure) = answered(&span, &response) {
        span.fail(failure);
    }
    response
}

/// Records the answer's status on `span`; why it is a failure, if it is one: a 5xx (as
/// OpenTelemetry's HTTP conventions have it for both ends of a call), or a gRPC error answered
/// at once (its `grpc-status` in the headers: a status in the trailers is not read here).
fn answered<B>(span: &Span, response: &http::Response<B>) -> Option<String> {
    let status = response.status();
    span.set("http.response.status_code", i64::from(status.as_u16()));
    let grpc = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).filter(|code| *code != "0");
    match (status.is_server_error(), grpc) {
        (true, _) => Some(format!("answered {status}")),
        (false, Some(code)) => Some(format!("answered grpc-status {code}")),
        (false, None) => None,
    }
}

/// Part A's calls, each in a client span under the current one, its `traceparent` sent along.
pub struct TracedCalls {
    inner: Arc<dyn RequestReply>,
    tracer: Tracer,
}

impl TracedCalls {
    pub fn new(inner: Arc<dyn RequestReply>, tracer: &Tracer) -> Self {
        TracedCalls { inner, tracer: tracer.clone() }
    }
}

/// The client span of a call to `to`, under the current span; `request` carries its
/// `traceparent`.
fn calling<B>(tracer: &Tracer, to: Service, request: &mut http::Request<B>) -> Span {
    let span = tracer.start_here(format!("{} {}", request.method(), request.uri().path()), Kind::Client);
    span.set("peer.service", to.name());
    if let Some(value) = span.traceparent().and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        request.headers_mut().insert(TRACEPARENT, value);
    }
    span
}

impl RequestReply for TracedCalls {
    fn call(&self, to: Service, mut request: http::Request<Bytes>) -> BoxFuture<'_, Result<http::Response<Bytes>, CallError>> {
        let span = calling(&self.tracer, to, &mut request);
        Box::pin(async move {
            let reply = self.inner.call(to, request).await;
            match &reply {
                Ok(response) => answered(&span, response).into_iter().for_each(|why| span.fail(format!("{to} {why}"))),
                Err(e) => span.fail(e.to_string()),
            }
            reply
        })
    }

    fn grpc(self: Arc<Self>, to: Service) -> GrpcChannel {
        use tower::ServiceExt;
        let (channel, tracer) = (self.inner.clone().grpc(to), self.tracer.clone());
        GrpcChannel::new(tower::service_fn(move |mut request: http::Request<tonic::body::Body>| {
            let span = calling(&tracer, to, &mut request);
            let channel = channel.clone();
            async move {
                let reply = channel.oneshot(request).await;
                match &reply {
                    Ok(response) => answered(&span, response).into_iter().for_each(|why| span.fail(format!("{to} {why}"))),
                    Err(status) => span.fail(status.message().to_owned()),
                }
                reply
            }
        }))
    }
}
