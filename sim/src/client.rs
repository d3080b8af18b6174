//! The lab's HTTP calls to real services' faces (their accounting endpoints, Part C's
//! producer): a JSON `GET`, a JSON `POST`, a non-2xx answer an error that names the call; and
//! the wait until what they answer says something has happened ([`settled`]).

use anyhow::{bail, Context};
use campus::transport::RequestReply;
use campus::Service;

pub async fn get_json<T: serde::de::DeserializeOwned>(http: &dyn RequestReply, peer: Service, path: &str) -> anyhow::Result<T> {
    let request = http::Request::get(path).body(bytes::Bytes::new()).expect("a valid GET");
    let reply = http.call(peer, request).await.with_context(|| format!("GET {path} on {peer}"))?;
    if !reply.status().is_success() {
        bail!("GET {path} on {peer} answered {}", reply.status());
    }
    serde_json::from_slice(reply.body()).with_context(|| format!("GET {path} on {peer}: unexpected body"))
}

pub async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    http: &dyn RequestReply,
    peer: Service,
    path: &str,
    body: &B,
) -> anyhow::Result<T> {
    let reply = http.post_json(peer, path, body).await.with_context(|| format!("POST {path} on {peer}"))?;
    if !reply.status().is_success() {
        bail!("POST {path} on {peer} answered {}: {}", reply.status(), String::from_utf8_lossy(reply.body()));
    }
    serde_json::from_slice(reply.body()).with_context(|| format!("POST {path} on {peer}: unexpected body"))
}

/// Waits until `done` says so, asking every 50 ms; fails after `within`.
pub async fn settled<F, Fut>(what: &str, within: std::time::Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !done().await? {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{what}: not within {} s", within.as_secs());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}
