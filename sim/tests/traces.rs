//! One order's spans form one connected trace in each model — every span's parent among them
//! but the root's, every link naming one of them — across a synchronous call chain (REST and
//! gRPC), a queue (a
//! message returned and delivered again included) and a log (a replay included); in the
//! simulation and over real processes (Part A's need no broker; B's and C's run in the test
//! script, where the brokers are).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use campus::domain::{Order, OrderId, OrderPlaced, OrderRequest};
use campus::faults::FaultPlan;
use campus::host::Transport;
use campus::transport::queue::{Message, MessageQueue, QueueError, QueueLayer, Route};
use campus::transport::BoxFuture;
use campus::{Model, Protocol, Service};
use campus_sim::client::settled;
use campus_sim::hosts::{Hosts, Place};
use campus_sim::simulator::world::{Scope, World};
use campus_sim::traces::spans::{self, by_order, connected, SpanRow};
use campus_sim::{async_rabbitmq, streaming_kafka, sync_rest, Mode};
use serde_json::json;

use crate::brokers::{KAFKA, RABBITMQ};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_campus-sim"))
}

fn order(student: &str) -> serde_json::Value {
    json!({"student_id": student, "items": [{"sku": "pho", "qty": 1}]})
}

/// Each order's spans, as the report reads them.
fn orders(mode: Mode, requests: &[campus::telemetry::trace::Request]) -> Vec<(String, Vec<SpanRow>)> {
    let rows = spans::rows(mode, "test", requests);
    by_order(&rows).into_iter().map(|(order, spans)| (order.to_owned(), spans.into_iter().cloned().collect())).collect()
}

/// The names (service: span) of `spans`, in start order.
fn names(spans: &[SpanRow]) -> Vec<String> {
    spans.iter().map(SpanRow::hop).collect()
}

fn is_connected(order: &str, spans: &[SpanRow]) -> anyhow::Result<()> {
    let refs: Vec<&SpanRow> = spans.iter().collect();
    connected(&refs).map_err(|e| anyhow::anyhow!("order {order}: {e}; its spans: {:?}", names(spans)))
}

/// The spans of `spans` named `hop`.
fn named<'s>(spans: &'s [SpanRow], hop: &str) -> Vec<&'s SpanRow> {
    spans.iter().filter(|s| s.hop() == hop).collect()
}

fn the_one<'s>(spans: &'s [SpanRow], hop: &str) -> anyhow::Result<&'s SpanRow> {
    let found = named(spans, hop);
    ensure!(found.len() == 1, "{} spans {hop}, not one: {:?}", found.len(), names(spans));
    Ok(found[0])
}

/// The one span of `spans` that `service` made of `kind`.
fn the_one_of<'s>(spans: &'s [SpanRow], service: &str, kind: &str) -> anyhow::Result<&'s SpanRow> {
    let found: Vec<&SpanRow> = spans.iter().filter(|s| s.service == service && s.kind == kind).collect();
    ensure!(found.len() == 1, "{} {kind} spans of {service}, not one: {:?}", found.len(), names(spans));
    Ok(found[0])
}

/// Part A over `protocol`: a placed order is one tree of calls — Order's request, its two
/// calls, Inventory's and Notification's requests under them; an order refused while Inventory
/// is down is a short tree, failed at both of its ends.
async fn part_a_orders_are_call_trees(hosts: Hosts<'_>, protocol: Protocol) -> anyhow::Result<()> {
    let mode = hosts.mode();
    let settings = sync_rest::Settings::new(10, Duration::from_secs(1)).over(protocol);
    let mut campus = sync_rest::Deployment::start(hosts.traced(), &settings, &FaultPlan::healthy()).await?;
    let within = Duration::from_secs(5);
    let (placed, _) = campus.door().place(&serde_json::from_value(order("s-1"))?, within).await.map_err(anyhow::Error::msg)?;
    ensure!(placed == 201, "placing an order: {placed}");
    campus.kill_inventory().await?;
    let (refused, _) = campus.door().place(&serde_json::from_value(order("s-2"))?, within).await.map_err(anyhow::Error::msg)?;
    ensure!(refused == 503, "placing an order, Inventory down: {refused}");
    let orders = orders(mode, &campus.teardown().await);
    ensure!(orders.len() == 2, "two orders traced, not {}", orders.len());
    let (placed, refused): (Vec<_>, Vec<_>) = orders.iter().partition(|(_, spans)| spans.iter().all(|s| s.failed == 0));
    ensure!(placed.len() == 1, "one order failed nowhere, not {}", placed.len());
    let (first, placed) = placed[0];
    is_connected(first, placed)?;
    assert_eq!(placed.len(), 5, "a request, two calls, two requests: {:?}", names(placed));
    let root = the_one_of(placed, "order", "server")?;
    let reserved = the_one_of(placed, "inventory", "server")?;
    let sent = the_one_of(placed, "notification", "server")?;
    for served in [reserved, sent] {
        let call = placed.iter().find(|s| s.span_id == served.parent_id).context("the call")?;
        assert_eq!((call.service.as_str(), call.kind.as_str(), call.parent_id.as_str()), ("order", "client", root.span_id.as_str()));
    }
    assert!(sent.start_ms.0 >= reserved.end_ms(), "Notification is called after Inventory answered");
    let (second, refused) = refused[0];
    is_connected(second, refused)?;
    let kinds: Vec<(&str, &str)> = refused.iter().map(|s| (s.service.as_str(), s.kind.as_str())).collect();
    assert_eq!(kinds, [("order", "server"), ("order", "client")], "a refused order is a short tree");
    assert!(refused.iter().all(|s| s.failed == 1), "both ends failed: {refused:?}");
    Ok(())
}

