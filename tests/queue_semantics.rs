//! The messaging semantics the lab relies on, written once and checked against both
//! implementations: `SimQueue` in virtual time, and `AmqpQueue` against the real RabbitMQ that
//! `scripts/brokers.sh up` starts (these tests fail, never skip, when it is not running).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use campus::transport::amqp::{AmqpQueue, DEFAULT_AMQP_URL};
use campus::transport::queue::{Delivery, MessageQueue, QueueName, Route, Subscription, Topology, DELIVERY_LIMIT};
use campus_sim::simulator::clock;
use campus_sim::simulator::net::LinkModel;
use campus_sim::simulator::queue::SimQueue;
use campus_sim::simulator::rng::SimRng;

/// How long a real broker may take to hand over a message that is there.
const PATIENCE: Duration = Duration::from_secs(10);

async fn next(sub: &Subscription) -> Delivery {
    tokio::time::timeout(PATIENCE, sub.deliveries.recv_async()).await.expect("a delivery within the patience").expect("subscription open")
}

async fn depth_becomes(mq: &dyn MessageQueue, queue: QueueName, want: u64) {
    // The broker updates its counters asynchronously; ask until it agrees or patience ends.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let depth = mq.depth(queue).await.unwrap();
        if depth == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queue} depth stayed {depth}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn body(n: u32) -> Bytes {
    Bytes::from(format!("message-{n}"))
}

async fn unacked_deliveries_of_a_dropped_consumer_come_back_redelivered(mq: Arc<dyn MessageQueue>) {
    mq.publish(Route::OrderPlaced, body(1)).await.unwrap();
    let first = mq.consume(QueueName::InventoryInbox, 5).await.unwrap();
    let d = next(&first).await;
    assert_eq!((d.body.clone(), d.redelivered), (body(1), false));
    drop(first);
    let second = mq.consume(QueueName::InventoryInbox, 5).await.unwrap();
    let again = next(&second).await;
    assert_eq!((again.body.clone(), again.redelivered), (body(1), true));
    mq.ack(&again).await.unwrap();
    depth_becomes(mq.as_ref(), QueueName::InventoryInbox, 0).await;
}

async fn a_consumer_never_holds_more_than_its_prefetch(mq: Arc<dyn MessageQueue>) {
    for n in 0..5 {
        mq.publish(Route::OrderPlaced, body(n)).await.unwrap();
    }
    let sub = mq.consume(QueueName::InventoryInbox, 2).await.unwrap();
    let a = next(&sub).await;
    let b = next(&sub).await;
    depth_becomes(mq.as_ref(), QueueName::InventoryInbox, 3).await;
    assert!(sub.deliveries.is_empty(), "a third delivery arrived beyond prefetch 2");
    mq.ack(&a).await.unwrap();
    let c = next(&sub).await;
    assert_eq!(c.body, body(2));
    for d in [b, c] {
        mq.ack(&d).await.unwrap();
    }
}

async fn a_published_message_reaches_every_bound_queue(mq: Arc<dyn MessageQueue>) {
    mq.publish(Route::InventoryReserved, body(7)).await.unwrap();
    depth_becomes(mq.as_ref(), QueueName::OrderInbox, 1).await;
    depth_becomes(mq.as_ref(), QueueName::NotificationInbox, 1).await;
    depth_becomes(mq.as_ref(), QueueName::InventoryInbox, 0).await;
}

async fn rejected_poison_and_over_limit_messages_land_in_the_dead_letter_queue_with_reasons(mq: Arc<dyn MessageQueue>) {
    for n in 0..3 {
        mq.publish(Route::OrderPlaced, body(n)).await.unwrap();
    }
    let sub = mq.consume(QueueName::InventoryInbox, 1).await.unwrap();
    let rejected = next(&sub).await;
    mq.nack(&rejected, false).await.unwrap();
    let poison = next(&sub).await;
    mq.dead_letter(&poison, "not_json: expected value").await.unwrap();
    // The third keeps failing: delivered once, returned DELIVERY_LIMIT times, then the
    // broker dead-letters it instead of delivering it again.
    for delivery in 0..=DELIVERY_LIMIT {
        let d = next(&sub).await;
        assert_eq!(d.body, body(2));
        assert_eq!(d.redelivered, delivery > 0, "delivery {delivery}");
        mq.nack(&d, true).await.unwrap();
    }
    depth_becomes(mq.as_ref(), QueueName::DeadLetter, 3).await;
    let dlq = mq.consume(QueueName::DeadLetter, 10).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&dlq).await;
        got.push((d.body.clone(), d.reason.clone().unwrap_or_default()));
        mq.ack(&d).await.unwrap();
    }
    got.sort();
    assert_eq!(got[0].0, body(0));
    assert!(got[0].1.contains("rejected"), "{:?}", got[0]);
    assert_eq!(got[1], (body(1), "not_json: expected value".to_owned()));
    assert_eq!(got[2].0, body(2));
    assert!(got[2].1.contains("delivery_limit"), "{:?}", got[2]);
    depth_becomes(mq.as_ref(), QueueName::InventoryInbox, 0).await;
    assert!(sub.deliveries.is_empty(), "delivered again after the delivery limit");
}

// ------------------------------------------------------------------------- simulation

fn sim() -> Arc<dyn MessageQueue> {
    Arc::new(SimQueue::new(SimRng::new(3), LinkModel::default()))
}

#[test]
fn sim_unacked_deliveries_of_a_dropped_consumer_come_back_redelivered() {
    clock::block_on(unacked_deliveries_of_a_dropped_consumer_come_back_redelivered(sim()));
}

#[test]
fn sim_a_consumer_never_holds_more_than_its_prefetch() {
    clock::block_on(a_consumer_never_holds_more_than_its_prefetch(sim()));
}

#[test]
fn sim_a_published_message_reaches_every_bound_queue() {
    clock::block_on(a_published_message_reaches_every_bound_queue(sim()));
}

#[test]
fn sim_rejected_poison_and_over_limit_messages_land_in_the_dead_letter_queue_with_reasons() {
    clock::block_on(rejected_poison_and_over_limit_messages_land_in_the_dead_letter_queue_with_reasons(sim()));
}

// ---------------------------------------------------------------------- real RabbitMQ

/// A fresh namespace on the real broker, deleted afterwards.
async fn with_rabbitmq<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Arc<dyn MessageQueue>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
    let topology = Topology::new(format!("test-{name}-{}", std::process::id()));
    let queue = AmqpQueue::connect(&url, topology).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is required for this test and is not reachable ({e}); start it with `scripts/brokers.sh up rabbitmq`")
    });
    let queue = Arc::new(queue);
    test(queue.clone()).await;
    queue.delete_topology().await.unwrap();
    queue.close().await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn rabbitmq_unacked_deliveries_of_a_dropped_consumer_come_back_redelivered() {
    with_rabbitmq("redeliver", unacked_deliveries_of_a_dropped_consumer_come_back_redelivered).await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn rabbitmq_a_consumer_never_holds_more_than_its_prefetch() {
    with_rabbitmq("prefetch", a_consumer_never_holds_more_than_its_prefetch).await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn rabbitmq_a_published_message_reaches_every_bound_queue() {
    with_rabbitmq("routes", a_published_message_reaches_every_bound_queue).await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
async fn rabbitmq_rejected_poison_and_over_limit_messages_land_in_the_dead_letter_queue_with_reasons() {
    with_rabbitmq("dlq", rejected_poison_and_over_limit_messages_land_in_the_dead_letter_queue_with_reasons).await;
}
