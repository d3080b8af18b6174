//! [`SimLog`]: the streaming model in memory, with the semantics of `campus::transport::log`:
//! murmur2 key partitioning, per-partition offsets, consumer groups whose members share the
//! partitions (round robin by member id), committed offsets per group, every rebalance (a member
//! joining or leaving) restarting the group's members from the committed offsets — so records
//! read but not committed are read again — and resets refused while a group has members.
//!
//! Costs in virtual time: an append (a batch) and a commit take one seeded network hop; a poll
//! returns at once when records are there, or when one is appended, or after `wait`.
//!
//! **Outages** ([`SimLog::set_down`], applied by the world): while the broker is down every
//! call fails with a transient `Unreachable`; the records and committed offsets are kept
//! (durable); going down restarts every member from its group's committed offsets (after a
//! broker restart a consumer is handed its partitions again), so what was read but not
//! committed is read again. An append under way when the broker goes down is stored but its
//! acknowledgement is lost: the producer appends it again (a duplicate the consumers absorb).
//!
//! **Transactions** are atomic here by construction (one lock): the records and the offsets
//! land together, after one hop, or — the broker down meanwhile — not at all. As in Kafka, a
//! committed transaction leaves a commit marker that takes one offset in each partition it
//! wrote, which no reader is handed. There is one writer per identity in a simulated world (a
//! crashed member's task is aborted), so [`EventLog::fence`] has nobody to fence.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use campus::transport::log::{partition_for, ConsumerId, EventLog, Headers, LogError, Outgoing, Position, Record, Topic, PARTITIONS};
use campus::transport::BoxFuture;
use tokio::sync::Notify;

use crate::net::LinkModel;
use crate::rng::SimRng;

struct Member {
    group: String,
    topics: Vec<Topic>,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<(Topic, u32), u64>,
}

/// One offset of a partition: a record, or a transaction's commit marker.
#[derive(Clone)]
enum Slot {
    Data { key: String, value: Bytes, headers: Headers },
    Marker,
}

#[derive(Default)]
struct State {
    logs: BTreeMap<Topic, Vec<Vec<Slot>>>,
    committed: BTreeMap<(String, Topic, u32), u64>,
    members: BTreeMap<ConsumerId, Member>,
    next_id: u64,
    /// The broker is away (an outage).
    down: bool,
}

fn unreachable() -> LogError {
    LogError::Unreachable("the broker is down".into())
}

impl State {
    fn partition(&mut self, topic: Topic, partition: u32) -> &mut Vec<Slot> {
        let partitions = self.logs.entry(topic).or_insert_with(|| vec![Vec::new(); PARTITIONS as usize]);
        &mut partitions[partition as usize]
    }

    /// Appends `records`; each gets its partition and offset.
    fn write(&mut self, records: Vec<Outgoing>) -> Vec<(u32, u64)> {
        records
            .into_iter()
            .map(|Outgoing { topic, key, value, headers }| {
                let partition = partition_for(key.as_bytes(), PARTITIONS);
                let log = self.partition(topic, partition);
                log.push(Slot::Data { key, value, headers });
                (partition, log.len() as u64 - 1)
            })
            .collect()
    }

    fn record(&self, topic: Topic, partition: u32, offset: u64) -> Option<Option<Record>> {
        let slot = self.logs.get(&topic)?.get(partition as usize)?.get(offset as usize)?;
        Some(match slot {
            Slot::Data { key, value, headers } => {
                Some(Record { topic, partition, offset, key: key.clone(), value: value.clone(), headers: headers.clone() })
            }
            Slot::Marker => None,
        })
    }

