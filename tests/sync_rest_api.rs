//! Order's HTTP contract in the synchronous model, driven through the in-memory network in
//! virtual time: Part A's deployment as the graded run starts it, the same routers that serve
//! TCP in real mode.

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use campus::api;
use campus::faults::FaultPlan;
use campus::Service;
use campus_sim::simulator::clock;
use campus_sim::sync_rest::Settings;
use common::part_a::{self, Campus, TIMEOUT};
use serde_json::{json, Value};

fn pho(qty: i64) -> Value {
    json!({"student_id": "s-0001", "items": [{"sku": "pho", "qty": qty}]})
}

#[test]
fn a_valid_order_is_reserved_notified_and_answered_201() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
        let reply = campus.order_json(pho(3)).await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["status"], "confirmed");
        assert_eq!(reply.body["notification"], "sent");
        let order_id = reply.body["order_id"].as_str().unwrap().to_owned();
        assert_eq!(campus.stock("pho").await?, 7);
        assert!(campus.sent().await?.0.contains(&order_id), "{order_id} confirmed");
        Ok(())
    })
}

#[test]
fn a_conventional_single_item_body_is_ordered_as_one_line_and_a_muddled_one_is_refused() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
        let reply = campus.order_json(json!({"user_id": "s-0001", "item_id": "pho", "quantity": 2})).await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(campus.stock("pho").await?, 8);
        let muddled = campus.order_json(json!({"user_id": "s-0001", "item": "pho", "item_id": "pho", "qty": 1})).await?;
        assert_eq!(muddled.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", muddled.body);
        assert!(muddled.body.to_string().contains("item or item_id, not both"), "{}", muddled.body);
        assert_eq!(campus.stock("pho").await?, 8, "the refused body reserved nothing");
        Ok(())
    })
}

#[test]
fn bad_input_gets_a_4xx_json_error_and_never_reaches_inventory() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
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
            let reply = campus.post_order(content_type, body).await?;
            assert_eq!(reply.status, status, "{shown}: {}", reply.body);
            assert_eq!(reply.body["error"], label, "{shown}");
            assert!(!reply.body["detail"].as_str().unwrap_or("").is_empty(), "{shown}: the error says why");
        }
        assert_eq!(campus.calls_to(Service::Inventory), 0, "inventory was called");
        assert!(campus.untouched().await?, "stock changed");
        Ok(())
    })
}

#[test]
fn an_order_larger_than_the_stock_is_answered_409_with_the_reason_and_reserves_nothing() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
        let reply =
            campus.order_json(json!({"student_id": "s-1", "items": [{"sku": "coffee", "qty": 2}, {"sku": "pho", "qty": 11}]})).await?;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert_eq!(reply.body["error"], "insufficient_stock");
        assert!(reply.body["detail"].as_str().unwrap().contains("pho: asked 11, 10 left"), "{}", reply.body);
        assert!(reply.body["order_id"].is_string());
        assert!(campus.untouched().await?, "all or nothing: coffee must not be taken");
        assert_eq!(campus.sent().await?.1, 0);
        Ok(())
    })
}

#[test]
fn a_slow_inventory_is_answered_504_at_the_timeout_never_later() -> anyhow::Result<()> {
    clock::block_on(async {
        for fault in [FaultPlan::delayed(Duration::from_secs(2)), FaultPlan::hanging()] {
            let world = part_a::world();
            let campus = Campus::start(&world, fault.clone()).await?;
            let reply = campus.order_json(pho(1)).await?;
            assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{fault}: {}", reply.body);
            assert_eq!(reply.body["error"], "inventory_timeout");
            assert!(reply.latency >= TIMEOUT, "{fault}: answered before the timeout, in {:?}", reply.latency);
            assert!(reply.latency <= TIMEOUT + Duration::from_millis(10), "{fault}: answered late, in {:?}", reply.latency);
        }
        Ok(())
    })
}

