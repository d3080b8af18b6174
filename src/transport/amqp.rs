//! [`MessageQueue`] over a real RabbitMQ with lapin: durable exchanges, quorum queues with a
//! dead-letter exchange and a delivery limit, persistent messages, publisher confirms, manual
//! acknowledgements, a prefetch per consumer (one channel each).
//!
//! **Reconnecting.** The connection is opened lazily and again whenever it is found closed (a
//! broker restart closes it with CONNECTION_FORCED): the first call after that reconnects and
//! declares the topology again; while the broker stays away calls fail at once with
//! [`QueueError::Unreachable`], and a new attempt is made at most once per backoff step
//! (capped exponential, with jitter). The loss and the return are each logged once. lapin's
//! own `enable_auto_recover` is not used: an upstream report (amqp-rs/lapin#450) says its
//! recovery does not complete after a broker restart, and its maintainers advise rebuilding
//! connection, channels and consumers in the application — which this adapter and the
//! services' consumer loops do.
//!
//! **Several nodes.** `AMQP_URL` may list the nodes of a cluster, comma-separated. The adapter
//! connects to the first that answers, starting from the one it last used; when that node dies
//! the next reconnect moves to another. Quorum queues keep every message on a majority of the
//! nodes, so the node a client talks to can be lost without losing what it published (its
//! confirms came only once a majority held the message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm};
use tokio::time::Instant;

use super::queue::{Delivery, Message, MessageQueue, QueueError, QueueName, Route, Subscription, Topology, DELIVERY_LIMIT};
use super::{BoxFuture, Headers};
use crate::retry::Backoff;

/// `AMQP_URL` when it is not set.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const REASON_HEADER: &str = "x-campus-reason";

/// The URLs of a comma-separated list (one URL is a list of one).
fn split_urls(urls: &str) -> Vec<String> {
    let list: Vec<String> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
    if list.is_empty() {
        vec![urls.to_owned()]
    } else {
        list
    }
}

fn broker(e: lapin::Error) -> QueueError {
    QueueError::Broker(e.to_string())
}