    /// Re-deals `group`'s partitions to its members (round robin, in member order) and
    /// restarts every member from the committed offsets.
    fn rebalance(&mut self, group: &str) {
        let ids: Vec<ConsumerId> = self.members.iter().filter(|(_, m)| m.group == group).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return;
        }
        let mut wanted: Vec<Topic> = ids.iter().flat_map(|id| self.members[id].topics.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let pairs: Vec<(Topic, u32)> = wanted.iter().flat_map(|t| (0..PARTITIONS).map(move |p| (*t, p))).collect();
        for id in &ids {
            self.members.get_mut(id).expect("listed").positions.clear();
        }
        for (i, (topic, partition)) in pairs.into_iter().enumerate() {
            let id = ids[i % ids.len()];
            let next = self.committed.get(&(group.to_owned(), topic, partition)).copied().unwrap_or(0);
            self.members.get_mut(&id).expect("listed").positions.insert((topic, partition), next);
        }
    }

    /// Up to `max` records for `id`, taking one from each assigned partition in turn.
    fn take(&mut self, id: ConsumerId, max: usize) -> Result<Vec<Record>, LogError> {
        let member = self.members.get(&id).ok_or(LogError::UnknownConsumer(id))?;
        let mut positions = member.positions.clone();
        let mut records = Vec::new();
        loop {
            let before = records.len();
            for ((topic, partition), next) in positions.iter_mut() {
                if records.len() >= max {
                    break;
                }
                // A commit marker takes an offset but is handed to nobody.
                while let Some(None) = self.record(*topic, *partition, *next) {
                    *next += 1;
                }
                if let Some(Some(record)) = self.record(*topic, *partition, *next) {
                    records.push(record);
                    *next += 1;
                }
            }
            if records.len() == before || records.len() >= max {
                break;
            }
        }
        self.members.get_mut(&id).expect("checked above").positions = positions;
        Ok(records)
    }
}

pub struct SimLog {
    state: Mutex<State>,
    appended: Notify,
    rng: Mutex<SimRng>,
    link: LinkModel,
}

impl SimLog {
    pub fn new(rng: SimRng, link: LinkModel) -> Self {
        SimLog { state: Mutex::new(State::default()), appended: Notify::new(), rng: Mutex::new(rng), link }
    }

    fn hop(&self) -> Duration {
        let (lo, hi) = (self.link.min.as_millis() as u64, self.link.max.as_millis() as u64);
        Duration::from_millis(self.rng.lock().expect("rng lock").between(lo, hi))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("log state lock")
    }

    /// The broker goes down (`true`) or comes back (`false`). Going down restarts every
    /// member from its group's committed offsets.
    pub fn set_down(&self, down: bool) {
        {
            let mut state = self.state();
            if down && !state.down {
                let groups: std::collections::BTreeSet<String> = state.members.values().map(|m| m.group.clone()).collect();
                for group in groups {
                    state.rebalance(&group);
                }
            }
            state.down = down;
        }
        // Waiting polls look again (and fail while down).
        self.appended.notify_waiters();
    }

    /// The group coordinator gives up on `group`'s members after their session timeout (they
    /// died without leaving): they are removed and the partitions dealt to whoever joins.
    pub fn evict_group(&self, group: &str) {
        let mut state = self.state();
        state.members.retain(|_, m| m.group != group);
        state.rebalance(group);
    }

    /// Fails while the broker is down.
    fn up(&self) -> Result<std::sync::MutexGuard<'_, State>, LogError> {
        let state = self.state();
        if state.down { Err(unreachable()) } else { Ok(state) }
    }
}

impl EventLog for SimLog {
    fn append(&self, records: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<(u32, u64)>, LogError>> {
        Box::pin(async move {
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            let (placed, down) = {
                let mut state = self.state();
                let placed = state.write(records);
                (placed, state.down)
            };
            self.appended.notify_waiters();
            // Down since the append left: stored, but the acknowledgement is lost.
            if down { Err(unreachable()) } else { Ok(placed) }
        })
    }

    fn fence(&self, _writer: &str) -> BoxFuture<'_, Result<(), LogError>> {
        let result = self.up().map(drop);
        Box::pin(async move { result })
    }

