//! The services as message consumers (Part B). One loop, [`consume`], does what every consumer
//! must: decode, hand the event to the service, settle the delivery. The services only say
//! what they made of an event ([`Verdict`]).
//!
//! Settling order matters and is the same everywhere: the service commits its state change
//! (and publishes what follows from it, with a confirm) **before** the delivery is acked. A
//! crash anywhere before the ack means the message is delivered again, and the services'
//! stores make the repeat harmless (see `crate::store`).
//!
//! **When the broker goes away** the subscription ends and settling fails: the consumer stops
//! taking deliveries, waits (backoff with jitter, [`Policy`]) and subscribes again, for as long
//! as it takes. What it held unacknowledged comes back as redeliveries, which the stores absorb.
//! The consumer never exits because of the broker.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Envelope, Event, OrderStatus};
use crate::retry::Policy;
use crate::services::completions::Completions;
use crate::store::{InventoryStore, NotificationStore, OrderStore, StoreError};
use crate::telemetry::trace::{self, Kind, Span, Tracer, WithContext};
use crate::transport::queue::{Delivery, MessageQueue, QueueError, QueueName, Route, Subscription};
use crate::transport::TRACEPARENT;

/// What a service made of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled (or a harmless repeat): ack.
    Done,
    /// Can never be handled here: dead-letter with this reason, ack.
    Poison(String),
    /// Could not be handled now (store or broker trouble): back to the queue. After
    /// `DELIVERY_LIMIT` returns the broker dead-letters it.
    Retry(String),
}

/// Consumes `queue`: subscribes, handles deliveries, and when the subscription ends or the
/// broker fails, subscribes again after a backoff — unless `policy` says not to reconnect, in
/// which case it returns (the lab's `--break no-reconnect`).
///
/// Up to `prefetch` deliveries are handled at once (each in its own task): a handler mostly
/// waits — for its store's commit, for the broker's confirm of what it publishes — and those
/// waits overlap. Each delivery is settled when its own handler is done; repeats of one order
/// are safe because the stores serialize their transactions. With `prefetch` 1 the deliveries
/// are handled strictly one after the other.
///
/// Each delivery is handled in a `process` span ([`crate::telemetry::trace`]): a child of, and
/// linked to, the `publish` span its `traceparent` names, so that what the handler publishes is
/// in the order's trace; a redelivery is one more such span.
pub async fn consume<F>(
    mq: &dyn MessageQueue,
    queue: QueueName,
    prefetch: u16,
    policy: Policy,
    tracer: &Tracer,
    mut handle: F,
) -> Result<(), QueueError>
where
    F: FnMut(Event) -> futures_lite::future::Boxed<Verdict>,
{
    let mut backoff = policy.backoff(queue.suffix());
    let what = format!("the consumer of {queue} subscribing");
    loop {
        let subscription = policy.until_ok(&mut backoff, &what, QueueError::is_transient, || mq.consume(queue, prefetch)).await?;
        let ended = drain(mq, queue, prefetch, &subscription, tracer, &mut handle).await;
        if !policy.reconnect {
            return ended;
        }
        match ended {
            Ok(()) => tracing::warn!(%queue, "the subscription ended (the broker went away?); subscribing again"),
            Err(e) => tracing::warn!(%queue, error = %e, "settling failed (the broker went away?); subscribing again"),
        }
        backoff.wait().await;
    }
}

/// Handles `subscription`'s deliveries until it ends (then waits for the handlers in flight)
/// or a settle fails (then the handlers in flight are dropped: their deliveries come back).
async fn drain<F>(
    mq: &dyn MessageQueue,
    queue: QueueName,
    prefetch: u16,
    subscription: &Subscription,
    tracer: &Tracer,
    handle: &mut F,
) -> Result<(), QueueError>
where
    F: FnMut(Event) -> futures_lite::future::Boxed<Verdict>,
{
    let limit = usize::from(prefetch.max(1));
    let mut in_flight: tokio::task::JoinSet<(Delivery, Verdict, Span)> = tokio::task::JoinSet::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                let (delivery, verdict, span) = done.expect("a message handler panicked");
                match &verdict {
                    Verdict::Done => {}
                    Verdict::Poison(why) | Verdict::Retry(why) => span.fail(why.clone()),
                }
                settle(mq, queue, &delivery, verdict).await?;
            }
            next = subscription.deliveries.recv_async(), if open && in_flight.len() < limit => {
                let Ok(delivery) = next else {
                    open = false;
                    continue;
                };
                let span = processing(tracer, queue, &delivery);
                let work: futures_lite::future::Boxed<Verdict> = match Envelope::decode(&delivery.body) {
                    Err(e) => {
                        let poison = Verdict::Poison(format!("{}: {e}", e.label()));
                        Box::pin(async move { poison })
                    }
                    Ok(event) => {
                        span.set(trace::ORDER_ID, event.order_id().to_string());
                        handle(event)
                    }
                };
                let work = work.with_context(span.context());
                in_flight.spawn(async move { (delivery, work.await, span) });
            }
        }
    }
    Ok(())
}