/// An AMQP URL — or a cluster's comma-separated list of them — with every password replaced
/// by `***`, for messages and logs.
pub fn redacted(urls: &str) -> String {
    split_urls(urls)
        .into_iter()
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
            match rest.split_once('@') {
                Some((credentials, host)) if credentials.contains(':') => {
                    let user = credentials.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{host}")
                }
                _ => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One open connection, and the channel that publishes (in confirm mode) and inspects queues.
struct Session {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl Session {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }

    /// A new publishing channel on the same connection (in confirm mode).
    async fn publisher_on(connection: Arc<Connection>) -> Result<Session, QueueError> {
        let publisher = connection.create_channel().await.map_err(broker)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(broker)?;
        Ok(Session { connection, publisher })
    }
}

/// The connection as it stands, and when to try again while it is down.
struct Link {
    session: Option<Arc<Session>>,
    backoff: Backoff,
    next_attempt: Option<Instant>,
    /// Since when the broker has been away (logged once when lost, once when back).
    lost_since: Option<Instant>,
}

pub struct AmqpQueue {
    /// The nodes to connect to, in the order they are tried.
    urls: Vec<String>,
    /// The node of `urls` the last connection went to (the first one tried next time).
    preferred: std::sync::atomic::AtomicUsize,
    topology: Topology,
    link: tokio::sync::Mutex<Link>,
    connected: AtomicBool,
    /// Each subscription's channel, by subscription id: acks go back on the channel that
    /// delivered.
    consumers: Arc<Mutex<HashMap<u64, Channel>>>,
    next_id: AtomicU64,
}

impl AmqpQueue {
    /// An adapter that connects when first used, and again whenever the connection is lost:
    /// a service started while the broker is down starts anyway.
    /// `urls`: one AMQP URL, or several (the nodes of a cluster) separated by commas.
    pub fn new(urls: &str, topology: Topology, backoff: Backoff) -> Self {
        AmqpQueue {
            urls: split_urls(urls),
            preferred: std::sync::atomic::AtomicUsize::new(0),
            topology,
            link: tokio::sync::Mutex::new(Link { session: None, backoff, next_attempt: None, lost_since: None }),
            connected: AtomicBool::new(false),
            consumers: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
        }
    }

    /// Connects now and declares the topology (idempotent: declaring what exists is a no-op);
    /// fails if the broker cannot be reached. Later losses are recovered as with [`Self::new`].
    pub async fn connect(url: &str, topology: Topology) -> Result<Self, QueueError> {
        let queue = Self::new(url, topology, Backoff::random());
        queue.session().await?;
        Ok(queue)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The nodes, redacted, for messages and logs.
    fn nodes(&self) -> String {
        self.urls.iter().map(|u| redacted(u)).collect::<Vec<_>>().join(",")
    }

    /// Connects to the first node that answers, starting from the one used last.
    async fn open(&self) -> Result<Session, QueueError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut refused = Vec::new();
        for k in 0..self.urls.len() {
            let i = (first + k) % self.urls.len();
            match Connection::connect(&self.urls[i], ConnectionProperties::default()).await {
                Ok(connection) => {
                    if i != first {
                        tracing::warn!(from = %redacted(&self.urls[first]), to = %redacted(&self.urls[i]), "failing over to another RabbitMQ node");
                    }
                    self.preferred.store(i, Ordering::Relaxed);
                    return self.session_on(connection).await;
                }
                Err(e) => refused.push(format!("{}: {e}", redacted(&self.urls[i]))),
            }
        }
        Err(QueueError::Unreachable(refused.join("; ")))
    }

    async fn session_on(&self, connection: Connection) -> Result<Session, QueueError> {
        let session = Session::publisher_on(Arc::new(connection)).await?;
        declare(&session.publisher, &self.topology).await?;
        Ok(session)
    }

    /// The open session, reconnecting first if it was lost (at most once per backoff step).
    async fn session(&self) -> Result<Arc<Session>, QueueError> {
        let mut link = self.link.lock().await;
        if let Some(session) = &link.session {
            if session.is_open() {
                return Ok(session.clone());
            }
            // Only the publishing channel was closed (after a nack, see `confirmed`): a fresh
            // one on the same connection.
            if session.connection.status().connected() {
                if let Ok(fresh) = Session::publisher_on(session.connection.clone()).await {
                    let fresh = Arc::new(fresh);
                    link.session = Some(fresh.clone());
                    return Ok(fresh);
                }
            }
            link.session = None;
            if link.lost_since.is_none() {
                link.lost_since = Some(Instant::now());
                tracing::warn!(url = %self.nodes(), "the connection to RabbitMQ closed; reconnecting with backoff");
            }
        }
        let now = Instant::now();
        if let Some(at) = link.next_attempt.filter(|at| now < *at) {
            self.connected.store(false, Ordering::Relaxed);
            return Err(QueueError::Unreachable(format!(
                "RabbitMQ at {} is away; next attempt in {} ms",
                self.nodes(),
                at.duration_since(now).as_millis()
            )));
        }
        match self.open().await {
            Ok(session) => {
                if let Some(since) = link.lost_since.take() {
                    let node = redacted(&self.urls[self.preferred.load(Ordering::Relaxed)]);
                    tracing::warn!(url = %node, after_s = since.elapsed().as_secs_f64(), attempts = link.backoff.attempts() + 1, "reconnected to RabbitMQ");
                }
                link.backoff.reset();
                link.next_attempt = None;
                let session = Arc::new(session);
                link.session = Some(session.clone());
                self.connected.store(true, Ordering::Relaxed);
                Ok(session)
            }
            Err(e) => {
                if link.lost_since.is_none() {
                    link.lost_since = Some(now);
                    tracing::warn!(url = %self.nodes(), error = %e, "RabbitMQ unreachable; reconnecting with backoff");
                }
                link.next_attempt = Some(now + link.backoff.next_delay());
                self.connected.store(false, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// An error from a call on `session`: if the connection died under it, the broker is away
    /// (the next call reconnects).
    fn failed(&self, session: &Session, e: lapin::Error) -> QueueError {
        if session.is_open() {
            broker(e)
        } else {
            self.connected.store(false, Ordering::Relaxed);
            QueueError::Unreachable(format!("the connection to RabbitMQ closed: {e}"))
        }
    }

    /// Deletes this namespace's queues and exchanges (end of a test or experiment).
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        let session = self.session().await?;
        for queue in QueueName::ALL {
            session.publisher.queue_delete(self.topology.queue(queue).into(), QueueDeleteOptions::default()).await.map_err(broker)?;
        }
        for exchange in [self.topology.exchange(), self.topology.dead_letter_exchange()] {
            session.publisher.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.map_err(broker)?;
        }
        Ok(())
    }

    /// Closes the connection: unacknowledged deliveries go back to their queues.
    pub async fn close(&self) {
        if let Some(session) = self.link.lock().await.session.take() {
            let _ = session.connection.close(200, "bye".into()).await;
        }
    }

    async fn publish_to(&self, exchange: String, key: &str, body: &[u8], headers: FieldTable) -> Result<(), QueueError> {
        let session = self.session().await?;
        let confirm = self.send(&session, exchange, key, body, headers).await?;
        self.confirmed(&session, key, confirm).await
    }

    /// Hands one persistent message to the broker; the returned future resolves with its
    /// confirm (see [`Self::confirmed`]).
    async fn send(
        &self,
        session: &Session,
        exchange: String,
        key: &str,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<PublisherConfirm, QueueError> {
        let properties =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()).with_headers(headers);
        session
            .publisher
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                body,
                properties,
            )
            .await
            .map_err(|e| self.failed(session, e))
    }

    /// Waits for the broker's confirm of a message published with routing key `key`: a nack,
    /// or a message returned as unroutable (`mandatory`), is an error; so is a confirm lost
    /// with the connection (the message may or may not have been stored).
    async fn confirmed(&self, session: &Session, key: &str, confirm: PublisherConfirm) -> Result<(), QueueError> {
        let confirm = confirm.await.map_err(|e| self.failed(session, e))?;
        if confirm.is_nack() {
            // Seen on the lab's cluster after a node loss: a channel that was nacked went on
            // nacking every publish until the lost node was back. The next publish goes out on
            // a fresh channel (what the channel has unconfirmed is nacked with it, and retried
            // by the caller).
            if session.publisher.status().connected() {
                let _ = session.publisher.close(200, "nacked: publishing on a fresh channel".into()).await;
            }
            return Err(QueueError::NotConfirmed);
        }
        if confirm.take_message().is_some() {
            return Err(QueueError::Broker(format!("message on {key:?} was unroutable (no queue bound)")));
        }
        Ok(())
    }

    fn channel_of(&self, delivery: &Delivery) -> Result<Channel, QueueError> {
        self.consumers.lock().expect("consumers lock").get(&delivery.consumer).cloned().ok_or_else(|| {
            QueueError::Unreachable(format!("subscription {} is gone; the broker will deliver the message again", delivery.consumer))
        })
    }

    async fn subscribe(&self, queue: QueueName, prefetch: u16) -> Result<Subscription, QueueError> {
        let session = self.session().await?;
        let channel = session.connection.create_channel().await.map_err(|e| self.failed(&session, e))?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| self.failed(&session, e))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut consumer = channel
            .basic_consume(
                self.topology.queue(queue).into(),
                format!("campus-{id}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.failed(&session, e))?;
        self.consumers.lock().expect("consumers lock").insert(id, channel.clone());
        let consumers = self.consumers.clone();
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
                                headers: headers_of(&d.properties),
                                body: Bytes::from(d.data),
                                redelivered: d.redelivered,
                            };
                            if tx.send(delivery).is_err() {
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "the consumer stream ended with an error (the connection closed?)");
                            break;
                        }
                        None => break,
                    },
                }
            }
            // Closing the channel returns its unacknowledged deliveries to the queue (a closed
            // connection has returned them already); acks of them fail from now on.
            consumers.lock().expect("consumers lock").remove(&id);
            let _ = channel.close(200, "consumer cancelled".into()).await;
        });
        Ok(Subscription::new(id, rx, cancel))
    }
}

