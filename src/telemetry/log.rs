//! A Part C service's log, counted, and how far behind its consumer groups read.
//!
//! **Lag in records**: per group and topic, the sum over partitions of the log's end minus the
//! group's committed offset — what Kafka's own `kafka-consumer-groups --describe` shows.
//!
//! **Lag in seconds**: how long ago the oldest record the group has not yet committed was
//! appended, at least. The log says where each partition ends, not when a record came; so, as
//! Lightbend's kafka-lag-exporter does, each scrape notes where every partition ended and when,
//! and a group whose committed offset is `c` is behind by at least the time since the first
//! scrape that saw the end beyond `c`. The resolution is the scrape interval: a group that
//! fell behind between two scrapes shows the lag from the second. A group caught up shows 0;
//! a group behind since before the service's first scrape shows the time since that scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::metrics::{Reconnects, Sample, ServiceMetrics};
use crate::transport::log::{ConsumerId, EventLog, LogError, LogLayer, Topic};
use crate::transport::BoxFuture;

/// `inner`, counting `campus_reconnects_total{loop}`: joins of a consumer group after its
/// first (a consumer that starts its session over after a broker loss or a stall).
pub struct CountedLog {
    inner: Arc<dyn EventLog>,
    reconnects: Reconnects,
}

impl CountedLog {
    pub fn new(inner: Arc<dyn EventLog>, metrics: &ServiceMetrics) -> Self {
        CountedLog { inner, reconnects: Reconnects::new(metrics) }
    }
}

impl LogLayer for CountedLog {
    fn inner(&self) -> &dyn EventLog {
        self.inner.as_ref()
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let name = format!("group:{group}");
        let joined = self.inner.join(group, topics);
        Box::pin(async move {
            let member = joined.await?;
            self.reconnects.took_up(name);
            Ok(member)
        })
    }
}

/// How long a scrape waits for the log's offsets before it reports no lag samples (a broker
/// away must not hang `/metrics`).
pub const LAG_WITHIN: Duration = Duration::from_secs(2);

/// Where each partition's end was seen, and when: (topic, partition) → (end, seen at), oldest
/// first, one entry per end that moved.
type Ends = BTreeMap<(Topic, u32), Vec<(u64, tokio::time::Instant)>>;

/// Reports `campus_consumer_lag_records` and `campus_consumer_lag_seconds` of `group` on
/// `topics` at every scrape of `metrics`.
pub fn report_lag(metrics: &ServiceMetrics, log: Arc<dyn EventLog>, group: &'static str, topics: &'static [Topic]) {
    let seen: Arc<Mutex<Ends>> = Arc::default();
    metrics.source(move || {
        let (log, seen) = (log.clone(), seen.clone());
        Box::pin(async move {
            match tokio::time::timeout(LAG_WITHIN, lag(log.as_ref(), group, topics, &seen)).await {
                Ok(Ok(samples)) => samples,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, group, "consumer lag not read");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            }
        })
    });
}

async fn lag(log: &dyn EventLog, group: &'static str, topics: &[Topic], seen: &Mutex<Ends>) -> Result<Vec<Sample>, LogError> {
    let mut samples = Vec::new();
    let now = tokio::time::Instant::now();
    for &topic in topics {
        let ends = log.end_offsets(topic).await?;
        let committed = log.committed(group, topic).await?;
        let (mut records, mut behind) = (0u64, Duration::ZERO);
        let mut seen = seen.lock().expect("lag lock");
        for (partition, (&end, &at)) in ends.iter().zip(committed.iter().chain(std::iter::repeat(&0))).enumerate() {
            let history = seen.entry((topic, partition as u32)).or_default();
            if history.last().is_none_or(|&(last, _)| last != end) {
                history.push((end, now));
            }
            records += end.saturating_sub(at);
            if end > at {
                // The first time the end was seen beyond `at`: the record at `at` was there.
                let since = history.iter().find(|&&(e, _)| e > at).map_or(now, |&(_, t)| t);
                behind = behind.max(now.saturating_duration_since(since));
            }
            // What every reader has passed is forgotten.
            history.retain(|&(e, _)| e > at || e == end);
        }
        let labels = |s: Sample| s.with("group", group).with("topic", topic.to_string());
        samples.push(labels(Sample::gauge(
            "campus_consumer_lag_records",
            "Records the group has not committed yet: the log's end minus the committed offset, summed over partitions",
            records as f64,
        )));
        samples.push(labels(Sample::gauge(
            "campus_consumer_lag_seconds",
            "At least how long ago the oldest record the group has not committed was appended (to the scrape interval)",
            behind.as_secs_f64(),
        )));
    }
    Ok(samples)
}
