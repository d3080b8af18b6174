//! Request/reply over real HTTP: a pooled keep-alive `reqwest` client calling services that
//! listen on 127.0.0.1, and the helper that serves an axum `Router` on a listener.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;

use super::{BoxFuture, CallError, RequestReply};
use crate::model::Service;

/// How long establishing a TCP connection may take. On loopback a closed port refuses at once;
/// this only matters for a peer that accepts nothing (e.g. a full backlog).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Calls peers by base URL (`http://127.0.0.1:8002`). Connections are kept alive and reused.
pub struct HttpRequestReply {
    client: reqwest::Client,
    bases: BTreeMap<Service, String>,
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
        HttpRequestReply { client, bases }
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

fn classify(peer: Service, e: &reqwest::Error) -> CallError {
    // reqwest's Display hides the cause ("error sending request"); the source chain names it.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
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
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    // The caller's address travels with each request (`ConnectInfo`): a lab endpoint answers
    // loopback callers only.
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown).await
}
