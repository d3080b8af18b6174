//! Trace context over Kafka (Part C): every order and every outcome is written in a `publish`
//! span, and its record's `traceparent` header names that span — Inventory's outcomes inside its
//! transaction, under the `process` span it decided the order in (which it names in the record's
//! header before writing). Watermarks (records with no value) and the changelog are not traced.
//! The consumers' side is Part C's consumer loops.

use std::sync::Arc;

use super::trace::{self, Kind, Span, Tracer};
use crate::transport::log::{ConsumerId, EventLog, LogError, LogLayer, Outgoing, Position, Topic};
use crate::transport::{BoxFuture, TRACEPARENT};

/// A log whose appended events are traced.
pub struct TracedLog {
    inner: Arc<dyn EventLog>,
    tracer: Tracer,
}

impl TracedLog {
    pub fn new(inner: Arc<dyn EventLog>, tracer: &Tracer) -> Self {
        TracedLog { inner, tracer: tracer.clone() }
    }

    /// The `publish` spans of the events among `records`, each record's `traceparent` set to
    /// its span.
    fn publishing(&self, records: Vec<Outgoing>) -> (Vec<Outgoing>, Vec<Span>) {
        let mut spans = Vec::new();
        let records = records
            .into_iter()
            .map(|record| {
                if !Topic::EVENTS.contains(&record.topic) || record.value.is_empty() {
                    return record;
                }
                let parent = trace::publishing_under(record.header(TRACEPARENT));
                let span = self.tracer.start(format!("publish {}", record.topic), Kind::Producer, &parent, Vec::new());
                span.set("messaging.system", "kafka");
                span.set("messaging.destination.name", record.topic.suffix());
                span.set(trace::ORDER_ID, record.key.clone());
                let record = match span.traceparent() {
                    Some(traceparent) => record.with_header(TRACEPARENT, traceparent),
                    None => record,
                };
                spans.push(span);
                record
            })
            .collect();
        (records, spans)
    }
}

/// Marks `spans` failed if `result` is an error (they end when dropped, after it).
fn settled<T>(spans: Vec<Span>, result: &Result<T, LogError>) {
    if let Err(e) = result {
        spans.iter().for_each(|span| span.fail(e.to_string()));
    }
}

impl LogLayer for TracedLog {
    fn inner(&self) -> &dyn EventLog {
        self.inner.as_ref()
    }

    fn append(&self, records: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<(u32, u64)>, LogError>> {
        let (records, spans) = self.publishing(records);
        Box::pin(async move {
            let appended = self.inner.append(records).await;
            settled(spans, &appended);
            appended
        })
    }

    fn transact(
        &self,
        writer: &str,
        consumer: ConsumerId,
        records: Vec<Outgoing>,
        positions: Vec<Position>,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        let (records, spans) = self.publishing(records);
        let writer = writer.to_owned();
        Box::pin(async move {
            let committed = self.inner.transact(&writer, consumer, records, positions).await;
            settled(spans, &committed);
            committed
        })
    }
}