#[test]
fn in_the_simulation_a_part_a_order_is_one_tree_of_calls() -> anyhow::Result<()> {
    for protocol in Protocol::ALL {
        let world = World::new(1, Model::SyncRest, Scope::Experiment("traces")).traced();
        world.block_on(part_a_orders_are_call_trees(Hosts::Sim(&world), protocol)).with_context(|| format!("over {protocol}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_real_processes_a_part_a_order_is_one_tree_of_calls() -> anyhow::Result<()> {
    for protocol in Protocol::ALL {
        let hosts = Hosts::real(exe(), Model::SyncRest, "traces", Place::default()).await?;
        part_a_orders_are_call_trees(hosts, protocol).await.with_context(|| format!("over {protocol}"))?;
    }
    Ok(())
}

/// Part B's queue as it is, but for the first outcome Inventory publishes, which the broker
/// does not take: Inventory returns that `OrderPlaced` to its queue, and handles it again when it
/// comes back.
struct FirstOutcomeRefused {
    inner: Arc<dyn MessageQueue>,
    refused: AtomicBool,
}

impl QueueLayer for FirstOutcomeRefused {
    fn inner(&self) -> &dyn MessageQueue {
        self.inner.as_ref()
    }
    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        if messages.iter().any(|m| m.route != Route::OrderPlaced) && !self.refused.swap(true, Ordering::SeqCst) {
            return Box::pin(async { Err(QueueError::NotConfirmed) });
        }
        self.inner.publish_all(messages)
    }
}

/// Part B: an order is Order's request, the relay's publish under it, each queue's handling
/// under (and linked to) the publish it handled; with `redelivered`, Inventory's first handling
/// failed and the message came back: two `process` spans, linked to the same publish.
async fn part_b_an_order_is_one_trace(hosts: Hosts<'_>, redelivered: bool) -> anyhow::Result<()> {
    let mode = hosts.mode();
    let campus = async_rabbitmq::Deployment::start(hosts.traced(), &async_rabbitmq::Config::default(), 1).await?;
    let reply = campus.http().post_json(Service::Order, "/order", &order("s-1")).await?;
    ensure!(reply.status() == http::StatusCode::ACCEPTED, "POST /order: {}", reply.status());
    let observer = campus.observer();
    settled("the order confirmed", Duration::from_secs(60), || async {
        let sent: campus::store::NotificationStats =
            campus_sim::client::get_json(observer.as_ref(), Service::Notification, "/stats").await?;
        Ok(sent.notified == 1)
    })
    .await?;
    settled("Order recording the verdict", Duration::from_secs(60), || async {
        let reply = observer.call(Service::Order, http::Request::get("/orders").body(bytes::Bytes::new())?).await?;
        Ok(String::from_utf8_lossy(reply.body()).contains("\"reserved\""))
    })
    .await?;
    let orders = orders(mode, &campus.teardown().await);
    ensure!(orders.len() == 1, "one order traced, not {}", orders.len());
    let (id, spans) = &orders[0];
    is_connected(id, spans)?;
    let published = the_one(spans, "order: publish OrderPlaced")?;
    assert_eq!(published.parent_id, the_one(spans, "order: POST /order")?.span_id, "the relay publishes under the request");
    let handled = named(spans, "inventory: process inventory.order-placed");
    assert_eq!(handled.len(), if redelivered { 2 } else { 1 }, "Inventory's handlings: {:?}", names(spans));
    for handling in &handled {
        assert_eq!((handling.parent_id.as_str(), handling.link_id.as_str()), (published.span_id.as_str(), published.span_id.as_str()));
    }
    assert_eq!(handled.iter().filter(|h| h.failed == 1).count(), usize::from(redelivered), "the returned handling failed");
    let outcome =
        spans.iter().find(|s| s.hop() == "inventory: publish InventoryReserved" && s.failed == 0).context("the outcome published")?;
    for consumer in ["notification: process notification.inventory-reserved", "order: process order.inventory-results"] {
        assert_eq!(the_one(spans, consumer)?.link_id, outcome.span_id, "{consumer} handled the outcome");
    }
    Ok(())
}

#[test]
fn in_the_simulation_a_part_b_order_is_one_trace_across_a_redelivery() -> anyhow::Result<()> {
    let world = World::new(1, Model::AsyncRabbitmq, Scope::Experiment("traces")).traced();
    let queue: Arc<dyn MessageQueue> = world.queue();
    let refusing: Arc<dyn MessageQueue> = Arc::new(FirstOutcomeRefused { inner: queue.clone(), refused: AtomicBool::new(false) });
    let world = world.with_transport(Arc::new(move |service, _| match service {
        Service::Inventory => Transport::Queue(refusing.clone()),
        _ => Transport::Queue(queue.clone()),
    }));
    world.block_on(part_b_an_order_is_one_trace(Hosts::Sim(&world), true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn over_rabbitmq_a_part_b_order_is_one_trace() -> anyhow::Result<()> {
    let _using = RABBITMQ.shared();
    part_b_an_order_is_one_trace(Hosts::real(exe(), Model::AsyncRabbitmq, "traces", Place::default()).await?, false).await
}

/// Part C: an order is the producer's append under its request, Inventory's decision under (and
/// linked to) it, the outcome appended in Inventory's transaction under the decision, and
/// Analytics' readings of both; after Analytics' group is reset, each record read again is one
/// more `process` span linked to the same append.
async fn part_c_an_order_is_one_trace_across_a_replay(hosts: Hosts<'_>) -> anyhow::Result<()> {
    let mode = hosts.mode();
    let campus = streaming_kafka::Deployment::start(hosts.traced(), &streaming_kafka::Config::default()).await?;
    campus.start_inventory().await?;
    campus.start_analytics(None).await?;
    let request: OrderRequest = serde_json::from_value(order("s-1"))?;
    let placed = OrderPlaced { order: Order::new(OrderId::parse("o-traced")?, request), placed_at_ms: 1_000 };
    campus.produce(&[placed]).await?;
    let counted = || async {
        let metrics = campus.metrics().await?;
        Ok(metrics.total.orders == 1 && metrics.total.reserved == 1)
    };
    settled("Analytics counting the order", Duration::from_secs(120), counted).await?;
    campus.stop_analytics().await?;
    campus.reset_analytics().await?;
    campus.start_analytics(None).await?;
    settled("Analytics counting it again after the replay", Duration::from_secs(120), counted).await?;
    campus.stop_analytics().await?;
    let orders = orders(mode, &campus.teardown().await);
    let (id, spans) = orders.iter().find(|(id, _)| id == "o-traced").context("the order traced")?;
    is_connected(id, spans)?;
    let appended = the_one(spans, "producer: publish order-events")?;
    assert_eq!(appended.parent_id, the_one(spans, "producer: POST /orders")?.span_id);
    let decided = the_one(spans, "inventory: process order-events")?;
    assert_eq!((decided.parent_id.as_str(), decided.link_id.as_str()), (appended.span_id.as_str(), appended.span_id.as_str()));
    let outcome = the_one(spans, "inventory: publish inventory-events")?;
    assert_eq!(outcome.parent_id, decided.span_id, "the outcome is written under the decision");
    for (topic, read) in [("order-events", appended), ("inventory-events", outcome)] {
        let readings = named(spans, &format!("analytics: process {topic}"));
        assert_eq!(readings.len(), 2, "Analytics read {topic} twice, once in the replay: {:?}", names(spans));
        assert!(readings.iter().all(|r| r.link_id == read.span_id && r.parent_id == read.span_id), "{topic}: {readings:?}");
    }
    Ok(())
}

#[test]
fn in_the_simulation_a_part_c_order_is_one_trace_across_a_replay() -> anyhow::Result<()> {
    let world = World::new(1, Model::StreamingKafka, Scope::Experiment("traces")).traced();
    world.block_on(part_c_an_order_is_one_trace_across_a_replay(Hosts::Sim(&world)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn over_kafka_a_part_c_order_is_one_trace_across_a_replay() -> anyhow::Result<()> {
    let _using = KAFKA.shared();
    part_c_an_order_is_one_trace_across_a_replay(Hosts::real(exe(), Model::StreamingKafka, "traces", Place::default()).await?).await
}

/// The same seed, the same spans: ids and times of a simulated run are the seed's.
#[test]
fn in_the_simulation_spans_are_the_same_for_a_seed() -> anyhow::Result<()> {
    let run = |seed| -> anyhow::Result<Vec<SpanRow>> {
        let world = World::new(seed, Model::SyncRest, Scope::Experiment("traces")).traced();
        world.block_on(async {
            let campus = sync_rest::Deployment::start(
                Hosts::Sim(&world),
                &sync_rest::Settings::new(10, Duration::from_secs(1)),
                &FaultPlan::healthy(),
            )
            .await?;
            for student in ["s-1", "s-2"] {
                campus.client().post_json(Service::Order, "/order", &order(student)).await?;
            }
            Ok(spans::rows(Mode::Sim, "seed", &campus.teardown().await))
        })
    };
    let (first, again, other) = (run(5)?, run(5)?, run(6)?);
    assert_eq!(first.len(), 10, "two orders of five spans");
    assert_eq!(first, again);
    assert_ne!(first.iter().map(|s| &s.span_id).collect::<Vec<_>>(), other.iter().map(|s| &s.span_id).collect::<Vec<_>>());
    Ok(())
}
