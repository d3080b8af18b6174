//! A service process posts its spans, as OTLP over HTTP in JSON, to the collector that
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names — here a collector of the test's own, which Jaeger or an
//! OpenTelemetry collector would be — each request's span under the `traceparent` its caller
//! sent. (Its own test binary: the variable is set for the whole process.)

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::routing::post;
use axum::Router;
use campus::telemetry::trace::{Request, OTLP_ENDPOINT, TRACEPARENT};
use campus::Model;
use campus_sim::client::settled;
use campus_sim::hosts::process::ServiceProcess;
use campus_sim::traces::spans::flatten;

/// Every span posted to `received`: its service, name, trace id and parent's id.
fn spans(received: &[Request]) -> Vec<(String, String, String, String)> {
    flatten(received).into_iter().map(|s| (s.service, s.name, s.trace_id, s.parent_id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_posts_its_spans_to_the_otlp_collector_its_environment_names() -> anyhow::Result<()> {
    let received: Arc<Mutex<Vec<Request>>> = Arc::default();
    let collector = {
        let received = received.clone();
        Router::new().route(
            "/v1/traces",
            post(move |body: bytes::Bytes| async move {
                match serde_json::from_slice::<Request>(&body) {
                    Ok(request) => {
                        received.lock().expect("received lock").push(request);
                        http::StatusCode::OK
                    }
                    Err(_) => http::StatusCode::BAD_REQUEST,
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, collector).await });
    std::env::set_var(OTLP_ENDPOINT, &endpoint);
    let exe = Path::new(env!("CARGO_BIN_EXE_campus-sim"));
    let inventory = ServiceProcess::spawn(exe, "inventory", Model::SyncRest, &["--port", "0"]).await?;
    let (trace_id, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let reply = reqwest::Client::new()
        .post(format!("{}/reserve", inventory.url()))
        .header(TRACEPARENT, format!("00-{trace_id}-{caller}-01"))
        .json(&serde_json::json!({"order_id": "o-otlp-1", "items": [{"sku": "pho", "qty": 1}]}))
        .send()
        .await
        .context("POST /reserve")?;
    assert!(reply.status().is_success(), "POST /reserve: {}", reply.status());
    let wanted = ("inventory".to_owned(), "POST /reserve".to_owned(), trace_id.to_owned(), caller.to_owned());
    settled("the collector receiving Inventory's span under the caller's", Duration::from_secs(10), || async {
        Ok(spans(&received.lock().expect("received lock")).contains(&wanted))
    })
    .await
}
