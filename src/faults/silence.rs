//! A consumer whose fetches go silent (Part C), as data: [`SilencedLog`] wraps any
//! [`EventLog`] and is the one place the fault is applied. [`SilencedLog::silence`] silences
//! every member a group has now: their polls answer nothing, after waiting as a poll does,
//! while their partitions keep their records; they stay members of the group (a real fetcher
//! that did not come back after a broker loss keeps heartbeating) until they leave. A member
//! that joins afterwards reads normally.
//!
//! That is what librdkafka did once in the cluster's node loss (see
//! `streaming_kafka::stall`), and what each consumer loop's stall watch must find and mend by
//! replacing the consumer. The simulation's `explore` applies it as its `stall` fault; the
//! broker tests apply it to a real Kafka consumer (`tests/event_log_semantics.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::transport::log::{ConsumerId, EventLog, LogError, LogLayer, Record, Topic};
use crate::transport::BoxFuture;

#[derive(Default)]
struct Members {
    /// Each member's group, from its join until it leaves.
    groups: BTreeMap<ConsumerId, String>,
    silent: BTreeSet<ConsumerId>,
    /// Members each group has had (joins).
    joins: BTreeMap<String, usize>,
    /// Polls answered with silence.
    silent_polls: u64,
}

/// An [`EventLog`] whose consumers can be silenced (see the module's documentation).
pub struct SilencedLog {
    inner: Arc<dyn EventLog>,
    members: Mutex<Members>,
}

impl SilencedLog {
    pub fn new(inner: Arc<dyn EventLog>) -> Self {
        SilencedLog { inner, members: Mutex::new(Members::default()) }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().expect("members lock")
    }

    /// Every member `group` has now goes silent; returns them.
    pub fn silence(&self, group: &str) -> Vec<ConsumerId> {
        let mut m = self.members();
        let members: Vec<ConsumerId> = m.groups.iter().filter(|(_, g)| *g == group).map(|(id, _)| *id).collect();
        m.silent.extend(&members);
        members
    }

    /// How many polls were answered with silence: once one was, the silence holds.
    pub fn silent_polls(&self) -> u64 {
        self.members().silent_polls
    }

    /// How many members have joined `group` through this log.
    pub fn joins(&self, group: &str) -> usize {
        self.members().joins.get(group).copied().unwrap_or(0)
    }
}

impl LogLayer for SilencedLog {
    fn inner(&self) -> &dyn EventLog {
        self.inner.as_ref()
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let group = group.to_owned();
        let topics = topics.to_vec();
        Box::pin(async move {
            let id = self.inner.join(&group, &topics).await?;
            let mut m = self.members();
            *m.joins.entry(group.clone()).or_default() += 1;
            m.groups.insert(id, group);
            Ok(id)
        })
    }

    fn poll(&self, consumer: ConsumerId, max: usize, wait: Duration) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        // A poll already in flight when its member is silenced completes as it would have (what
        // it took is the member's, and it may commit it).
        if !self.members().silent.contains(&consumer) {
            return self.inner.poll(consumer, max, wait);
        }
        self.members().silent_polls += 1;
        Box::pin(async move {
            // Still a poll (the member stays alive in its group), taking nothing, as long as one.
            let until = tokio::time::Instant::now() + wait;
            self.inner.poll(consumer, 0, wait).await?;
            tokio::time::sleep_until(until).await;
            Ok(Vec::new())
        })
    }

    fn leave(&self, consumer: ConsumerId) -> BoxFuture<'_, Result<(), LogError>> {
        let mut m = self.members();
        m.groups.remove(&consumer);
        m.silent.remove(&consumer);
        drop(m);
        self.inner.leave(consumer)
    }
}
