//! Every service's `GET /metrics`: OpenMetrics text that a Prometheus text parser reads, whose
//! counts agree with what the services did — each part in the simulation and over real
//! processes (Part A's need no broker; Part B's and C's run in the test script, where the
//! brokers are).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use campus::domain::{Order, OrderId, OrderPlaced, OrderRequest};
use campus::faults::FaultPlan;
use campus::telemetry::metrics::CONTENT_TYPE;
use campus::transport::queue::Route;
use campus::transport::RequestReply;
use campus::{Model, Service};
use campus_sim::client::settled;
use campus_sim::hosts::{Hosts, Place};
use campus_sim::simulator::world::{Scope, World};
use campus_sim::{async_rabbitmq, streaming_kafka, sync_rest};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::brokers::{KAFKA, RABBITMQ};

/// One service's exposition, parsed.
struct Exposition {
    scrape: Scrape,
    text: String,
}

impl Exposition {
    /// `GET /metrics` on `service`: answered 200 in the OpenMetrics content type, every sample
    /// of a family its `# TYPE` line declared, and read by the parser.
    async fn of(client: &dyn RequestReply, service: Service) -> anyhow::Result<Self> {
        let request = http::Request::get("/metrics").body(bytes::Bytes::new())?;
        let reply = client.call(service, request).await.with_context(|| format!("GET /metrics on {service}"))?;
        ensure!(reply.status() == http::StatusCode::OK, "GET /metrics on {service} answered {}", reply.status());
        let content_type = reply.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        ensure!(content_type == CONTENT_TYPE, "{service}'s content type: {content_type}");
        let text = String::from_utf8(reply.body().to_vec())?;
        well_formed(&text).with_context(|| format!("{service}'s exposition:\n{text}"))?;
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))?;
        Ok(Exposition { scrape, text })
    }

    /// The value of the sample `name` with every label of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let found = self
            .scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(label, value)| s.labels.get(label) == Some(*value)));
        match found.map(|s| &s.value) {
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => Ok(*v),
            Some(other) => bail!("{name}{labels:?} is not a single value: {other:?}"),
            None => bail!("no sample {name}{labels:?} in:\n{}", self.text),
        }
    }

    /// How many requests to `route` were answered `status` (the request histogram's count).
    fn requests(&self, route: &str, status: &str) -> anyhow::Result<f64> {
        self.value("http_server_request_duration_seconds_count", &[("route", route), ("status", status)])
    }
}

/// The exposition's grammar, beyond what the lenient parser checks: `# HELP` and `# TYPE`
/// before each family's samples, every sample of a declared family (with the suffixes its type
/// allows), one `# EOF` at the very end.
fn well_formed(text: &str) -> anyhow::Result<()> {
    let mut families: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.last() == Some(&"# EOF"), "the exposition does not end with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').context("a TYPE line without a type")?;
            families.push((name.to_owned(), kind.to_owned()));
        } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
        } else if line.starts_with('#') {
            bail!("an unexpected comment: {line}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let (family, kind) = families.last().context("a sample before any TYPE line")?;
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            ensure!(suffixes.iter().any(|s| name == format!("{family}{s}")), "{name} is not of the family {family} ({kind})");
            let value = line.rsplit(' ').next().unwrap_or_default();
            ensure!(value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN", "{line}: not a number");
        }
    }
    let names: BTreeSet<&String> = families.iter().map(|(n, _)| n).collect();
    ensure!(names.len() == families.len(), "a family declared twice");
    Ok(())
}

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_campus-sim"))
}

fn order(student: &str, sku: &str, qty: u32) -> serde_json::Value {
    json!({"student_id": student, "items": [{"sku": sku, "qty": qty}]})
}