    fn transact(&self, _writer: &str, consumer: ConsumerId, records: Vec<Outgoing>, positions: Vec<Position>) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            {
                let mut state = self.up()?;
                let group = state.members.get(&consumer).ok_or(LogError::UnknownConsumer(consumer))?.group.clone();
                let topics: Vec<Topic> = records.iter().map(|r| r.topic).collect();
                let placed = state.write(records);
                let written: std::collections::BTreeSet<(Topic, u32)> = topics.into_iter().zip(placed).map(|(t, (p, _))| (t, p)).collect();
                for (topic, partition) in written {
                    state.partition(topic, partition).push(Slot::Marker);
                }
                for p in positions {
                    state.committed.insert((group.clone(), p.topic, p.partition), p.next);
                }
            }
            self.appended.notify_waiters();
            Ok(())
        })
    }

    fn scan(&self, topic: Topic) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        let result = self.up().map(|state| {
            (0..PARTITIONS)
                .flat_map(|p| (0..).map_while(|offset| state.record(topic, p, offset)).flatten().collect::<Vec<_>>())
                .collect()
        });
        Box::pin(async move { result })
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let result = self.up().map(|mut state| {
            state.next_id += 1;
            let id = ConsumerId(state.next_id);
            state.members.insert(id, Member { group: group.to_owned(), topics: topics.to_vec(), positions: BTreeMap::new() });
            state.rebalance(group);
            id
        });
        Box::pin(async move { result })
    }

    fn poll(&self, consumer: ConsumerId, max: usize, wait: Duration) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let appended = self.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                let records = self.up()?.take(consumer, max)?;
                if !records.is_empty() {
                    return Ok(records);
                }
                if tokio::time::timeout_at(deadline, appended).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        })
    }

    fn positions(&self, consumer: ConsumerId) -> BoxFuture<'_, Result<Vec<Position>, LogError>> {
        let result = self.up().and_then(|state| {
            let member = state.members.get(&consumer).ok_or(LogError::UnknownConsumer(consumer))?;
            Ok(member.positions.iter().map(|((topic, partition), next)| Position { topic: *topic, partition: *partition, next: *next }).collect())
        });
        Box::pin(async move { result })
    }

    fn commit(&self, consumer: ConsumerId, positions: Vec<Position>) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            let mut state = self.up()?;
            let group = state.members.get(&consumer).ok_or(LogError::UnknownConsumer(consumer))?.group.clone();
            for p in positions {
                state.committed.insert((group.clone(), p.topic, p.partition), p.next);
            }
            Ok(())
        })
    }

    fn leave(&self, consumer: ConsumerId) -> BoxFuture<'_, Result<(), LogError>> {
        // A member that closes is gone even if the broker cannot be told now: a restarted
        // coordinator keeps no members (they all join again), and a live one would evict it.
        let result = {
            let mut state = self.state();
            match state.members.remove(&consumer) {
                Some(member) => {
                    state.rebalance(&member.group);
                    if state.down { Err(unreachable()) } else { Ok(()) }
                }
                None => Err(LogError::UnknownConsumer(consumer)),
            }
        };
        Box::pin(async move { result })
    }

    fn end_offsets(&self, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        let offsets = self.up().map(|state| (0..PARTITIONS).map(|p| state.logs.get(&topic).map_or(0, |t| t[p as usize].len() as u64)).collect());
        Box::pin(async move { offsets })
    }

    fn committed(&self, group: &str, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        let offsets = self.up().map(|state| (0..PARTITIONS).map(|p| state.committed.get(&(group.to_owned(), topic, p)).copied().unwrap_or(0)).collect());
        Box::pin(async move { offsets })
    }

    fn reset_to_beginning(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<(), LogError>> {
        let result = self.up().and_then(|mut state| {
            if state.members.values().any(|m| m.group == group) {
                Err(LogError::GroupActive { group: group.to_owned() })
            } else {
                for topic in topics {
                    for p in 0..PARTITIONS {
                        state.committed.insert((group.to_owned(), *topic, p), 0);
                    }
                }
                Ok(())
            }
        });
        Box::pin(async move { result })
    }
}
