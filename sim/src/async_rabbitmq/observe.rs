//! What Part B's experiments do to and read from a deployment, whichever experiment: the
//! load (orders posted at a steady rate), the counters (Order's and Notification's over HTTP,
//! the queues' depths over AMQP), the wait until everything settled, the final accounting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use campus::api::order::{OrderAcceptedReply, OrdersReply};
use campus::domain::{OrderId, OrderRequest};
use campus::store::{NotificationStats, OrderStats, Storage};
use campus::transport::queue::{MessageQueue, QueueName};
use campus::transport::RequestReply;
use campus::Service;
use tokio::time::Instant;

use super::{DeadLetter, Deployment, Final, Sample};
pub use crate::client::get_json;
use crate::load::{completed_by, Clock, Schedule, Timed};
use crate::Mode;

/// Orders sent: those accepted (202) with the id Order gave them, in the order they were
/// sent, and how many were not accepted.
#[derive(Debug, Default)]
pub struct Placed {
    pub accepted: Vec<(OrderId, OrderRequest)>,
    pub refused: usize,
    /// How long each accepted order took to be answered 202 from its intended start, sorted.
    pub accept_latencies: Vec<Duration>,
    /// Every order sent, on the run's clock (its completion still to be read).
    pub timed: Vec<Timed>,
}

/// Orders and when each is meant to arrive.
pub struct Load {
    pub orders: Vec<OrderRequest>,
    pub offsets: Vec<Duration>,
}

/// Sends `load` to `POST /order` (open loop: the schedule does not wait for answers), each
/// latency from the order's intended start, its intended start on the run's [`Clock`].
pub async fn place_orders(http: Arc<dyn RequestReply>, load: Load, mode: Mode) -> Placed {
    let clock = Clock::of(mode);
    let schedule = Schedule::new(load.offsets);
    let orders = Arc::new(load.orders);
    let sent = crate::load::drive(&schedule, |i, _| {
        let (http, orders) = (http.clone(), orders.clone());
        async move {
            match http.post_json(Service::Order, "/order", &orders[i]).await {
                Ok(reply) if reply.status() == http::StatusCode::ACCEPTED => {
                    serde_json::from_slice::<OrderAcceptedReply>(reply.body()).ok().map(|r| r.order_id)
                }
                Ok(reply) => {
                    tracing::warn!(status = %reply.status(), "order not accepted");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "order not answered");
                    None
                }
            }
        }
    })
    .await;
    let mut placed = Placed::default();
    for s in sent {
        let accept = s.answer.is_some().then_some(s.latency);
        let order_id = s.answer.as_ref().map_or_else(String::new, |id| id.as_str().to_owned());
        placed.timed.push(Timed { index: s.index, order_id, intended_ms: clock.ms_at(s.intended), accept, completion: None });
        match s.answer {
            Some(id) => {
                placed.accepted.push((id, orders[s.index].clone()));
                placed.accept_latencies.push(s.latency);
            }
            None => placed.refused += 1,
        }
    }
    placed.accept_latencies.sort();
    placed
}

/// Each placed order's completion: when Notification recorded its confirmation (`GET
/// /completions`), on the same clock as its intended start.
pub async fn completed(d: &Deployment<'_>, placed: &Placed) -> anyhow::Result<Vec<Timed>> {
    completed_by(d.http().as_ref(), Service::Notification, &placed.timed).await
}

/// One consistent snapshot of the workflow: read downstream first — Notification, then the
/// queues, then Order. Every counter only grows and an order reaches a later stage only after
/// the earlier ones, so a stage read before the stages upstream of it never counts more than
/// they do (no sample with more notified, published or decided than accepted).
pub async fn sample(d: &Deployment<'_>, t0: Instant) -> anyhow::Result<Sample> {
    let notification: NotificationStats = get_json(d.http().as_ref(), Service::Notification, "/stats").await?;
    let dead_lettered = d.mq().depth(QueueName::DeadLetter).await?;
    let queue_depth = d.mq().depth(QueueName::InventoryInbox).await?;
    let orders: OrderStats = get_json(d.http().as_ref(), Service::Order, "/stats").await?;
    Ok(Sample {
        t_ms: t0.elapsed().as_millis() as u64,
        inventory_up: d.inventory_up(),
        queue_depth,
        accepted: orders.accepted,
        published: orders.published,
        reserved: orders.reserved,
        failed: orders.failed,
        notified: notification.notified,
        dead_lettered,
    })
}

