//! [`MessageQueue`] over a real RabbitMQ with lapin: durable exchanges, quorum queues with a
//! dead-letter exchange and a delivery limit, persistent messages, publisher confirms, manual
//! acknowledgements, a prefetch per consumer (one channel each).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm};

use super::queue::{Delivery, MessageQueue, QueueError, QueueName, Route, Subscription, Topology, DELIVERY_LIMIT};
use super::BoxFuture;

/// `AMQP_URL` when it is not set.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const REASON_HEADER: &str = "x-campus-reason";

fn broker(e: lapin::Error) -> QueueError {
    QueueError::Broker(e.to_string())
}

pub struct AmqpQueue {
    connection: Connection,
    topology: Topology,
    /// Publishes (in confirm mode) and inspects queues.
    publisher: Channel,
    /// Each subscription's channel, by subscription id: acks go back on the channel that
    /// delivered.
    consumers: Mutex<HashMap<u64, Channel>>,
    next_id: AtomicU64,
}

impl AmqpQueue {
    /// Connects and declares the topology (idempotent: declaring what exists is a no-op).
    pub async fn connect(url: &str, topology: Topology) -> Result<Self, QueueError> {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|e| QueueError::Unreachable(format!("{url}: {e}")))?;
        let publisher = connection.create_channel().await.map_err(broker)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(broker)?;
        let queue = AmqpQueue { connection, topology, publisher, consumers: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1) };
        queue.declare().await?;
        Ok(queue)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn declare(&self) -> Result<(), QueueError> {
        let ch = &self.publisher;
        let t = &self.topology;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        ch.exchange_declare(t.exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await.map_err(broker)?;
        ch.exchange_declare(t.dead_letter_exchange().into(), ExchangeKind::Fanout, durable, FieldTable::default())
            .await
            .map_err(broker)?;
        for queue in QueueName::ALL {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
            if queue != QueueName::DeadLetter {
                args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from(t.dead_letter_exchange())));
                args.insert("x-delivery-limit".into(), AMQPValue::LongInt(DELIVERY_LIMIT as i32));
            }
            ch.queue_declare(t.queue(queue).into(), QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }, args)
                .await
                .map_err(broker)?;
        }
        ch.queue_bind(
            t.queue(QueueName::DeadLetter).into(),
            t.dead_letter_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
        for route in Route::ALL {
            for queue in route.queues() {
                ch.queue_bind(t.queue(*queue).into(), t.exchange().into(), route.as_str().into(), QueueBindOptions::default(), FieldTable::default())
                    .await
                    .map_err(broker)?;
            }
        }
        Ok(())
    }

    /// Deletes this namespace's queues and exchanges (end of a test or experiment).
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        for queue in QueueName::ALL {
            self.publisher.queue_delete(self.topology.queue(queue).into(), QueueDeleteOptions::default()).await.map_err(broker)?;
        }
        for exchange in [self.topology.exchange(), self.topology.dead_letter_exchange()] {
            self.publisher.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.map_err(broker)?;
        }
        Ok(())
    }

    /// Closes the connection: unacknowledged deliveries go back to their queues.
    pub async fn close(&self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }

    async fn publish_to(&self, exchange: String, key: &str, body: &[u8], headers: FieldTable) -> Result<(), QueueError> {
        let confirm = self.send(exchange, key, body, headers).await?;
        confirmed(key, confirm).await
    }

    /// Hands one persistent message to the broker; the returned future resolves with its
    /// confirm (see [`confirmed`]).
    async fn send(&self, exchange: String, key: &str, body: &[u8], headers: FieldTable) -> Result<PublisherConfirm, QueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        self.publisher
            .basic_publish(exchange.into(), key.into(), BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() }, body, properties)
            .await
            .map_err(broker)
    }

    fn channel_of(&self, delivery: &Delivery) -> Result<Channel, QueueError> {
        self.consumers.lock().expect("consumers lock").get(&delivery.consumer).cloned().ok_or_else(|| {
            QueueError::Broker(format!("subscription {} is gone; the broker will deliver the message again", delivery.consumer))
        })
    }

    async fn subscribe(&self, queue: QueueName, prefetch: u16) -> Result<Subscription, QueueError> {
        let channel = self.connection.create_channel().await.map_err(broker)?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(broker)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut consumer = channel
            .basic_consume(
                self.topology.queue(queue).into(),
                format!("campus-{id}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.consumers.lock().expect("consumers lock").insert(id, channel.clone());
        let (tx, rx) = flume::unbounded();
        let (cancel, mut cancelled) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut cancelled => break,
                    next = consumer.next() => match next {
                        Some(Ok(d)) => {
                            let delivery = Delivery {
                                queue,
                                consumer: id,
                                tag: d.delivery_tag,
                                reason: reason_of(&d.properties),
                                body: Bytes::from(d.data),
                                redelivered: d.redelivered,
                            };
                            if tx.send(delivery).is_err() {
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "consumer stream failed");
                            break;
                        }
                        None => break,
                    },
                }
            }
            // Closing the channel returns its unacknowledged deliveries to the queue.
            let _ = channel.close(200, "consumer cancelled".into()).await;
        });
        Ok(Subscription::new(id, rx, cancel))
    }
}

