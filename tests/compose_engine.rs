//! The compose files, run by a real Docker engine: each part's services as containers, orders
//! placed through their published ports, Inventory taken away (`kill`) and brought back
//! (`start`), and the accounting that shows nothing lost and nothing done twice.
//!
//! These need a Docker engine and the images the compose files name (on a machine without the
//! public image registry, `scripts/docker.sh up` and `scripts/docker.sh images` make them) and
//! the ports 5672, 9092, 15672 and 8001–8005 free: `scripts/test.sh` runs them in a step of
//! their own, with the native brokers stopped. They fail, never skip, when Docker is missing.

use crate::common;

use std::time::{Duration, Instant};

use campus::domain::{Order, OrderId, OrderPlaced, OrderRequest};
use campus::store::{InventoryStats, NotificationStats, OrderStats};
use campus::streaming_kafka::api::{BulkAppended, MetricsReport};
use campus::transport::amqp::AmqpQueue;
use campus::transport::queue::{MessageQueue, QueueName, Topology};
use campus::transport::RequestReply;
use campus::Model;
use campus::Service;
use campus_sim::client::{get_json, post_json};
use common::compose::{eventually, Stack};
use http::StatusCode;
use serde_json::json;

const DRAIN_WITHIN: Duration = Duration::from_secs(90);

fn an_order() -> serde_json::Value {
    json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 1}]})
}

/// Order's answer to one order, and how long it took.
async fn place(http: &dyn RequestReply) -> anyhow::Result<(StatusCode, Duration)> {
    let started = Instant::now();
    let reply = http.post_json(Service::Order, "/order", &an_order()).await?;
    Ok((reply.status(), started.elapsed()))
}

