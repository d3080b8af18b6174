//! Scripts written against other implementations of the assignment, run as a black box against
//! our services (Part A as real processes on loopback): where only a name differs, they work
//! unchanged. An off-menu item (with `--menu`), the client's own order id, an
//! `Idempotency-Key` header, and the fault endpoints other Inventories answer.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use campus::faults::FaultPlan;
use campus::Model;
use campus::Service;
use campus_sim::hosts::{Hosts, Place};
use campus_sim::sync_rest::{Deployment, Settings};
use http::StatusCode;
use serde_json::{json, Value};

/// Part A's deployment as processes of this build (Order's timeout 300 ms), `menu` added to
/// every service's menu.
struct PartA {
    deployment: Deployment<'static>,
}

impl PartA {
    async fn start(menu: &[&str]) -> anyhow::Result<PartA> {
        let exe = Path::new(env!("CARGO_BIN_EXE_campus-sim"));
        let hosts = Hosts::real(exe, Model::SyncRest, "dialect", Place::default()).await?;
        let settings =
            Settings { menu: menu.iter().map(|item| item.to_string()).collect(), ..Settings::new(5000, Duration::from_millis(300)) };
        Ok(PartA { deployment: Deployment::start(hosts, &settings, &FaultPlan::healthy()).await? })
    }

    /// `method path` with a JSON body and extra headers: the status and the JSON answer.
    async fn send(
        &self,
        peer: Service,
        method: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = http::Request::builder().method(method).uri(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = self.deployment.client().call(peer, request.body(Bytes::from(serde_json::to_vec(&body)?))?).await?;
        let answer = if reply.body().is_empty() { Value::Null } else { serde_json::from_slice(reply.body())? };
        Ok((reply.status(), answer))
    }

    async fn order(&self, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(Service::Order, "POST", "/order", body, &[]).await
    }

    async fn stock(&self, sku: &str) -> anyhow::Result<u64> {
        let (_, stock) = self.send(Service::Inventory, "GET", "/stock", Value::Null, &[]).await?;
        stock[sku].as_u64().ok_or_else(|| anyhow::anyhow!("no {sku} in {stock}"))
    }

    async fn confirmations(&self) -> anyhow::Result<String> {
        let reply = self.deployment.client().call(Service::Notification, http::Request::get("/sent").body(Bytes::new())?).await?;
        Ok(reply.headers()["x-campus-sent"].to_str()?.to_owned())
    }
}

#[tokio::test]
async fn a_classmates_order_for_an_off_menu_item_under_its_own_id_is_placed_once_however_often_it_is_sent() -> anyhow::Result<()> {
    let part = PartA::start(&["burger", "fries"]).await?;
    let order = json!({"order_id": "client-7", "user_id": "u-1", "item": "burger", "quantity": 2});
    for attempt in 1..=3 {
        let (status, answer) = part.order(order.clone()).await?;
        assert_eq!((status, answer["order_id"].as_str()), (StatusCode::CREATED, Some("client-7")), "attempt {attempt}: {answer}");
    }
    assert_eq!(part.stock("burger").await?, 4998, "the stock taken once");
    assert_eq!(part.confirmations().await?, "1", "the student told once");
    Ok(())
}

#[tokio::test]
async fn without_the_menu_flag_an_off_menu_item_is_refused_as_invalid_input() -> anyhow::Result<()> {
    let part = PartA::start(&[]).await?;
    let (status, answer) = part.order(json!({"user_id": "u-1", "item": "fries", "quantity": 1})).await?;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_order")), "{answer}");
    assert!(answer["detail"].as_str().unwrap_or_default().contains("unknown sku \"fries\""), "{answer}");
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_header_names_the_order_and_must_agree_with_the_body() -> anyhow::Result<()> {
    let part = PartA::start(&[]).await?;
    let order = json!({"student_id": "s-1", "items": [{"sku": "coffee", "qty": 1}]});
    let key = [("Idempotency-Key", "4b1f7c1e-9d0a-4c55-8d2e-3f6a1b2c3d4e")];
    let (first, answer) = part.send(Service::Order, "POST", "/order", order.clone(), &key).await?;
    let (again, _) = part.send(Service::Order, "POST", "/order", order.clone(), &key).await?;
    assert_eq!((first, again), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(answer["order_id"], "4b1f7c1e-9d0a-4c55-8d2e-3f6a1b2c3d4e");
    assert_eq!(part.stock("coffee").await?, 4999, "one order, placed once");

    let other = json!({"order_id": "another", "student_id": "s-1", "items": [{"sku": "coffee", "qty": 1}]});
    let (status, answer) = part.send(Service::Order, "POST", "/order", other, &key).await?;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_order")), "{answer}");
    let (status, _) = part.send(Service::Order, "POST", "/order", order, &[("Idempotency-Key", "no spaces allowed")]).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(part.stock("coffee").await?, 4999, "a refused request changes nothing");
    Ok(())
}

#[tokio::test]
async fn a_classmates_fault_switch_reaches_inventory_under_its_own_name_and_order_answers_as_ours() -> anyhow::Result<()> {
    let part = PartA::start(&[]).await?;
    let coffee = || json!({"student_id": "s-1", "items": [{"sku": "coffee", "qty": 1}]});
    let switch = |path: &'static str, body: Value| part.send(Service::Inventory, "POST", path, body, &[]);

    assert_eq!(switch("/admin/fail", json!({"enabled": true})).await?.0, StatusCode::OK);
    assert_eq!(part.order(coffee()).await?.0, StatusCode::SERVICE_UNAVAILABLE, "a failing Inventory: 503, our code");
    assert_eq!(switch("/config", json!({"delay_seconds": 0, "failure_enabled": false})).await?.0, StatusCode::OK);
    assert_eq!(part.order(coffee()).await?.0, StatusCode::CREATED, "cleared");
    assert_eq!(switch("/inject", json!({"delayMs": 1000, "forceFail": false})).await?.0, StatusCode::OK);
    let (status, answer) = part.order(coffee()).await?;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("inventory_timeout")), "slower than Order's 300 ms");
    let (status, plan) = switch("/configure", json!({"delay": 0})).await?;
    assert_eq!(
        (status, plan),
        (StatusCode::OK, json!({"delay_ms": 0, "reply_delay_ms": 0, "error_status": null, "hang": false})),
        "the plan now, in our words"
    );
    assert_eq!(switch("/admin/delay", json!({"seconds": 0.1})).await?.0, StatusCode::OK);
    assert_eq!(part.order(coffee()).await?.0, StatusCode::CREATED, "slow, within Order's timeout");
    Ok(())
}
