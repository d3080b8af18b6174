//! Trace context over AMQP (Part B): every message is published in a `publish` span, and its
//! `traceparent` header names that span. A message that carries a `traceparent` already (the
//! relay's, from the outbox: the request that placed the order) is published under it; any
//! other under the current span. The consumer's side is Part B's consumer loop.

use std::sync::Arc;

use super::trace::{self, Kind, Span, Tracer};
use crate::domain::Envelope;
use crate::transport::queue::{Message, MessageQueue, QueueError, QueueLayer};
use crate::transport::{BoxFuture, TRACEPARENT};

/// A queue whose publishes are traced.
pub struct TracedQueue {
    inner: Arc<dyn MessageQueue>,
    tracer: Tracer,
}

impl TracedQueue {
    pub fn new(inner: Arc<dyn MessageQueue>, tracer: &Tracer) -> Self {
        TracedQueue { inner, tracer: tracer.clone() }
    }

    /// `message`'s `publish` span, its `traceparent` set to it.
    fn publishing(&self, message: Message) -> (Message, Span) {
        let parent = trace::publishing_under(message.header(TRACEPARENT));
        let span = self.tracer.start(format!("publish {}", message.route.as_str()), Kind::Producer, &parent, Vec::new());
        span.set("messaging.system", "rabbitmq");
        span.set("messaging.rabbitmq.destination.routing_key", message.route.as_str());
        if let Ok(event) = Envelope::decode(&message.body) {
            span.set(trace::ORDER_ID, event.order_id().to_string());
        }
        let message = match span.traceparent() {
            Some(traceparent) => message.with_header(TRACEPARENT, traceparent),
            None => message,
        };
        (message, span)
    }
}

impl QueueLayer for TracedQueue {
    fn inner(&self) -> &dyn MessageQueue {
        self.inner.as_ref()
    }

    fn publish_all(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        let (messages, spans): (Vec<Message>, Vec<Span>) = messages.into_iter().map(|m| self.publishing(m)).unzip();
        Box::pin(async move {
            let published = self.inner.publish_all(messages).await;
            if let Err(e) = &published {
                spans.iter().for_each(|span| span.fail(e.to_string()));
            }
            drop(spans);
            published
        })
    }
}