/// An ack or nack on a channel that closed: its deliveries went back to the queue already.
fn lost_channel(e: lapin::Error) -> QueueError {
    QueueError::Unreachable(format!("the delivering channel closed: {e}"))
}

/// Declares the namespace's exchanges, queues and bindings on `ch` (again after a reconnect:
/// declaring what exists is a no-op).
async fn declare(ch: &Channel, t: &Topology) -> Result<(), QueueError> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    ch.exchange_declare(t.exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await.map_err(broker)?;
    ch.exchange_declare(t.dead_letter_exchange().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await.map_err(broker)?;
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
            ch.queue_bind(
                t.queue(*queue).into(),
                t.exchange().into(),
                route.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        }
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

/// A message's headers as AMQP's (long strings).
fn field_table(headers: &Headers) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(name.as_str().into(), AMQPValue::LongString(LongString::from(value.as_str())));
    }
    table
}

/// A delivery's text headers (what [`field_table`] wrote, and the broker's own).
fn headers_of(properties: &BasicProperties) -> Headers {
    let Some(table) = properties.headers().as_ref() else { return Vec::new() };
    table
        .inner()
        .iter()
        .filter_map(|(name, value)| match value {
            AMQPValue::LongString(s) => Some((name.to_string(), s.to_string())),
            AMQPValue::ShortString(s) => Some((name.to_string(), s.to_string())),
            _ => None,
        })
        .collect()
}

