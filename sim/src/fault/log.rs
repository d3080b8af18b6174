//! Consumer crashes on the streaming model, as data: a [`LogCrash`] names a consumer group,
//! the n-th non-empty batch its member polls, and the point of its handling where the member
//! dies (the same [`CrashPoint`]s as on the queue: before the store commit, between commit and
//! publish, between publish and the offset commit). [`CrashingLog`] wraps the [`SimLog`] and is
//! the one place these crashes happen: the dying member announces itself (the harness aborts
//! its task and, after the session timeout, has the log evict it, as Kafka's group coordinator
//! does with a member that stopped heartbeating) and never goes further.
//!
//! A batch is a poll that hands over work: a record other than a watermark. A poll of
//! watermarks alone is not counted and no crash strikes in its handling — how watermarks arrive
//! (with their order, or on their own, partition by partition) is the part of a batch that
//! differs between the simulated log and Kafka's fetches, so that a real process counts the
//! same batches as the simulation does.
//!
//! A crash strikes when the group has polled its `batch`-th batch, in the member that reaches
//! the point next: the one that polled it, or — several members in a group — whichever member
//! transacts or commits first. A member that dies never returns from the call it died in.
//!
//! Inventory writes a batch in one transaction, so its three points are: after the poll,
//! before deciding (`before the store commit`); decided in memory, before the transaction
//! reaches the log (`between commit and publish`: nothing of it becomes visible); and after the
//! transaction committed, before its answer arrives (`between publish and ack`: all of it is
//! visible, the member never learns it). A transaction is atomic in the log, so there is no
//! point inside it. With `--break no-transaction` the writes are separate calls, and the last
//! point falls between the outcomes and the changelog.
//!
//! In a real process (`explore --real-brokers`, [`CrashingLog::in_process`]) the same wrapper
//! aborts the process at the point instead, and keeps its group's batch count in a file so that
//! a restarted process counts on, as the group does here.
//!
//! `--break commit-first` lives here too: Inventory's offsets are committed as soon as a batch
//! is polled (auto-commit before processing), so a crash loses the batch in hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus::streaming_kafka::consumers::INVENTORY_GROUP;
use campus::streaming_kafka::merge::WATERMARK_HEADER;
use campus::transport::log::{ConsumerId, EventLog, LogError, LogLayer, Outgoing, Position, Record, Topic};
use campus::transport::BoxFuture;

use super::queue::CrashPoint;

/// The member of `group` dies at `point` while handling its group's `batch`-th non-empty poll
/// (1-based, counting re-reads).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCrash {
    pub group: String,
    pub batch: u32,
    pub point: CrashPoint,
}

#[derive(Default)]
struct Shared {
    crashes: BTreeSet<LogCrash>,
    groups: BTreeMap<ConsumerId, String>,
    batches: BTreeMap<String, u32>,
    /// The member that polled the group's last batch (the one handling it).
    handling: BTreeMap<String, ConsumerId>,
    /// Whether the group's last poll was a batch (work in hand), not watermarks alone.
    in_hand: BTreeMap<String, bool>,
    /// Records appended and records polled.
    events: u64,
    trace: super::trace::Trace,
    /// In a process: the file that keeps the count of its group's batches across its lives.
    count_file: Option<PathBuf>,
}

pub struct CrashingLog {
    inner: Arc<dyn EventLog>,
    shared: Mutex<Shared>,
    /// Per group whose members may crash: the dying member's id goes here.
    crashed: BTreeMap<String, flume::Sender<ConsumerId>>,
    commit_first: Option<String>,
}

fn describe(topic: Topic, value: &[u8], headers: &campus::transport::log::Headers) -> String {
    if let Some(ms) = campus::transport::header(headers, campus::streaming_kafka::merge::WATERMARK_HEADER) {
        return format!("watermark {ms} ms");
    }
    if topic == Topic::InventoryChangelog {
        return "changelog entry".into();
    }
    match campus::domain::Envelope::decode(value) {
        Ok(event) => format!("{} {}", event.kind(), event.order_id()),
        Err(e) => format!("malformed ({})", e.label()),
    }
}

/// The next offsets after `records`, per partition.
fn positions(records: &[Record]) -> Vec<Position> {
    let mut next = BTreeMap::new();
    for r in records {
        let entry = next.entry((r.topic, r.partition)).or_insert(0);
        *entry = (*entry).max(r.offset + 1);
    }
    next.into_iter().map(|((topic, partition), next)| Position { topic, partition, next }).collect()
}

