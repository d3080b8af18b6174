//! A Part B service's queue, counted: what its consumers settle and how often they subscribe
//! again. The door wraps every service's queue in it, so the counts are the same in a process
//! and in the lab's simulated world, and no consumer loop carries a counter.

use std::sync::Arc;

use super::metrics::{Counters, Reconnects, ServiceMetrics};
use crate::transport::queue::{Delivery, Message, MessageQueue, QueueError, QueueLayer, QueueName, Route, Subscription};
use crate::transport::BoxFuture;

/// `inner`, counting into a service's metrics:
/// - `campus_messages_published_total{route}`: messages the broker confirmed;
/// - `campus_redeliveries_total{queue}`: deliveries settled that the broker marked redelivered
///   (their consumer died or returned them before);
/// - `campus_dead_letters_total{queue}`: messages this service sent to the dead-letter queue;
/// - `campus_reconnects_total{loop}`: subscriptions of a consumer after its first (each one a
///   consumer coming back after its broker, or its channel, went away).
pub struct CountedQueue {
    inner: Arc<dyn MessageQueue>,
    published: Counters,
    redeliveries: Counters,
    dead_letters: Counters,
    reconnects: Reconnects,
}

impl CountedQueue {
    pub fn new(inner: Arc<dyn MessageQueue>, metrics: &ServiceMetrics) -> Self {
        CountedQueue {
            inner,
            published: metrics.counters("campus_messages_published", "Messages published and confirmed by the broker, per route"),
            redeliveries: metrics.counters("campus_redeliveries", "Deliveries settled that the broker had delivered before, per queue"),
            dead_letters: metrics.counters("campus_dead_letters", "Messages sent to the dead-letter queue by this service, per queue"),
            reconnects: Reconnects::new(metrics),
        }
    }
}

/// What a settled delivery counts for, read before the settling call takes the delivery away.
struct Settled {
    queue: QueueName,
    redelivered: bool,
}

impl Settled {
    fn of(delivery: &Delivery) -> Self {
        Settled { queue: delivery.queue, redelivered: delivery.redelivered }
    }

    fn count(self, counted: &CountedQueue, dead_lettered: bool) {
        // Most deliveries count for nothing here: no label built for them.
        if !self.redelivered && !dead_lettered {
            return;
        }
        let labels = vec![("queue", self.queue.suffix().to_owned())];
        if self.redelivered {
            counted.redeliveries.get_or_create(&labels).inc();
        }
        if dead_lettered {
            counted.dead_letters.get_or_create(&labels).inc();
        }
    }
}

impl QueueLayer for CountedQueue {
    fn inner(&self) -> &dyn MessageQueue {
        self.inner.as_ref()
    }

    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let routes: Vec<Route> = messages.iter().map(|m| m.route).collect();
            self.inner.publish_all(messages).await?;
            for route in routes {
                self.published.get_or_create(&vec![("route", route.as_str().to_owned())]).inc();
            }
            Ok(())
        })
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        Box::pin(async move {
            let subscription = self.inner.consume(queue, prefetch).await?;
            self.reconnects.took_up(format!("consumer:{}", queue.suffix()));
            Ok(subscription)
        })
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let (acked, settled) = (self.inner.ack(delivery), Settled::of(delivery));
        Box::pin(async move {
            acked.await?;
            settled.count(self, false);
            Ok(())
        })
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let (nacked, settled) = (self.inner.nack(delivery, requeue), Settled::of(delivery));
        Box::pin(async move {
            nacked.await?;
            settled.count(self, false);
            Ok(())
        })
    }

    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        let (sent, settled) = (self.inner.dead_letter(delivery, reason), Settled::of(delivery));
        Box::pin(async move {
            sent.await?;
            settled.count(self, true);
            Ok(())
        })
    }
}
