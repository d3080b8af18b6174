//! The synchronous model over real processes and TCP on ephemeral loopback ports: Part A's
//! deployment as the real graded run starts it (`campus-sim serve` children), the pooled HTTP
//! client, real time.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use campus::faults::FaultPlan;
use campus::{Model, Service};
use campus_sim::client::get_json;
use campus_sim::hosts::{Hosts, Place};
use campus_sim::sync_rest::{Deployment, Settings};
use serde_json::{json, Value};

/// Part A as processes of this build, Inventory holding 10 of each item and suffering `fault`.
async fn campus(fault: FaultPlan, timeout: Duration) -> anyhow::Result<Deployment<'static>> {
    let hosts = Hosts::real(std::path::Path::new(env!("CARGO_BIN_EXE_campus-sim")), Model::SyncRest, "tcp", Place::default()).await?;
    Deployment::start(hosts, &Settings::new(10, timeout), &fault).await
}

async fn place(campus: &Deployment<'_>) -> anyhow::Result<(StatusCode, Value, Duration)> {
    let started = Instant::now();
    let order = json!({"student_id": "s-0042", "items": [{"sku": "burrito", "qty": 2}]});
    let reply = campus.client().post_json(Service::Order, "/order", &order).await?;
    Ok((reply.status(), serde_json::from_slice(reply.body())?, started.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_an_order_is_reserved_and_confirmed_and_a_stopped_inventory_gives_503() -> anyhow::Result<()> {
    let mut campus = campus(FaultPlan::healthy(), Duration::from_secs(2)).await?;
    let (status, body, _) = place(&campus).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order_id = body["order_id"].as_str().unwrap_or_default().to_owned();
    assert!(order_id.starts_with("o-") && order_id.len() == 34, "a uuid order id in real mode: {order_id}");
    let stock: Value = get_json(campus.client().as_ref(), Service::Inventory, "/stock").await?;
    assert_eq!(stock["burrito"], 8);
    let sent: Value = get_json(campus.client().as_ref(), Service::Notification, "/sent").await?;
    assert_eq!(sent[0]["order_id"], order_id.as_str());

    campus.kill_inventory().await?;
    let (status, body, _) = place(&campus).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "inventory_unavailable");
    campus.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_a_hanging_inventory_gives_504_at_the_timeout() -> anyhow::Result<()> {
    let timeout = Duration::from_millis(300);
    let campus = campus(FaultPlan::hanging(), timeout).await?;
    let (status, body, latency) = place(&campus).await?;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "inventory_timeout");
    assert!(latency >= timeout, "answered before the timeout: {latency:?}");
    assert!(latency < timeout + Duration::from_secs(1), "answered long after the timeout: {latency:?}");
    let health: Value = get_json(campus.client().as_ref(), Service::Inventory, "/health").await?;
    assert_eq!(health["status"], "ok", "health is never faulted");
    campus.teardown().await;
    Ok(())
}