impl CrashingLog {
    /// Wraps `inner`. `commit_first` names the group whose offsets are committed on poll
    /// (`--break commit-first`), if any.
    pub fn new(
        inner: Arc<dyn EventLog>,
        crashes: impl IntoIterator<Item = LogCrash>,
        crashed: BTreeMap<String, flume::Sender<ConsumerId>>,
        commit_first: Option<String>,
    ) -> Self {
        let shared = Shared { crashes: crashes.into_iter().collect(), ..Shared::default() };
        CrashingLog { inner, shared: Mutex::new(shared), crashed, commit_first }
    }

    /// Wraps a service process's own client `inner`: the process dies (aborts, as a SIGKILL
    /// would leave it) at each of `crashes` of its group, counting the group's batches on from
    /// `before` and keeping the count in `count_file`.
    pub fn in_process(
        inner: Arc<dyn EventLog>,
        crashes: Vec<LogCrash>,
        (count_file, before): (PathBuf, u32),
        commit_first: Option<String>,
    ) -> Self {
        let (tx, rx) = flume::unbounded::<ConsumerId>();
        std::thread::spawn(move || {
            if rx.recv().is_ok() {
                std::process::abort();
            }
        });
        let groups: BTreeSet<String> = crashes.iter().map(|c| c.group.clone()).collect();
        let shared = Shared {
            crashes: crashes.into_iter().collect(),
            batches: groups.iter().map(|g| (g.clone(), before)).collect(),
            count_file: Some(count_file),
            trace: super::trace::Trace::new(false),
            ..Shared::default()
        };
        let crashed = groups.into_iter().map(|g| (g, tx.clone())).collect();
        CrashingLog { inner, shared: Mutex::new(shared), crashed, commit_first }
    }

    /// The same wrapper, keeping no trace (`explore`'s search).
    pub fn untraced(self) -> Self {
        self.lock().trace = super::trace::Trace::new(false);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("crash state lock")
    }

    pub fn events(&self) -> u64 {
        self.lock().events
    }

    /// Adds a line to the trace (the harness's own steps).
    pub fn note(&self, line: String) {
        self.lock().trace.push(|| line);
    }

    pub fn take_trace(&self) -> Vec<String> {
        self.lock().trace.take()
    }

    /// The group coordinator gives up on a dead member: it leaves, its partitions are dealt
    /// to the others, and they start from the group's committed offsets.
    pub async fn evict(&self, member: ConsumerId) -> Result<(), LogError> {
        {
            let mut s = self.lock();
            let group = s.groups.get(&member).cloned().unwrap_or_default();
            s.trace.push(|| format!("session timeout: {group} member {} evicted", member.0));
        }
        self.inner.leave(member).await
    }

    fn group_of(&self, member: ConsumerId) -> String {
        self.lock().groups.get(&member).cloned().unwrap_or_default()
    }

    /// True (and the crash announced) if `member` of `group` — or, where the call does not
    /// name it, the member that polled the group's last batch — must die here.
    fn crash_here(&self, group: &str, member: Option<ConsumerId>, point: CrashPoint) -> bool {
        let mut s = self.lock();
        if !s.in_hand.get(group).copied().unwrap_or(false) {
            return false;
        }
        let Some(member) = member.or_else(|| s.handling.get(group).copied()) else { return false };
        let group = group.to_owned();
        let batch = s.batches.get(&group).copied().unwrap_or(0);
        if !s.crashes.remove(&LogCrash { group: group.clone(), batch, point }) {
            return false;
        }
        s.trace.push(|| format!("CRASH {group} member {} {} (batch #{batch})", member.0, point.as_str()));
        drop(s);
        if let Some(tx) = self.crashed.get(&group) {
            let _ = tx.send(member);
        }
        true
    }
}

impl LogLayer for CrashingLog {
    fn inner(&self) -> &dyn EventLog {
        self.inner.as_ref()
    }