/// Waits for the broker's confirm of a message published with routing key `key`: a nack, or
/// a message returned as unroutable (`mandatory`), is an error.
async fn confirmed(key: &str, confirm: PublisherConfirm) -> Result<(), QueueError> {
    let confirm = confirm.await.map_err(broker)?;
    if confirm.is_nack() {
        return Err(QueueError::NotConfirmed);
    }
    if confirm.take_message().is_some() {
        return Err(QueueError::Broker(format!("message on {key:?} was unroutable (no queue bound)")));
    }
    Ok(())
}

fn reason_of(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let text = |key: &str| match headers.inner().get(&ShortString::from(key)) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    };
    text(REASON_HEADER).or_else(|| text("x-first-death-reason"))
}

impl MessageQueue for AmqpQueue {
    fn publish_all(&self, messages: Vec<(Route, Bytes)>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            // Every message goes out first, then the confirms are awaited: one round trip for
            // the lot instead of one per message.
            let mut confirms = Vec::with_capacity(messages.len());
            for (route, body) in &messages {
                confirms.push((route, self.send(self.topology.exchange(), route.as_str(), body, FieldTable::default()).await?));
            }
            for (route, confirm) in confirms {
                confirmed(route.as_str(), confirm).await?;
            }
            Ok(())
        })
    }

    fn publish(&self, route: Route, body: Bytes) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.publish_to(self.topology.exchange(), route.as_str(), &body, FieldTable::default()).await })
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        Box::pin(self.subscribe(queue, prefetch))
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let (channel, tag) = (self.channel_of(delivery), delivery.tag);
        Box::pin(async move { channel?.basic_ack(tag, BasicAckOptions::default()).await.map_err(broker) })
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let (channel, tag) = (self.channel_of(delivery), delivery.tag);
        Box::pin(async move {
            channel?.basic_nack(tag, BasicNackOptions { requeue, ..BasicNackOptions::default() }).await.map_err(broker)
        })
    }

    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        let reason = reason.to_owned();
        Box::pin(async move {
            let mut headers = FieldTable::default();
            headers.insert(REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason.as_str())));
            headers.insert("x-campus-queue".into(), AMQPValue::LongString(LongString::from(delivery.queue.suffix())));
            self.publish_to(self.topology.dead_letter_exchange(), "", &delivery.body, headers).await?;
            self.ack(&delivery).await
        })
    }

    fn depth(&self, queue: QueueName) -> BoxFuture<'_, Result<u64, QueueError>> {
        Box::pin(async move {
            let q = self
                .publisher
                .queue_declare(
                    self.topology.queue(queue).into(),
                    QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .map_err(broker)?;
            Ok(u64::from(q.message_count()))
        })
    }
}
