//! Request/reply over real HTTP: a pooled keep-alive `reqwest` client calling services that
//! listen on 127.0.0.1 (HTTP/1.1), a tonic channel per service for gRPC (HTTP/2, one connection
//! multiplexing every call), and the helper that serves an axum `Router` on a listener (both
//! protocols on one port).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;

use super::{BoxFuture, CallError, GrpcChannel, RequestReply};
use crate::model::Service;

/// How long establishing a TCP connection may take. On loopback a closed port refuses at once;
/// this only matters for a peer that accepts nothing (e.g. a full backlog).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Calls peers by base URL (`http://127.0.0.1:8002`). Connections are kept alive and reused.
pub struct HttpRequestReply {
    client: reqwest::Client,
    bases: BTreeMap<Service, String>,
    /// One gRPC channel per service, made at the first call to it.
    channels: Mutex<BTreeMap<Service, tonic::transport::Channel>>,
}

impl HttpRequestReply {
    pub fn new(bases: impl IntoIterator<Item = (Service, String)>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        let bases = bases.into_iter().map(|(p, b)| (p, b.trim_end_matches('/').to_owned())).collect();
        HttpRequestReply { client, bases, channels: Mutex::new(BTreeMap::new()) }
    }

    /// The gRPC channel to `to`, made lazily: it connects at the first call and reconnects
    /// after a failure by itself.
    fn channel(&self, to: Service) -> Result<tonic::transport::Channel, tonic::Status> {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(channel) = channels.get(&to) {
            return Ok(channel.clone());
        }
        let base = self.bases.get(&to).ok_or_else(|| tonic::Status::unavailable(format!("{to} unreachable: no address configured")))?;
        let endpoint = tonic::transport::Endpoint::from_shared(base.clone())
            .map_err(|e| tonic::Status::unavailable(format!("{to} unreachable: {base} is not a URL: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(to, channel.clone());
        Ok(channel)
    }

    async fn send(&self, to: Service, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, CallError> {
        let base = self.bases.get(&to).ok_or_else(|| CallError::Unreachable { peer: to, detail: "no address configured".into() })?;
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let response = self
            .client
            .request(parts.method, format!("{base}{path}"))
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(to, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| classify(to, &e))?;
        let mut reply = http::Response::new(body);
        *reply.status_mut() = status;
        *reply.headers_mut() = headers;
        Ok(reply)
    }
}

/// What a gRPC call that got no answer reads as: the call's own deadline (`grpc-timeout`, which
/// the channel enforces too) passing is `DEADLINE_EXCEEDED`, as a server would say it; any other
/// failure — refused, reset, unreadable — is `UNAVAILABLE`.
fn grpc_failure(to: Service, e: &tonic::transport::Error) -> tonic::Status {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<tonic::TimeoutExpired>() {
            return tonic::Status::deadline_exceeded(format!("{to} did not answer within the call's deadline"));
        }
        source = s.source();
    }
    tonic::Status::unavailable(format!("{to} unreachable: {}", with_causes(e)))
}

/// An error with its causes: reqwest's and tonic's Display hide them ("error sending request",
/// "transport error"); the source chain names them.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    detail
}

fn classify(peer: Service, e: &reqwest::Error) -> CallError {
    let detail = with_causes(e);
    if e.is_connect() {
        CallError::Unreachable { peer, detail }
    } else {
        CallError::Failed { peer, detail }
    }
}

impl RequestReply for HttpRequestReply {
    fn call(&self, to: Service, request: http::Request<Bytes>) -> BoxFuture<'_, Result<http::Response<Bytes>, CallError>> {
        Box::pin(self.send(to, request))
    }

    fn grpc(self: Arc<Self>, to: Service) -> GrpcChannel {
        use tower::ServiceExt;
        match self.channel(to) {
            Ok(channel) => GrpcChannel::new(channel.map_err(move |e| grpc_failure(to, &e))),
            Err(status) => GrpcChannel::new(tower::service_fn(move |_| std::future::ready(Err(status.clone())))),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Replies go out as they are written: an HTTP/2 reply is several frames (headers, data,
    // trailers), and with Nagle's algorithm on, the last of them could wait for the caller's
    // delayed ACK — 40 ms stalls, seen as the p99 of gRPC orders before this.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY on an accepted connection");
        }
    });
    // The caller's address travels with each request (`ConnectInfo`): a lab endpoint answers
    // loopback callers only.
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown).await
}