/// Part A: two orders placed and one refused, each counted by its outcome at Order and decided
/// at Inventory, each placed one confirmed at Notification, and every request timed.
async fn part_a_counts_each_order(hosts: Hosts<'_>) -> anyhow::Result<()> {
    let campus = sync_rest::Deployment::start(hosts, &sync_rest::Settings::new(10, Duration::from_secs(1)), &FaultPlan::healthy()).await?;
    let client = campus.client();
    for (body, status) in [(order("s-1", "pho", 4), 201), (order("s-2", "pho", 4), 201), (order("s-3", "pho", 4), 409)] {
        let reply = client.post_json(Service::Order, "/order", &body).await?;
        ensure!(reply.status().as_u16() == status, "POST /order {body}: {}", reply.status());
    }
    let order = Exposition::of(client.as_ref(), Service::Order).await?;
    assert_eq!(order.value("campus_orders_total", &[("outcome", "placed")])?, 2.0);
    assert_eq!(order.value("campus_orders_total", &[("outcome", "out_of_stock")])?, 1.0);
    assert_eq!(order.value("campus_orders_accepted_total", &[])?, 2.0);
    assert_eq!((order.requests("/order", "201")?, order.requests("/order", "409")?), (2.0, 1.0));
    let inventory = Exposition::of(client.as_ref(), Service::Inventory).await?;
    assert_eq!(inventory.value("campus_orders_decided_total", &[("outcome", "reserved")])?, 2.0);
    assert_eq!(inventory.value("campus_orders_decided_total", &[("outcome", "failed")])?, 1.0);
    assert_eq!((inventory.requests("/reserve", "200")?, inventory.requests("/reserve", "409")?), (2.0, 1.0));
    let notification = Exposition::of(client.as_ref(), Service::Notification).await?;
    assert_eq!(notification.value("campus_notifications_sent_total", &[])?, 2.0);
    campus.teardown().await;
    Ok(())
}

/// Part B: three orders accepted, decided and confirmed; a malformed message dead-lettered by
/// Inventory; the outbox empty once the broker confirmed every `OrderPlaced`.
async fn part_b_counts_each_order_and_each_dead_letter(hosts: Hosts<'_>) -> anyhow::Result<()> {
    let campus = async_rabbitmq::Deployment::start(hosts, &async_rabbitmq::Config::default(), 1).await?;
    let client = campus.http();
    for student in ["s-1", "s-2", "s-3"] {
        let reply = client.post_json(Service::Order, "/order", &order(student, "pho", 1)).await?;
        ensure!(reply.status() == http::StatusCode::ACCEPTED, "POST /order: {}", reply.status());
    }
    campus.mq().publish(Route::OrderPlaced, bytes::Bytes::from_static(b"not an event")).await?;
    let observer = campus.observer();
    settled("three confirmations and a dead letter", Duration::from_secs(60), || async {
        let notification = Exposition::of(observer.as_ref(), Service::Notification).await?;
        let inventory = Exposition::of(observer.as_ref(), Service::Inventory).await?;
        let dead = inventory.value("campus_dead_letters_total", &[("queue", "inventory.order-placed")]).unwrap_or(0.0);
        Ok(notification.value("campus_notifications_sent_total", &[])? == 3.0 && dead == 1.0)
    })
    .await?;
    let order = Exposition::of(observer.as_ref(), Service::Order).await?;
    assert_eq!(order.value("campus_orders_accepted_total", &[])?, 3.0);
    assert_eq!(order.requests("/order", "202")?, 3.0);
    settled("Order recording the three verdicts", Duration::from_secs(60), || async {
        let order = Exposition::of(observer.as_ref(), Service::Order).await?;
        Ok(order.value("campus_orders_decided_total", &[("outcome", "reserved")])? == 3.0)
    })
    .await?;
    let order = Exposition::of(observer.as_ref(), Service::Order).await?;
    assert_eq!(order.value("campus_outbox_depth", &[])?, 0.0);
    assert_eq!(order.value("campus_messages_published_total", &[("route", "OrderPlaced")])?, 3.0);
    let inventory = Exposition::of(observer.as_ref(), Service::Inventory).await?;
    assert_eq!(inventory.value("campus_orders_decided_total", &[("outcome", "reserved")])?, 3.0);
    assert_eq!(inventory.value("campus_messages_published_total", &[("route", "InventoryReserved")])?, 3.0);
    campus.teardown().await;
    Ok(())
}

