//! Order's HTTP contract in the synchronous model, driven through the in-memory network in
//! virtual time: the same routers that serve TCP in real mode.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use campus::api;
use campus::api::inventory::SharedInventory;
use campus::api::notification::SharedNotifier;
use campus::domain::{OrderId, Sku};
use campus::services::order::OrderIds;
use campus::sync_rest as wiring;
use campus::transport::RequestReply;
use campus::Service;
use campus_sim::fault::{self, FaultPlan};
use campus_sim::net::{LinkModel, SimNet};
use campus_sim::rng::SimRng;
use campus_sim::world;
use serde_json::{json, Value};
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_millis(1000);

struct Campus {
    net: Arc<SimNet>,
    inventory: SharedInventory,
    notifier: SharedNotifier,
    inventory_calls: Arc<AtomicUsize>,
}

/// Order, Inventory (10 of each item, suffering `fault`) and Notification on one SimNet.
fn campus(fault: FaultPlan) -> Campus {
    let net = Arc::new(SimNet::new(SimRng::new(1), LinkModel::default()));
    let inventory = wiring::inventory_state(10);
    let notifier = wiring::notification_state();
    net.host(Service::Order, wiring::order(OrderIds::seeded(1), net.clone(), TIMEOUT));
    net.host(Service::Notification, wiring::notification(notifier.clone()));
    let (router, inventory_calls) = common::counted(fault::apply(wiring::inventory(inventory.clone()), &fault));
    if fault.down {
        net.take_down(Service::Inventory);
    } else {
        net.host(Service::Inventory, router);
    }
    Campus { net, inventory, notifier, inventory_calls }
}

struct Reply {
    status: StatusCode,
    body: Value,
    latency: Duration,
}

async fn post_order(campus: &Campus, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let request = http::Request::post("/order").header(http::header::CONTENT_TYPE, content_type).body(body.into()).unwrap();
    let sent = Instant::now();
    let reply = campus.net.call(Service::Order, request).await.expect("order is up");
    let body = serde_json::from_slice(reply.body()).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", reply.body()));
    Reply { status: reply.status(), body, latency: sent.elapsed() }
}

async fn order_json(campus: &Campus, value: Value) -> Reply {
    post_order(campus, "application/json", serde_json::to_vec(&value).unwrap()).await
}

fn pho(qty: i64) -> Value {
    json!({"student_id": "s-0001", "items": [{"sku": "pho", "qty": qty}]})
}

fn untouched(campus: &Campus) -> bool {
    let inventory = campus.inventory.lock().unwrap();
    inventory.decided() == (0, 0) && inventory.levels().values().all(|&n| n == 10)
}

#[test]
fn a_valid_order_is_reserved_notified_and_answered_201() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        let reply = order_json(&campus, pho(3)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["status"], "confirmed");
        assert_eq!(reply.body["notification"], "sent");
        let order_id = reply.body["order_id"].as_str().unwrap().to_owned();
        assert_eq!(campus.inventory.lock().unwrap().stock(&Sku::parse("pho").unwrap()), 7);
        assert!(campus.notifier.lock().unwrap().confirmed(&OrderId::parse(order_id).unwrap()));
    });
}

#[test]
fn a_conventional_single_item_body_is_ordered_as_one_line_and_a_muddled_one_is_refused() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        let reply = order_json(&campus, json!({"user_id": "s-0001", "item_id": "pho", "quantity": 2})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(campus.inventory.lock().unwrap().stock(&Sku::parse("pho").unwrap()), 8);
        let muddled = order_json(&campus, json!({"user_id": "s-0001", "item": "pho", "item_id": "pho", "qty": 1})).await;
        assert_eq!(muddled.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", muddled.body);
        assert!(muddled.body.to_string().contains("item or item_id, not both"), "{}", muddled.body);
        assert_eq!(campus.inventory.lock().unwrap().stock(&Sku::parse("pho").unwrap()), 8, "the refused body reserved nothing");
    });
}

