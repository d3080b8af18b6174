//! The services as message consumers (Part B). One loop, [`consume`], does what every consumer
//! must: decode, hand the event to the service, settle the delivery. The services only say
//! what they made of an event ([`Verdict`]).
//!
//! Settling order matters and is the same everywhere: the service commits its state change
//! (and publishes what follows from it, with a confirm) **before** the delivery is acked. A
//! crash anywhere before the ack means the message is delivered again, and the services'
//! stores make the repeat harmless (see `crate::store`).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Envelope, Event};
use crate::store::{InventoryStore, NotificationStore, OrderStore};
use crate::transport::queue::{MessageQueue, QueueError, QueueName};

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

/// Consumes `queue` until the subscription ends (the connection closed) or the broker fails.
pub async fn consume<F>(mq: &dyn MessageQueue, queue: QueueName, prefetch: u16, mut handle: F) -> Result<(), QueueError>
where
    F: FnMut(Event) -> futures_lite::future::Boxed<Verdict>,
{
    let subscription = mq.consume(queue, prefetch).await?;
    while let Ok(delivery) = subscription.deliveries.recv_async().await {
        let verdict = match Envelope::decode(&delivery.body) {
            Err(e) => Verdict::Poison(format!("{}: {e}", e.label())),
            Ok(event) => handle(event).await,
        };
        match verdict {
            Verdict::Done => mq.ack(&delivery).await?,
            Verdict::Poison(reason) => {
                tracing::info!(%queue, %reason, "dead-lettering a message");
                mq.dead_letter(&delivery, &reason).await?
            }
            Verdict::Retry(detail) => {
                tracing::warn!(%queue, %detail, "handling failed; returning the message to the queue");
                tokio::time::sleep(Duration::from_millis(100)).await;
                mq.nack(&delivery, true).await?
            }
        }
    }
    Ok(())
}

fn unexpected(event: &Event, queue: QueueName) -> Verdict {
    Verdict::Poison(format!("unexpected_event: {} does not belong on {queue}", event.kind()))
}

/// Inventory: reserve (idempotently) and publish the outcome, then ack.
pub async fn run_inventory(mq: Arc<dyn MessageQueue>, store: Arc<InventoryStore>, prefetch: u16) -> Result<(), QueueError> {
    let publisher = mq.clone();
    consume(mq.as_ref(), QueueName::InventoryInbox, prefetch, move |event| {
        let (mq, store) = (publisher.clone(), store.clone());
        Box::pin(async move {
            let Event::OrderPlaced(placed) = &event else { return unexpected(&event, QueueName::InventoryInbox) };
            let handled = match store.handle(placed) {
                Ok(handled) => handled,
                Err(e) => return Verdict::Retry(e.to_string()),
            };
            if !handled.first {
                tracing::info!(order_id = %placed.order.order_id, "repeat OrderPlaced: re-emitting the stored outcome");
            }
            match mq.publish(handled.route, Envelope::new(handled.event).encode().into()).await {
                Ok(()) => Verdict::Done,
                Err(e) => Verdict::Retry(format!("publishing the outcome: {e}")),
            }
        })
    })
    .await
}

/// Notification: one confirmation per reserved order, then ack.
pub async fn run_notification(mq: Arc<dyn MessageQueue>, store: Arc<NotificationStore>, prefetch: u16) -> Result<(), QueueError> {
    consume(mq.as_ref(), QueueName::NotificationInbox, prefetch, move |event| {
        let store = store.clone();
        Box::pin(async move {
            let Event::InventoryReserved(reserved) = &event else { return unexpected(&event, QueueName::NotificationInbox) };
            match store.send(&reserved.order_id, &reserved.student_id) {
                Ok(_) => Verdict::Done,
                Err(e) => Verdict::Retry(e.to_string()),
            }
        })
    })
    .await
}

/// Order: record Inventory's verdict as the order's status, then ack.
pub async fn run_order_status(mq: Arc<dyn MessageQueue>, store: Arc<OrderStore>, prefetch: u16) -> Result<(), QueueError> {
    consume(mq.as_ref(), QueueName::OrderInbox, prefetch, move |event| {
        let store = store.clone();
        Box::pin(async move {
            let result = match &event {
                Event::InventoryReserved(e) => store.record_outcome(&e.order_id, "reserved"),
                Event::InventoryFailed(e) => store.record_outcome(&e.order_id, "failed"),
                Event::OrderPlaced(_) => return unexpected(&event, QueueName::OrderInbox),
            };
            match result {
                Ok(()) => Verdict::Done,
                Err(e) => Verdict::Retry(e.to_string()),
            }
        })
    })
    .await
}