/// Every accepted order has its verdict at Order, every reservation its notification, and
/// Inventory's queue is empty.
pub(crate) fn settled(s: &Sample, expected_orders: u64) -> bool {
    s.accepted == expected_orders && s.reserved + s.failed == s.accepted && s.notified == s.reserved && s.queue_depth == 0
}

/// Polls until `done` holds for a sample, or fails after `within`.
pub(super) async fn wait_settled(
    d: &Deployment<'_>,
    t0: Instant,
    within: Duration,
    done: impl Fn(&Sample) -> bool,
) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + within;
    loop {
        let s = sample(d, t0).await?;
        if done(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("the run did not settle within {} s; last state: {s:?}", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the services' final state and empties the dead-letter queue into it.
pub(super) async fn finish(d: &Deployment<'_>) -> anyhow::Result<Final> {
    let http = d.http();
    let dead_letters = drain_dead_letters(d.mq().as_ref()).await?;
    Ok(Final {
        orders: get_json(http.as_ref(), Service::Order, "/orders").await?,
        inventory: get_json(http.as_ref(), Service::Inventory, "/stats").await?,
        inventory_outcomes: get_json(http.as_ref(), Service::Inventory, "/outcomes").await?,
        notification: get_json(http.as_ref(), Service::Notification, "/stats").await?,
        notified: get_json(http.as_ref(), Service::Notification, "/notified").await?,
        dead_letters,
    })
}

/// The final state read from the services' stores, as a disk is read after the fact, and the
/// dead-letter queue emptied into it. Order's account comes from Order (`observer`), which
/// alone knows how often its reconciler published again; from its store, with that count 0,
/// when Order no longer answers (its loop gave up under `--break no-reconnect`).
pub(crate) async fn read_final(storage: &Storage, stock: u32, mq: &dyn MessageQueue, observer: &dyn RequestReply) -> anyhow::Result<Final> {
    let (order, inventory, notification) = (storage.order().await?, storage.inventory(stock, true).await?, storage.notification().await?);
    let orders = match get_json(observer, Service::Order, "/orders").await {
        Ok(orders) => orders,
        Err(e) => {
            tracing::debug!(error = %e, "Order does not answer; its account read from its store");
            OrdersReply { stats: order.stats().await?, statuses: order.statuses().await? }
        }
    };
    Ok(Final {
        orders,
        inventory: inventory.stats().await?,
        inventory_outcomes: inventory.outcomes().await?,
        notification: notification.stats().await?,
        notified: notification.notified().await?,
        dead_letters: drain_dead_letters(mq).await?,
    })
}

/// Every message on the dead-letter queue, taken off it.
async fn drain_dead_letters(mq: &dyn MessageQueue) -> anyhow::Result<Vec<DeadLetter>> {
    let depth = mq.depth(QueueName::DeadLetter).await?;
    let mut dead_letters = Vec::new();
    if depth > 0 {
        let sub = mq.consume(QueueName::DeadLetter, 100).await?;
        for _ in 0..depth {
            let delivery = tokio::time::timeout(Duration::from_secs(30), sub.deliveries.recv_async())
                .await
                .context("reading the dead-letter queue")?
                .context("dead-letter subscription closed")?;
            dead_letters.push(DeadLetter { body: delivery.body.to_vec(), reason: delivery.reason.clone().unwrap_or_default() });
            mq.ack(&delivery).await?;
        }
    }
    Ok(dead_letters)
}
