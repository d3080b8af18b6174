//! async-rabbitmq: orders per second end to end — `POST /order` accepted until its
//! notification is recorded — over the three `campus-sim serve` processes and the real
//! RabbitMQ (SQLite stores, outbox relay, persistent messages, confirms, manual acks), against
//! two floors in raw lapin, persistent messages of the same size, publisher confirms, manual
//! acks, the same prefetch:
//!
//! - one message per order: published to a quorum queue, consumed and acked;
//! - the order's three messages: published to a first quorum queue; a consumer of it publishes
//!   the next message to a second queue and acks once that is confirmed, a consumer of the
//!   second does the same into a third, a consumer of the third acks — an order's
//!   `OrderPlaced` → outcome → notification, with nothing but the messaging (no stores, no
//!   HTTP). Each consumer handles up to its prefetch at once, each message acked on its own
//!   (our services decide a window of them in one transaction and ack it once: the floor is
//!   the plain way, not our way without its stores).

use std::path::Path;
use std::time::Duration;

use campus::domain::{Envelope, Event, Order, OrderId, OrderPlaced};
use campus::store::NotificationStats;
use campus::Model;
use campus::Service;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::time::Instant;

use super::{Row, Samples, Target};
use crate::async_rabbitmq::{get_json, Config, Deployment};
use crate::hosts::{Hosts, Place};
use crate::simulator::world::{self, Scope, Stream};
use crate::sync_rest::{drive, Door};
use crate::workload;

/// Orders per measured round, and the concurrency they are sent with.
const ORDERS: usize = 1000;
const CLIENTS: usize = 32;

/// One round of ours: `n` orders sent, then wait until every one is decided and each reserved
/// one notified; orders per second over the whole.
async fn ours(d: &Deployment<'_>, n: usize, seed: u64, round: u64) -> anyhow::Result<f64> {
    let http = d.http();
    let before: NotificationStats = get_json(http.as_ref(), Service::Notification, "/stats").await?;
    let before_orders = crate::async_rabbitmq::sample(d, Instant::now()).await?;
    let orders = workload::orders(&mut world::stream(seed, Model::AsyncRabbitmq, &Scope::Bench { round }, Stream::Workload), n);
    let started = Instant::now();
    let (answers, _) = drive(Door::rest(d.order_client()), orders, CLIENTS, Duration::from_secs(30)).await;
    let refused = answers.iter().filter(|a| a.status != 202).count();
    if refused > 0 {
        anyhow::bail!("{refused} of {n} orders were not accepted during the benchmark");
    }
    let deadline = started + Duration::from_secs(120);
    loop {
        let s = crate::async_rabbitmq::sample(d, started).await?;
        let decided = (s.reserved + s.failed) - (before_orders.reserved + before_orders.failed);
        if decided >= n as u64 && s.notified - before.notified >= s.reserved - before_orders.reserved {
            return Ok(n as f64 / started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            anyhow::bail!("orders not settled within 120 s during the benchmark");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A persistent message's properties, as our services publish them.
fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into())
}

/// Publishes `body` `n` times to `queue` on `publisher` (in confirm mode), all in flight at
/// once, and waits for every confirm; a nack fails the benchmark.
async fn publish_confirmed(publisher: &lapin::Channel, queue: &str, body: &[u8], n: usize) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(n);
    for _ in 0..n {
        confirms.push(publisher.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, persistent()).await?);
    }
    for confirm in confirms {
        anyhow::ensure!(!confirm.await?.is_nack(), "the broker nacked a message during the benchmark");
    }
    Ok(())
}