/// Sets Inventory's fault from inside its container: `/admin/fault` answers loopback only.
fn set_fault(stack: &Stack, body: &str) -> anyhow::Result<()> {
    let url = "http://127.0.0.1:8002/admin/fault";
    stack.exec("inventory", &["curl", "-fsS", "-X", "POST", url, "-H", "content-type: application/json", "-d", body]).map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the compose images: scripts/test.sh runs this in its compose step"]
async fn docker_compose_part_a_answers_each_fault_as_documented_and_fails_fast_while_inventory_is_stopped() -> anyhow::Result<()> {
    let stack = Stack::up(Model::SyncRest, &["inventory", "notification", "order"])?;
    let http = stack.http(&[(Service::Order, 8001), (Service::Inventory, 8002), (Service::Notification, 8003)]);

    assert_eq!(place(&http).await?.0, StatusCode::CREATED, "healthy");
    set_fault(&stack, r#"{"delay_ms": 2000}"#)?;
    assert_eq!(place(&http).await?.0, StatusCode::GATEWAY_TIMEOUT, "Inventory 2 s slow, Order's timeout 1 s");
    set_fault(&stack, r#"{"error_status": 500}"#)?;
    assert_eq!(place(&http).await?.0, StatusCode::SERVICE_UNAVAILABLE, "Inventory answering 500");
    set_fault(&stack, r#"{"hang": true}"#)?;
    assert_eq!(place(&http).await?.0, StatusCode::GATEWAY_TIMEOUT, "Inventory never answering");
    set_fault(&stack, "{}")?;
    assert_eq!(place(&http).await?.0, StatusCode::CREATED, "fault cleared");

    stack.kill("inventory")?;
    let (status, took) = place(&http).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "Inventory stopped");
    assert!(took < Duration::from_millis(500), "a stopped Inventory is refused at once (its name does not resolve), took {took:?}");
    stack.start("inventory")?;
    assert_eq!(place(&http).await?.0, StatusCode::CREATED, "Inventory back");

    // Every 201 was confirmed once; the restarted Inventory (in memory) took one unit since.
    let sent = http.call(Service::Notification, http::Request::get("/sent").body(bytes::Bytes::new())?).await?;
    assert_eq!(sent.headers()["x-campus-sent"], "3", "one confirmation per 201");
    let stock: std::collections::BTreeMap<String, u32> = get_json(&http, Service::Inventory, "/stock").await?;
    assert_eq!(stock["pho"], 4999, "the order after the restart took its one unit, nothing else did");

    // The same file over gRPC: Order re-created to call the others over gRPC, an order placed
    // through its gRPC face, and Inventory's faults read as gRPC codes.
    stack.recreate_with("order", &[("CAMPUS_PROTOCOL", "grpc")])?;
    let http = std::sync::Arc::new(http);
    assert_eq!(place_grpc(&http).await, Ok(()), "healthy, over gRPC");
    set_fault(&stack, r#"{"delay_ms": 2000}"#)?;
    assert_eq!(place_grpc(&http).await, Err(tonic::Code::DeadlineExceeded), "Inventory 2 s slow");
    set_fault(&stack, r#"{"error_status": 500}"#)?;
    assert_eq!(place_grpc(&http).await, Err(tonic::Code::Unavailable), "Inventory answering 500");
    set_fault(&stack, "{}")?;
    let stock: std::collections::BTreeMap<String, u32> = get_json(http.as_ref(), Service::Inventory, "/stock").await?;
    assert_eq!(stock["pho"], 4998, "the one gRPC order placed took its unit; the failed ones none");
    Ok(())
}

/// Order's answer to one order placed over gRPC: OK, or the status's code.
async fn place_grpc(http: &std::sync::Arc<campus::transport::http::HttpRequestReply>) -> Result<(), tonic::Code> {
    use campus::proto::{order_client::OrderClient, Line, PlaceOrderRequest};
    let mut order = OrderClient::new(http.clone().grpc(Service::Order));
    let message = PlaceOrderRequest { student_id: "s-1".into(), items: vec![Line { sku: "pho".into(), qty: 1 }], order_id: String::new() };
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    order.place_order(request).await.map(drop).map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the compose images: scripts/test.sh runs this in its compose step"]
async fn docker_compose_part_b_accepts_while_inventory_is_killed_and_decides_every_order_once_when_it_is_back_as_prometheus_and_jaeger_see(
) -> anyhow::Result<()> {
    let services = ["jaeger", "rabbitmq", "inventory", "notification", "order", "prometheus"];
    let stack = Stack::up_with(Model::AsyncRabbitmq, &services, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")])?;
    let http = stack.http(&[(Service::Order, 8001), (Service::Inventory, 8002), (Service::Notification, 8003)]);
    let (before, during) = (20, 30);
    let decided = |want: u64| {
        let http = &http;
        move || async move {
            let stats: OrderStats = get_json(http, Service::Order, "/stats").await?;
            Ok((stats.reserved + stats.failed == want, format!("{stats:?}")))
        }
    };

    for _ in 0..before {
        assert_eq!(place(&http).await?.0, StatusCode::ACCEPTED);
    }
    eventually("the first orders decided", DRAIN_WITHIN, decided(before)).await?;

    stack.kill("inventory")?;
    for _ in 0..during {
        assert_eq!(place(&http).await?.0, StatusCode::ACCEPTED, "Order accepts while Inventory is away");
    }
    let amqp = AmqpQueue::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Topology::new("campus")).await?;
    eventually("the orders waiting in Inventory's queue", DRAIN_WITHIN, || async {
        let depth = amqp.depth(QueueName::InventoryInbox).await?;
        Ok((depth == during, format!("depth {depth}")))
    })
    .await?;

    stack.start("inventory")?;
    eventually("every order decided", DRAIN_WITHIN, decided(before + during)).await?;
    let order: OrderStats = get_json(&http, Service::Order, "/stats").await?;
    let inventory: InventoryStats = get_json(&http, Service::Inventory, "/stats").await?;
    eventually("every reserved order notified", DRAIN_WITHIN, || async {
        let notification: NotificationStats = get_json(&http, Service::Notification, "/stats").await?;
        Ok((notification.notified == order.reserved, format!("{notification:?}")))
    })
    .await?;
    assert_eq!(order.accepted, before + during, "0 lost: every order accepted");
    assert_eq!((inventory.reserved, inventory.failed), (order.reserved, order.failed), "Inventory and Order agree");
    assert_eq!(inventory.double_reservations, 0, "0 double");
    assert_eq!(inventory.stock_applications, inventory.reserved, "stock taken once per reserved order");
    assert_eq!(inventory.units_taken, inventory.units_of_reserved_orders);

    // The observability profile's Prometheus scrapes every service and RabbitMQ, and reads
    // Order's count as Order's /stats does.
    eventually("Prometheus scraping the three services and RabbitMQ", DRAIN_WITHIN, || async {
        let up = prometheus(&stack, "up")?;
        Ok((up.len() == 4 && up.iter().all(|(_, v)| *v == 1.0), format!("{up:?}")))
    })
    .await?;
    eventually("Prometheus reading Order's accepted orders", DRAIN_WITHIN, || async {
        let accepted = prometheus(&stack, "campus_orders_accepted_total")?;
        Ok((accepted.iter().map(|(_, v)| *v).collect::<Vec<_>>() == [order.accepted as f64], format!("{accepted:?}")))
    })
    .await?;
    // Its Jaeger has one trace per order; each order Inventory decided after it came back runs
    // through the three services (the request, the publish, Inventory's handling, the verdict's
    // two consumers). The killed Inventory's last second of spans, not yet posted, died with it.
    eventually("Jaeger holding each order's trace through the three services", DRAIN_WITHIN, || async {
        let url = format!("http://127.0.0.1:16686/api/traces?service=order&operation=POST%20/order&limit={}", 2 * order.accepted);
        let answer: serde_json::Value = reqwest::get(&url).await?.json().await?;
        let traces = answer["data"].as_array().cloned().unwrap_or_default();
        let whole = traces.iter().filter(|t| {
            let services: std::collections::BTreeSet<&str> =
                t["processes"].as_object().into_iter().flatten().filter_map(|(_, p)| p["serviceName"].as_str()).collect();
            services == ["inventory", "notification", "order"].into_iter().collect()
        });
        let (whole, all) = (whole.count() as u64, traces.len() as u64);
        Ok((all == order.accepted && whole >= during, format!("{whole} of {all} traces through the three services")))
    })
    .await?;
    Ok(())
}

/// An instant query of the stack's Prometheus (from inside its container: the API is on
/// loopback there too): each series' labels and value.
fn prometheus(stack: &Stack, query: &str) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
    let url = format!("http://127.0.0.1:9090/api/v1/query?query={query}");
    let answer: serde_json::Value = serde_json::from_str(&stack.exec("prometheus", &["wget", "-qO-", &url])?)?;
    let series = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    Ok(series.into_iter().map(|s| (s["metric"].clone(), s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the compose images: scripts/test.sh runs this in its compose step"]
async fn docker_compose_part_c_decides_every_event_once_across_an_inventory_kill_and_replays_to_the_same_metrics() -> anyhow::Result<()> {
    let stack = Stack::up(Model::StreamingKafka, &["kafka", "producer", "inventory", "analytics"])?;
    let http = stack.http(&[(Service::Producer, 8004), (Service::Inventory, 8002), (Service::Analytics, 8005)]);
    let events = |from: u64, n: u64| -> anyhow::Result<Vec<OrderPlaced>> {
        (from..from + n)
            .map(|i| {
                let request: OrderRequest = serde_json::from_value(an_order())?;
                let order = Order::new(OrderId::parse(format!("compose-{i:04}"))?, request);
                Ok(OrderPlaced { order, placed_at_ms: 1_800_000_000_000 + i * 1_000 })
            })
            .collect()
    };
    let counted = |want: usize| {
        let http = &http;
        move || async move {
            let metrics: MetricsReport = get_json(http, Service::Analytics, "/analytics").await?;
            Ok((
                metrics.orders_seen == want && metrics.outcomes_seen == want,
                format!("{} orders, {} outcomes", metrics.orders_seen, metrics.outcomes_seen),
            ))
        }
    };

    let appended: BulkAppended = post_json(&http, Service::Producer, "/orders", &events(0, 200)?).await?;
    assert_eq!(appended.appended, 200);
    eventually("the first events decided and counted", DRAIN_WITHIN, counted(200)).await?;

    stack.kill("inventory")?;
    let appended: BulkAppended = post_json(&http, Service::Producer, "/orders", &events(200, 100)?).await?;
    assert_eq!(appended.appended, 100, "the log takes events while Inventory is away");
    stack.start("inventory")?;
    eventually("every event decided and counted", DRAIN_WITHIN, counted(300)).await?;
    let inventory: InventoryStats = get_json(&http, Service::Inventory, "/stats").await?;
    assert_eq!(inventory.reserved + inventory.failed, 300, "0 lost");
    assert_eq!(inventory.double_reservations, 0, "0 double");
    let before: MetricsReport = get_json(&http, Service::Analytics, "/analytics").await?;

    // The replay, as a user does it: Analytics stopped, its group reset with Kafka's own tool
    // inside the Kafka container, Analytics started again; it counts everything anew.
    stack.stop("analytics")?;
    let reset = stack.exec(
        "kafka",
        &[
            "/opt/kafka/bin/kafka-consumer-groups.sh",
            "--bootstrap-server",
            "localhost:9092",
            "--group",
            "campus.analytics",
            "--reset-offsets",
            "--to-earliest",
            "--execute",
            "--topic",
            "campus.order-events",
            "--topic",
            "campus.inventory-events",
        ],
    )?;
    assert!(reset.contains("campus.order-events") && !reset.contains("Error"), "the group was reset: {reset}");
    stack.start("analytics")?;
    eventually("the replay counted everything again", DRAIN_WITHIN, counted(300)).await?;
    let after: MetricsReport = get_json(&http, Service::Analytics, "/analytics").await?;
    assert_eq!(after, before, "the replay reproduces the metrics");
    Ok(())
}