/// The span a delivery is handled in, under and linked to the span that published it.
fn processing(tracer: &Tracer, queue: QueueName, delivery: &Delivery) -> Span {
    let span = tracer.consuming(format!("process {queue}"), delivery.header(TRACEPARENT));
    span.set("messaging.system", "rabbitmq");
    span.set("messaging.destination.name", queue.suffix());
    span.set("messaging.rabbitmq.redelivered", delivery.redelivered);
    span
}

async fn settle(mq: &dyn MessageQueue, queue: QueueName, delivery: &Delivery, verdict: Verdict) -> Result<(), QueueError> {
    match verdict {
        Verdict::Done => mq.ack(delivery).await,
        Verdict::Poison(reason) => {
            tracing::info!(%queue, %reason, "dead-lettering a message");
            mq.dead_letter(delivery, &reason).await
        }
        Verdict::Retry(detail) => {
            tracing::warn!(%queue, %detail, "handling failed; returning the message to the queue");
            tokio::time::sleep(Duration::from_millis(100)).await;
            mq.nack(delivery, true).await
        }
    }
}

/// `commit`, timed in a `store commit` span under the message's `process` span. While the
/// store does not answer (its database restarting: [`StoreError::is_transient`]) the commit is
/// tried again in place, with backoff, for as long as it takes: the delivery stays in hand,
/// unacknowledged, and never goes back to the queue for it. Returned to the queue instead, a
/// good message would count towards the delivery limit and be dead-lettered after five quick
/// returns, though nothing was wrong with it. Any other error is the caller's (and under the
/// lab's `--break no-reconnect`, every error).
async fn committed<T, Fut>(tracer: &Tracer, policy: Policy, what: &str, commit: impl FnMut() -> Fut) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let span = tracer.start_here("store commit", Kind::Internal);
    let result = policy.until_ok(&mut policy.backoff(what), what, StoreError::is_transient, commit).await;
    if let Err(e) = &result {
        span.fail(e.to_string());
    }
    result
}

fn unexpected(event: &Event, queue: QueueName) -> Verdict {
    Verdict::Poison(format!("unexpected_event: {} does not belong on {queue}", event.kind()))
}

/// Inventory: reserve (idempotently) and publish the outcome, then ack.
pub async fn run_inventory(
    mq: Arc<dyn MessageQueue>,
    store: Arc<InventoryStore>,
    prefetch: u16,
    policy: Policy,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let (publisher, timer) = (mq.clone(), tracer.clone());
    consume(mq.as_ref(), QueueName::InventoryInbox, prefetch, policy, &tracer, move |event| {
        let (mq, store, tracer) = (publisher.clone(), store.clone(), timer.clone());
        Box::pin(async move {
            let Event::OrderPlaced(placed) = &event else { return unexpected(&event, QueueName::InventoryInbox) };
            let handled = match committed(&tracer, policy, "Inventory's store", || store.handle(placed)).await {
                Ok(handled) => handled,
                Err(e) => return Verdict::Retry(e.to_string()),
            };
            if !handled.first {
                tracing::info!(order_id = %placed.order.order_id, "repeat OrderPlaced: re-emitting the stored outcome");
            }
            match mq.publish(Route::of(&handled.event), Envelope::new(handled.event).encode().into()).await {
                Ok(()) => Verdict::Done,
                Err(e) => Verdict::Retry(format!("publishing the outcome: {e}")),
            }
        })
    })
    .await
}

/// Notification: one confirmation per reserved order, then ack.
pub async fn run_notification(
    mq: Arc<dyn MessageQueue>,
    store: Arc<NotificationStore>,
    prefetch: u16,
    policy: Policy,
    completions: Completions,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let timer = tracer.clone();
    consume(mq.as_ref(), QueueName::NotificationInbox, prefetch, policy, &tracer, move |event| {
        let (store, completions, tracer) = (store.clone(), completions.clone(), timer.clone());
        Box::pin(async move {
            let Event::InventoryReserved(reserved) = &event else { return unexpected(&event, QueueName::NotificationInbox) };
            match committed(&tracer, policy, "Notification's store", || store.send(&reserved.order_id, &reserved.student_id)).await {
                Ok(first) => {
                    if first {
                        completions.record(&reserved.order_id);
                    }
                    Verdict::Done
                }
                Err(e) => Verdict::Retry(e.to_string()),
            }
        })
    })
    .await
}

/// Order: record Inventory's verdict as the order's status, then ack.
pub async fn run_order_status(
    mq: Arc<dyn MessageQueue>,
    store: Arc<OrderStore>,
    prefetch: u16,
    policy: Policy,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let timer = tracer.clone();
    consume(mq.as_ref(), QueueName::OrderInbox, prefetch, policy, &tracer, move |event| {
        let (store, tracer) = (store.clone(), timer.clone());
        Box::pin(async move {
            let Some(status) = OrderStatus::of(&event) else { return unexpected(&event, QueueName::OrderInbox) };
            let result = committed(&tracer, policy, "Order's store", || store.record_outcome(event.order_id(), status)).await;
            match result {
                Ok(()) => Verdict::Done,
                Err(e) => Verdict::Retry(e.to_string()),
            }
        })
    })
    .await
}