/// A consumer of `from` (up to `prefetch` deliveries at once) that publishes each body on to
/// `to` with a confirm, if given, and then acks; returns once it has acked `n`.
async fn relay_stage(
    connection: &Connection,
    from: String,
    to: Option<String>,
    n: usize,
    prefetch: u16,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let channel = connection.create_channel().await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let publisher = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut consumer =
        channel.basic_consume(from.as_str().into(), "bench-chain".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    Ok(tokio::spawn(async move {
        let mut handling = tokio::task::JoinSet::new();
        let mut acked = 0;
        while acked < n {
            tokio::select! {
                delivery = consumer.next() => {
                    let Some(delivery) = delivery else { anyhow::bail!("the chain's consumer of {from} stopped") };
                    let delivery = delivery?;
                    let (publisher, to) = (publisher.clone(), to.clone());
                    handling.spawn(async move {
                        if let Some(to) = to {
                            let confirm = publisher.basic_publish("".into(), to.as_str().into(), BasicPublishOptions::default(), &delivery.data, persistent()).await?;
                            anyhow::ensure!(!confirm.await?.is_nack(), "the broker nacked a message during the benchmark");
                        }
                        delivery.ack(BasicAckOptions::default()).await?;
                        anyhow::Ok(())
                    });
                }
                Some(done) = handling.join_next(), if !handling.is_empty() => {
                    done??;
                    acked += 1;
                }
            }
        }
        let _ = channel.close(200, "done".into()).await;
        let _ = publisher.close(200, "done".into()).await;
        Ok(())
    }))
}

/// One round of the three-message floor: `n` bodies published to the first queue with
/// confirms, relayed through the second and third; orders per second from the first publish to
/// the last ack on the third queue.
async fn raw_chain(connection: &Connection, queues: &[String; 3], body: &[u8], n: usize, prefetch: u16) -> anyhow::Result<f64> {
    let stages = [
        relay_stage(connection, queues[0].clone(), Some(queues[1].clone()), n, prefetch).await?,
        relay_stage(connection, queues[1].clone(), Some(queues[2].clone()), n, prefetch).await?,
        relay_stage(connection, queues[2].clone(), None, n, prefetch).await?,
    ];
    let publisher = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    publish_confirmed(&publisher, &queues[0], body, n).await?;
    for stage in stages {
        stage.await??;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = publisher.close(200, "done".into()).await;
    Ok(rate)
}

/// One round of the floor: `n` persistent messages published with confirms (all in flight at
/// once, as the protocol allows) and consumed with acks; messages per second from the first
/// publish to the last ack.
async fn raw(connection: &Connection, queue: &str, body: &[u8], n: usize, prefetch: u16) -> anyhow::Result<f64> {
    let consumer_channel = connection.create_channel().await?;
    consumer_channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer =
        consumer_channel.basic_consume(queue.into(), "bench-raw".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    let publisher = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut seen = 0;
        while seen < n {
            let Some(delivery) = consumer.next().await else { anyhow::bail!("the raw consumer stopped") };
            delivery?.ack(BasicAckOptions::default()).await?;
            seen += 1;
        }
        let _ = consumer_channel.close(200, "done".into()).await;
        Ok(())
    });
    publish_confirmed(&publisher, queue, body, n).await?;
    consume.await??;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = publisher.close(200, "done".into()).await;
    Ok(rate)
}

pub async fn run(exe: &Path, repeats: usize, amqp_url: &str, prefetch: u16, seed: u64) -> anyhow::Result<Vec<Row>> {
    let config = Config { stock: 1_000_000, prefetch, ..Config::default() };
    let hosts = Hosts::real(exe, Model::AsyncRabbitmq, "bench", Place { amqp_url: amqp_url.into(), ..Place::default() }).await?;
    let d = Deployment::start(hosts, &config, 1).await?;
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let setup = connection.create_channel().await?;
    let queue = format!("campus-sim.bench.raw.{}", std::process::id());
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    setup
        .queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }, args.clone())
        .await?;
    let chain: [String; 3] = [1, 2, 3].map(|i| format!("campus-sim.bench.chain{i}.{}", std::process::id()));
    for q in &chain {
        setup
            .queue_declare(q.as_str().into(), QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }, args.clone())
            .await?;
    }
    // A message the size of ours: an encoded OrderPlaced.
    let order = workload::orders(&mut world::stream(seed, Model::AsyncRabbitmq, &Scope::Bench { round: 0 }, Stream::Workload), 1).remove(0);
    let body =
        Envelope::new(Event::OrderPlaced(OrderPlaced { order: Order::new(OrderId::parse("o-bench-000001")?, order), placed_at_ms: 0 }))
            .encode();

    let result = async {
        ours(&d, ORDERS / 4, seed, 0).await?;
        raw(&connection, &queue, &body, ORDERS / 4, config.prefetch).await?;
        raw_chain(&connection, &chain, &body, ORDERS / 4, config.prefetch).await?;
        let (mut ours_rate, mut raw_rate, mut chain_rate) = (Samples::default(), Samples::default(), Samples::default());
        for i in 0..repeats {
            ours_rate.0.push(ours(&d, ORDERS, seed, i as u64 + 1).await?);
            raw_rate.0.push(raw(&connection, &queue, &body, ORDERS, config.prefetch).await?);
            chain_rate.0.push(raw_chain(&connection, &chain, &body, ORDERS, config.prefetch).await?);
        }
        crate::progress::step(&format!(
            "async-rabbitmq: {:.0} orders/s end to end vs {:.0} through three raw queues, {:.0} raw messages/s",
            ours_rate.median(),
            chain_rate.median(),
            raw_rate.median()
        ));
        Ok::<_, anyhow::Error>(vec![
            Row {
                model: "async-rabbitmq",
                case: format!("{ORDERS} orders, {CLIENTS} clients, prefetch {}", config.prefetch),
                metric: "orders_per_s",
                ours: ours_rate.clone(),
                floor: Some(chain_rate),
                target: Some(Target::AtLeast(0.7)),
                floor_is: "raw lapin: an order's three messages through three quorum queues",
            },
            Row {
                model: "async-rabbitmq",
                case: format!("{ORDERS} orders, {CLIENTS} clients, prefetch {}", config.prefetch),
                metric: "orders_per_s",
                ours: ours_rate,
                floor: Some(raw_rate),
                target: Some(Target::AtLeast(0.5)),
                floor_is: "raw lapin publish+confirm, consume+ack, quorum queue",
            },
        ])
    }
    .await;
    for q in chain.iter().chain([&queue]) {
        let _ = setup.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "bye".into()).await;
    d.teardown().await;
    result
}