    fn append(&self, records: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<(u32, u64)>, LogError>> {
        Box::pin(async move {
            // Only Inventory appends outcomes and changelog entries (without a transaction only
            // under `--break no-transaction`); it is handling its group's last batch.
            match records.first().map(|r| r.topic) {
                Some(Topic::InventoryEvents) if self.crash_here(INVENTORY_GROUP, None, CrashPoint::BeforePublish) => {
                    std::future::pending::<()>().await
                }
                Some(Topic::InventoryChangelog) if self.crash_here(INVENTORY_GROUP, None, CrashPoint::BeforeAck) => {
                    std::future::pending::<()>().await
                }
                _ => {}
            }
            let lines: Vec<String> = if self.lock().trace.is_kept() {
                records.iter().map(|r| format!("{}: {}", r.topic, describe(r.topic, &r.value, &r.headers))).collect()
            } else {
                Vec::new()
            };
            let placed = self.inner.append(records).await?;
            let mut s = self.lock();
            s.events += placed.len() as u64;
            for (line, (partition, offset)) in lines.into_iter().zip(&placed) {
                s.trace.push(|| format!("append [{partition}]@{offset} {line}"));
            }
            Ok(placed)
        })
    }

    fn transact(
        &self,
        writer: &str,
        consumer: ConsumerId,
        records: Vec<Outgoing>,
        positions: Vec<Position>,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        let writer = writer.to_owned();
        Box::pin(async move {
            let group = self.group_of(consumer);
            if self.crash_here(&group, Some(consumer), CrashPoint::BeforePublish) {
                std::future::pending::<()>().await;
            }
            let lines: Vec<String> = if self.lock().trace.is_kept() {
                records
                    .iter()
                    .filter(|r| r.topic != Topic::InventoryChangelog)
                    .map(|r| format!("{} {}", r.topic, describe(r.topic, &r.value, &r.headers)))
                    .collect()
            } else {
                Vec::new()
            };
            let n = records.len() as u64;
            self.inner.transact(&writer, consumer, records, positions.clone()).await?;
            {
                let mut s = self.lock();
                s.events += n;
                s.trace.push(|| {
                    let to: Vec<String> = positions.iter().map(|p| format!("{}[{}]→{}", p.topic, p.partition, p.next)).collect();
                    format!("{group} transaction committed: {}; offsets {}", lines.join(", "), to.join(", "))
                });
            }
            if self.crash_here(&group, Some(consumer), CrashPoint::BeforeAck) {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let group = group.to_owned();
        let topics = topics.to_vec();
        Box::pin(async move {
            let id = self.inner.join(&group, &topics).await?;
            let mut s = self.lock();
            s.groups.insert(id, group.clone());
            s.trace.push(|| format!("{group} member {} joins", id.0));
            Ok(id)
        })
    }

    fn poll(&self, consumer: ConsumerId, max: usize, wait: Duration) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        Box::pin(async move {
            let records = self.inner.poll(consumer, max, wait).await?;
            if records.is_empty() {
                return Ok(records);
            }
            let group = self.group_of(consumer);
            let work = records.iter().any(|r| campus::transport::header(&r.headers, WATERMARK_HEADER).is_none());
            {
                let mut s = self.lock();
                s.in_hand.insert(group.clone(), work);
                s.events += records.len() as u64;
                if work {
                    let n = s.batches.entry(group.clone()).or_default();
                    *n += 1;
                    let batch = *n;
                    if let Some(file) = &s.count_file {
                        // Kept before the batch is handed over: a crash at any later point finds
                        // it counted.
                        if let Err(e) = std::fs::write(file, batch.to_string()) {
                            tracing::error!(error = %e, file = %file.display(), "keeping the batch count");
                        }
                    }
                    s.handling.insert(group.clone(), consumer);
                }
                let batch = s.batches.get(&group).copied().unwrap_or(0);
                s.trace.push(|| {
                    let what: Vec<String> = records
                        .iter()
                        .map(|r| format!("{}[{}]@{} {}", r.topic, r.partition, r.offset, describe(r.topic, &r.value, &r.headers)))
                        .collect();
                    let counted = if work { format!("batch #{batch}") } else { "watermarks".to_owned() };
                    format!("{group} polls {counted}: {}", what.join(", "))
                });
            }
            if self.commit_first.as_deref() == Some(group.as_str()) {
                self.inner.commit(consumer, positions(&records)).await?;
            }
            if self.crash_here(&group, Some(consumer), CrashPoint::BeforeCommit) {
                std::future::pending::<()>().await;
            }
            Ok(records)
        })
    }

    fn commit(&self, consumer: ConsumerId, positions: Vec<Position>) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            if self.crash_here(&self.group_of(consumer), Some(consumer), CrashPoint::BeforeAck) {
                std::future::pending::<()>().await;
            }
            self.inner.commit(consumer, positions).await
        })
    }
}