/// Part C: five orders appended by the producer, decided by Inventory and counted by Analytics,
/// whose group then lags by nothing.
async fn part_c_counts_each_order_and_the_lag(hosts: Hosts<'_>) -> anyhow::Result<()> {
    let campus = streaming_kafka::Deployment::start(hosts, &streaming_kafka::Config::default()).await?;
    campus.start_inventory().await?;
    campus.start_analytics(None).await?;
    let events: Vec<OrderPlaced> = (1..=5)
        .map(|i| {
            let request: OrderRequest = serde_json::from_value(order(&format!("s-{i}"), "pho", 1)).expect("a valid order");
            let id = OrderId::parse(format!("o-metrics-{i}")).expect("a valid id");
            OrderPlaced { order: Order::new(id, request), placed_at_ms: 1_000 * i }
        })
        .collect();
    campus.produce(&events).await?;
    let observer = campus.observer();
    settled("Analytics counting five outcomes", Duration::from_secs(120), || async {
        let analytics = Exposition::of(observer.as_ref(), Service::Analytics).await?;
        Ok(analytics.value("campus_orders_decided_total", &[("outcome", "reserved")])? == 5.0)
    })
    .await?;
    let producer = Exposition::of(observer.as_ref(), Service::Producer).await?;
    assert_eq!(producer.value("campus_orders_accepted_total", &[])?, 5.0);
    assert_eq!(producer.requests("/orders", "202")?, 1.0);
    let inventory = Exposition::of(observer.as_ref(), Service::Inventory).await?;
    assert_eq!(inventory.value("campus_orders_decided_total", &[("outcome", "reserved")])?, 5.0);
    settled("Analytics' group caught up", Duration::from_secs(60), || async {
        let analytics = Exposition::of(observer.as_ref(), Service::Analytics).await?;
        let lag = |topic| analytics.value("campus_consumer_lag_records", &[("group", "analytics"), ("topic", topic)]);
        Ok(lag("order-events")? == 0.0 && lag("inventory-events")? == 0.0)
    })
    .await?;
    let analytics = Exposition::of(observer.as_ref(), Service::Analytics).await?;
    assert_eq!(analytics.value("campus_analytics_orders_placed_total", &[])?, 5.0);
    assert_eq!(analytics.value("campus_consumer_lag_seconds", &[("group", "analytics"), ("topic", "order-events")])?, 0.0);
    campus.teardown().await;
    Ok(())
}

#[test]
fn in_the_simulation_part_a_services_count_each_order_and_time_each_request() -> anyhow::Result<()> {
    let world = World::new(1, Model::SyncRest, Scope::Experiment("metrics"));
    world.block_on(part_a_counts_each_order(Hosts::Sim(&world)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_real_processes_part_a_services_count_each_order_and_time_each_request() -> anyhow::Result<()> {
    part_a_counts_each_order(Hosts::real(exe(), Model::SyncRest, "metrics", Place::default()).await?).await
}

#[test]
fn in_the_simulation_part_b_services_count_each_order_and_each_dead_letter() -> anyhow::Result<()> {
    let world = World::new(1, Model::AsyncRabbitmq, Scope::Experiment("metrics"));
    world.block_on(part_b_counts_each_order_and_each_dead_letter(Hosts::Sim(&world)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn over_rabbitmq_part_b_services_count_each_order_and_each_dead_letter() -> anyhow::Result<()> {
    let _using = RABBITMQ.shared();
    part_b_counts_each_order_and_each_dead_letter(Hosts::real(exe(), Model::AsyncRabbitmq, "metrics", Place::default()).await?).await
}

#[test]
fn in_the_simulation_part_c_services_count_each_order_and_the_lag() -> anyhow::Result<()> {
    let world = World::new(1, Model::StreamingKafka, Scope::Experiment("metrics"));
    world.block_on(part_c_counts_each_order_and_the_lag(Hosts::Sim(&world)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn over_kafka_part_c_services_count_each_order_and_the_lag() -> anyhow::Result<()> {
    let _using = KAFKA.shared();
    part_c_counts_each_order_and_the_lag(Hosts::real(exe(), Model::StreamingKafka, "metrics", Place::default()).await?).await
}