#[test]
fn bad_input_gets_a_4xx_json_error_and_never_reaches_inventory() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        let oversized = format!(r#"{{"student_id": "s-1", "items": [], "pad": "{}"}}"#, "x".repeat(api::MAX_BODY_BYTES));
        let cases: Vec<(&str, Bytes, StatusCode, &str)> = vec![
            ("application/json", Bytes::from_static(b"{\"student_id\": "), StatusCode::BAD_REQUEST, "malformed_json"),
            ("application/json", Bytes::from_static(b"{\"items\": []}"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_order"),
            ("application/json", serde_json::to_vec(&pho(0)).unwrap().into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_order"),
            ("application/json", serde_json::to_vec(&pho(-1)).unwrap().into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_order"),
            (
                "application/json",
                serde_json::to_vec(&json!({"student_id": "s-1", "items": [{"sku": "lobster", "qty": 1}]})).unwrap().into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_order",
            ),
            ("application/json", Bytes::from(oversized), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ("text/plain", serde_json::to_vec(&pho(1)).unwrap().into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ];
        for (content_type, body, status, label) in cases {
            let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
            let reply = post_order(&campus, content_type, body).await;
            assert_eq!(reply.status, status, "{shown}: {}", reply.body);
            assert_eq!(reply.body["error"], label, "{shown}");
            assert!(!reply.body["detail"].as_str().unwrap_or("").is_empty(), "{shown}: the error says why");
        }
        assert_eq!(campus.inventory_calls.load(Ordering::SeqCst), 0, "inventory was called");
        assert!(untouched(&campus), "stock changed");
    });
}

#[test]
fn an_order_larger_than_the_stock_is_answered_409_with_the_reason_and_reserves_nothing() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        let reply =
            order_json(&campus, json!({"student_id": "s-1", "items": [{"sku": "coffee", "qty": 2}, {"sku": "pho", "qty": 11}]})).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert_eq!(reply.body["error"], "insufficient_stock");
        assert!(reply.body["detail"].as_str().unwrap().contains("pho: asked 11, 10 left"), "{}", reply.body);
        assert!(reply.body["order_id"].is_string());
        let inventory = campus.inventory.lock().unwrap();
        assert!(inventory.levels().values().all(|&n| n == 10), "all or nothing: coffee must not be taken");
        assert_eq!(campus.notifier.lock().unwrap().sent(), 0);
    });
}

#[test]
fn a_slow_inventory_is_answered_504_at_the_timeout_never_later() {
    world::block_on(async {
        for fault in [FaultPlan::delayed(Duration::from_secs(2)), FaultPlan::hanging()] {
            let campus = campus(fault.clone());
            let reply = order_json(&campus, pho(1)).await;
            assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{fault}: {}", reply.body);
            assert_eq!(reply.body["error"], "inventory_timeout");
            assert!(reply.latency >= TIMEOUT, "{fault}: answered before the timeout, in {:?}", reply.latency);
            assert!(reply.latency <= TIMEOUT + Duration::from_millis(10), "{fault}: answered late, in {:?}", reply.latency);
        }
    });
}

#[test]
fn an_inventory_that_is_down_or_failing_is_answered_503_fast() {
    world::block_on(async {
        for fault in [FaultPlan::down(), FaultPlan::erroring(StatusCode::INTERNAL_SERVER_ERROR)] {
            let campus = campus(fault.clone());
            let reply = order_json(&campus, pho(1)).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{fault}: {}", reply.body);
            assert_eq!(reply.body["error"], "inventory_unavailable");
            assert!(reply.latency < Duration::from_millis(50), "{fault}: took {:?}", reply.latency);
            assert!(untouched(&campus));
        }
    });
}

#[test]
fn when_notification_is_down_the_order_stands_and_the_reply_says_the_confirmation_failed() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        campus.net.take_down(Service::Notification);
        let reply = order_json(&campus, pho(2)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["notification"], "failed");
        assert!(reply.body["notification_detail"].as_str().unwrap().contains("notification unreachable"));
        assert_eq!(campus.inventory.lock().unwrap().stock(&Sku::parse("pho").unwrap()), 8);
    });
}

#[test]
fn reserving_the_same_order_twice_takes_stock_once() {
    world::block_on(async {
        let campus = campus(FaultPlan::healthy());
        let body = json!({"order_id": "o-dup", "items": [{"sku": "salad", "qty": 4}]});
        let net: &dyn RequestReply = campus.net.as_ref();
        let first = net.post_json(Service::Inventory, "/reserve", &body).await.unwrap();
        let again = net.post_json(Service::Inventory, "/reserve", &body).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(again.status(), StatusCode::OK);
        let again: Value = serde_json::from_slice(again.body()).unwrap();
        assert_eq!(again["repeat"], true);
        assert_eq!(campus.inventory.lock().unwrap().stock(&Sku::parse("salad").unwrap()), 6);
        assert_eq!(campus.inventory_calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn every_service_answers_health_even_when_faulted() {
    world::block_on(async {
        let campus = campus(FaultPlan::hanging());
        for peer in [Service::Order, Service::Inventory, Service::Notification] {
            let request = http::Request::get("/health").body(Bytes::new()).unwrap();
            let reply = campus.net.call(peer, request).await.unwrap();
            assert_eq!(reply.status(), StatusCode::OK, "{peer}");
            let body: Value = serde_json::from_slice(reply.body()).unwrap();
            assert_eq!(body["service"], peer.name());
        }
    });
}