/// Load shedding: Order holding as many orders as it may (`--max-in-flight`), each waiting on
/// a slow Inventory, refuses one more at once — before it reserves anything — and takes orders
/// again as soon as one is answered.
#[test]
fn an_order_beyond_the_in_flight_limit_is_refused_at_once_and_reserves_nothing() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let settings = Settings { max_in_flight: Some(2), ..Settings::new(part_a::STOCK, Duration::from_secs(5)) };
        let campus = Campus::start_with(&world, FaultPlan::delayed(Duration::from_secs(2)), settings).await?;
        let later = |after: Duration| {
            let campus = &campus;
            async move {
                tokio::time::sleep(after).await;
                campus.order_json(pho(1)).await
            }
        };
        let (first, second, third, after_the_first) =
            tokio::join!(later(Duration::ZERO), later(Duration::ZERO), later(Duration::from_millis(100)), later(Duration::from_secs(3)));
        let (first, second, third, after_the_first) = (first?, second?, third?, after_the_first?);
        assert_eq!((first.status, second.status), (StatusCode::CREATED, StatusCode::CREATED), "the two held orders complete");
        assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE, "{}", third.body);
        assert_eq!(third.body["error"], "overloaded");
        assert!(third.latency < Duration::from_millis(50), "refused at once, not after the delay: {:?}", third.latency);
        assert_eq!(after_the_first.status, StatusCode::CREATED, "a place is free again: {}", after_the_first.body);
        assert_eq!(campus.stock("pho").await?, part_a::STOCK - 3, "the refused order reserved nothing");
        Ok(())
    })
}

#[test]
fn over_grpc_the_callers_deadline_bounds_orders_call_and_the_held_request_is_never_handled() -> anyhow::Result<()> {
    use campus::proto::{order_client::OrderClient, Line, PlaceOrderRequest};
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start_over(&world, FaultPlan::delayed(Duration::from_secs(2)), campus::Protocol::Grpc).await?;
        let deadline = Duration::from_millis(300);
        assert!(deadline < TIMEOUT, "the caller's deadline is the shorter bound");
        let mut order = OrderClient::new(campus.deployment.client().grpc(Service::Order));
        let message =
            PlaceOrderRequest { student_id: "s-1".into(), items: vec![Line { sku: "pho".into(), qty: 1 }], order_id: String::new() };
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline);
        let sent = tokio::time::Instant::now();
        // The in-memory channel does not enforce the deadline itself: the answer is Order's.
        let status = order.place_order(request).await.expect_err("Inventory is 2 s slow");
        let latency = sent.elapsed();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert_eq!(status.metadata().get(campus::api::grpc::ERROR_LABEL).map(|v| v.to_str().unwrap()), Some("inventory_timeout"));
        assert!(latency >= deadline && latency <= deadline + Duration::from_millis(10), "answered in {latency:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(campus.untouched().await?, "the request Inventory held was handled after Order gave up");
        Ok(())
    })
}

#[test]
fn an_inventory_that_is_down_or_failing_is_answered_503_fast() -> anyhow::Result<()> {
    clock::block_on(async {
        for fault in [FaultPlan::down(), FaultPlan::erroring(StatusCode::INTERNAL_SERVER_ERROR)] {
            let world = part_a::world();
            let campus = Campus::start(&world, fault.clone()).await?;
            let reply = campus.order_json(pho(1)).await?;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{fault}: {}", reply.body);
            assert_eq!(reply.body["error"], "inventory_unavailable");
            assert!(reply.latency < Duration::from_millis(50), "{fault}: took {:?}", reply.latency);
            if !fault.down {
                // Healthy again, so that it shows its stock.
                campus.deployment.set_fault(&FaultPlan::healthy()).await?;
                assert!(campus.untouched().await?, "{fault}: stock changed");
            }
        }
        Ok(())
    })
}

#[test]
fn when_notification_is_down_the_order_stands_and_the_reply_says_the_confirmation_failed() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
        let mut campus = campus;
        campus.deployment.kill(Service::Notification).await?;
        let reply = campus.order_json(pho(2)).await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["notification"], "failed");
        assert!(reply.body["notification_detail"].as_str().unwrap().contains("notification unreachable"));
        assert_eq!(campus.stock("pho").await?, 8);
        Ok(())
    })
}

#[test]
fn reserving_the_same_order_twice_takes_stock_once() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::healthy()).await?;
        let body = json!({"order_id": "o-dup", "items": [{"sku": "salad", "qty": 4}]});
        let net = campus.deployment.client();
        let first = net.post_json(Service::Inventory, "/reserve", &body).await?;
        let again = net.post_json(Service::Inventory, "/reserve", &body).await?;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(again.status(), StatusCode::OK);
        let again: Value = serde_json::from_slice(again.body())?;
        assert_eq!(again["repeat"], true);
        assert_eq!(campus.stock("salad").await?, 6);
        assert_eq!(campus.calls_to(Service::Inventory), 2);
        Ok(())
    })
}

#[test]
fn every_service_answers_health_even_when_faulted() -> anyhow::Result<()> {
    clock::block_on(async {
        let world = part_a::world();
        let campus = Campus::start(&world, FaultPlan::hanging()).await?;
        for peer in [Service::Order, Service::Inventory, Service::Notification] {
            let body = campus.get(peer, "/health").await?;
            assert_eq!(body["service"], peer.name());
        }
        Ok(())
    })
}