impl MessageQueue for AmqpQueue {
    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            // Every message goes out first, then the confirms are awaited: one round trip for
            // the lot instead of one per message.
            let session = self.session().await?;
            let mut confirms = Vec::with_capacity(messages.len());
            for message in &messages {
                let (route, headers) = (message.route.as_str(), field_table(&message.headers));
                confirms.push((route, self.send(&session, self.topology.exchange(), route, &message.body, headers).await?));
            }
            for (route, confirm) in confirms {
                self.confirmed(&session, route, confirm).await?;
            }
            Ok(())
        })
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        Box::pin(self.subscribe(queue, prefetch))
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let (channel, tag) = (self.channel_of(delivery), delivery.tag);
        Box::pin(async move { channel?.basic_ack(tag, BasicAckOptions::default()).await.map_err(lost_channel) })
    }

    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        // Each subscription has a channel of its own, so `multiple` covers its deliveries only.
        let (channel, tag) = (self.channel_of(delivery), delivery.tag);
        Box::pin(async move { channel?.basic_ack(tag, BasicAckOptions { multiple: true }).await.map_err(lost_channel) })
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let (channel, tag) = (self.channel_of(delivery), delivery.tag);
        Box::pin(async move {
            channel?.basic_nack(tag, BasicNackOptions { requeue, ..BasicNackOptions::default() }).await.map_err(lost_channel)
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
            let session = self.session().await?;
            let q = session
                .publisher
                .queue_declare(
                    self.topology.queue(queue).into(),
                    QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.failed(&session, e))?;
            Ok(u64::from(q.message_count()))
        })
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, split_urls};

    #[test]
    fn amqp_url_may_list_the_nodes_of_a_cluster() {
        assert_eq!(split_urls("amqp://a:5681/%2f, amqp://b:5682/%2f,"), ["amqp://a:5681/%2f", "amqp://b:5682/%2f"]);
        assert_eq!(split_urls("amqp://a:5672/%2f"), ["amqp://a:5672/%2f"]);
    }

    #[test]
    fn a_password_in_an_amqp_url_is_never_printed() {
        assert_eq!(redacted("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redacted("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redacted("amqp://a:x@h:1/%2f,amqp://b:y@h:2/%2f"), "amqp://a:***@h:1/%2f,amqp://b:***@h:2/%2f");
    }
}
