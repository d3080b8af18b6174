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
//! **A hang** ([`SimLog::set_hung`]: Kafka SIGSTOPped, for real): the connections stay open
//! and nothing answers — every call waits until the broker answers again, nothing is lost, and
//! the group coordinator, hung too, evicts nobody meanwhile. When it runs again after a hang
//! longer than the consumers' session timeout, their sessions have expired: every group is
//! rebalanced and its members carry on from the committed offsets (a Kafka client rejoins by
//! itself; what was read but not committed is read again).
//!
//! **Transactions** are atomic here by construction (one lock): the records and the offsets
//! land together, after one hop, or — the broker down meanwhile — not at all. As in Kafka, a
//! committed transaction leaves a commit marker that takes one offset in each partition it
//! wrote, which no reader is handed. There is one writer per identity in a simulated world (a
//! crashed member's task is aborted), so [`EventLog::fence`] has nobody to fence. What fences a
//! member of a group of several is the group itself: a transaction that commits offsets of a
//! partition the group has since dealt to another member is refused (`Rebalanced`), as Kafka's
//! coordinator refuses a transactional offset commit of an old generation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use campus::transport::log::{partition_for, ConsumerId, EventLog, Headers, LogError, Outgoing, Position, Record, Topic, PARTITIONS};
use campus::transport::BoxFuture;
use tokio::sync::Notify;

use crate::simulator::answering::Answering;
use crate::simulator::net::LinkModel;
use crate::simulator::rng::SimRng;

struct Member {
    group: String,
    topics: Vec<Topic>,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<(Topic, u32), u64>,
    /// When the member last called the log (its heartbeat, as the coordinator sees it).
    last_seen: tokio::time::Instant,
}

/// One offset of a partition: a record, or a transaction's commit marker.
#[derive(Clone)]
enum Slot {
    Data { key: String, value: Bytes, headers: Headers },
    Marker,
}

struct State {
    partitions: u32,
    logs: BTreeMap<Topic, Vec<Vec<Slot>>>,
    committed: BTreeMap<(String, Topic, u32), u64>,
    members: BTreeMap<ConsumerId, Member>,
    next_id: u64,
    /// The broker is away (an outage).
    down: bool,
    /// Since when the broker hangs (answers nothing, drops nothing), if it does.
    hung_since: Option<tokio::time::Instant>,
}

fn unreachable() -> LogError {
    LogError::Unreachable("the broker is down".into())
}

impl State {
    fn partition(&mut self, topic: Topic, partition: u32) -> &mut Vec<Slot> {
        let count = self.partitions as usize;
        let partitions = self.logs.entry(topic).or_insert_with(|| vec![Vec::new(); count]);
        &mut partitions[partition as usize]
    }

    /// Appends `records`; each gets its partition and offset.
    fn write(&mut self, records: Vec<Outgoing>) -> Vec<(u32, u64)> {
        records
            .into_iter()
            .map(|Outgoing { topic, key, value, headers }| {
                let partition = partition_for(key.as_bytes(), self.partitions);
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
        let count = self.partitions;
        let pairs: Vec<(Topic, u32)> = wanted.iter().flat_map(|t| (0..count).map(move |p| (*t, p))).collect();
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
        let member = self.members.get_mut(&id).ok_or(LogError::UnknownConsumer(id))?;
        member.last_seen = tokio::time::Instant::now();
        // Taken out while the partitions are read, and put back.
        let mut positions = std::mem::take(&mut member.positions);
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
    /// Wakes the calls waiting out a hang.
    answering: Answering,
    rng: Mutex<SimRng>,
    link: LinkModel,
}

impl SimLog {
    pub fn new(rng: SimRng, link: LinkModel) -> Self {
        SimLog::with_partitions(rng, link, PARTITIONS)
    }

    /// A log whose topics have `partitions` partitions each.
    pub fn with_partitions(rng: SimRng, link: LinkModel, partitions: u32) -> Self {
        let state = State {
            partitions,
            logs: BTreeMap::new(),
            committed: BTreeMap::new(),
            members: BTreeMap::new(),
            next_id: 0,
            down: false,
            hung_since: None,
        };
        SimLog { state: Mutex::new(state), appended: Notify::new(), answering: Answering::default(), rng: Mutex::new(rng), link }
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

    /// The broker hangs (`true`: every call waits) or answers again. A hang of at least
    /// `session_timeout` outlived every member's session: as Kafka's coordinator does once it
    /// runs again, every group is rebalanced (its members carry on from the committed offsets,
    /// as a Kafka client rejoins by itself).
    pub fn set_hung(&self, hung: bool, session_timeout: Duration) {
        let now = tokio::time::Instant::now();
        {
            let mut state = self.state();
            match (hung, state.hung_since) {
                (true, None) => state.hung_since = Some(now),
                (false, Some(since)) => {
                    state.hung_since = None;
                    if now.duration_since(since) >= session_timeout {
                        // Each member rejoins: a new session from now.
                        for member in state.members.values_mut() {
                            member.last_seen = now;
                        }
                        let groups: std::collections::BTreeSet<String> = state.members.values().map(|m| m.group.clone()).collect();
                        for group in groups {
                            state.rebalance(&group);
                        }
                    }
                }
                _ => {}
            }
        }
        self.answering.set_hung(hung);
    }

    /// The group coordinator gives up on `group`'s members after their session timeout (they
    /// died without leaving): they are removed and the partitions dealt to whoever joins.
    pub fn evict_group(&self, group: &str) {
        let mut state = self.state();
        state.members.retain(|_, m| m.group != group);
        state.rebalance(group);
    }

    /// The group coordinator gives up on the members of `group` that have not called the log
    /// for `timeout` (a SIGKILLed instance stops heartbeating): they are removed and their
    /// partitions dealt to the members left. Returns how many were evicted.
    pub fn evict_silent(&self, group: &str, timeout: Duration) -> usize {
        let mut state = self.state();
        if state.hung_since.is_some() {
            return 0;
        }
        let now = tokio::time::Instant::now();
        let before = state.members.len();
        state.members.retain(|_, m| m.group != group || now.duration_since(m.last_seen) < timeout);
        let evicted = before - state.members.len();
        if evicted > 0 {
            state.rebalance(group);
        }
        evicted
    }

    /// Fails while the broker is down.
    fn up(&self) -> Result<std::sync::MutexGuard<'_, State>, LogError> {
        let state = self.state();
        if state.down {
            Err(unreachable())
        } else {
            Ok(state)
        }
    }
}

impl EventLog for SimLog {
    fn append(&self, records: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<(u32, u64)>, LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            self.answering.wait().await;
            let (placed, down) = {
                let mut state = self.state();
                let placed = state.write(records);
                (placed, state.down)
            };
            self.appended.notify_waiters();
            // Down since the append left: stored, but the acknowledgement is lost.
            if down {
                Err(unreachable())
            } else {
                Ok(placed)
            }
        })
    }

    fn fence(&self, _writer: &str) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(drop)
        })
    }

    fn transact(
        &self,
        _writer: &str,
        consumer: ConsumerId,
        records: Vec<Outgoing>,
        positions: Vec<Position>,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            self.answering.wait().await;
            {
                let mut state = self.up()?;
                let member = state.members.get(&consumer).ok_or(LogError::UnknownConsumer(consumer))?;
                // The group dealt a partition of this transaction to another member since the
                // consumer's poll: as Kafka's coordinator refuses an offset commit of an old
                // generation, the whole transaction is refused.
                if let Some(p) = positions.iter().find(|p| !member.positions.contains_key(&(p.topic, p.partition))) {
                    return Err(LogError::Rebalanced(format!(
                        "{}[{}] is no longer assigned to member {}",
                        p.topic, p.partition, consumer.0
                    )));
                }
                let group = member.group.clone();
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
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(|state| {
                (0..state.partitions)
                    .flat_map(|p| (0..).map_while(|offset| state.record(topic, p, offset)).flatten().collect::<Vec<_>>())
                    .collect()
            })
        })
    }

    fn scan_partition(&self, topic: Topic, partition: u32) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        // Transactions are atomic here: none is ever open to wait for.
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(|state| (0..).map_while(|offset| state.record(topic, partition, offset)).flatten().collect())
        })
    }

    fn partitions(&self) -> u32 {
        self.state().partitions
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let (group, topics) = (group.to_owned(), topics.to_vec());
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(|mut state| {
                state.next_id += 1;
                let id = ConsumerId(state.next_id);
                let member = Member { group: group.clone(), topics, positions: BTreeMap::new(), last_seen: tokio::time::Instant::now() };
                state.members.insert(id, member);
                state.rebalance(&group);
                id
            })
        })
    }

    fn poll(&self, consumer: ConsumerId, max: usize, wait: Duration) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
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
        Box::pin(async move {
            self.answering.wait().await;
            self.up().and_then(|state| {
                let member = state.members.get(&consumer).ok_or(LogError::UnknownConsumer(consumer))?;
                Ok(member
                    .positions
                    .iter()
                    .map(|((topic, partition), next)| Position { topic: *topic, partition: *partition, next: *next })
                    .collect())
            })
        })
    }

    fn commit(&self, consumer: ConsumerId, positions: Vec<Position>) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
            drop(self.up()?);
            tokio::time::sleep(self.hop()).await;
            self.answering.wait().await;
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
        Box::pin(async move {
            self.answering.wait().await;
            {
                let mut state = self.state();
                match state.members.remove(&consumer) {
                    Some(member) => {
                        state.rebalance(&member.group);
                        if state.down {
                            Err(unreachable())
                        } else {
                            Ok(())
                        }
                    }
                    None => Err(LogError::UnknownConsumer(consumer)),
                }
            }
        })
    }

    fn end_offsets(&self, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(|state| (0..state.partitions).map(|p| state.logs.get(&topic).map_or(0, |t| t[p as usize].len() as u64)).collect())
        })
    }

    fn committed(&self, group: &str, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        let group = group.to_owned();
        Box::pin(async move {
            self.answering.wait().await;
            self.up().map(|state| {
                // The group's offsets of `topic` are one range of the map (no key built per partition).
                let mut offsets = vec![0; state.partitions as usize];
                let (from, to) = ((group.clone(), topic, 0), (group, topic, state.partitions));
                for ((_, _, p), next) in state.committed.range(from..to) {
                    offsets[*p as usize] = *next;
                }
                offsets
            })
        })
    }

    fn reset_to_beginning(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<(), LogError>> {
        let (group, topics) = (group.to_owned(), topics.to_vec());
        Box::pin(async move {
            self.answering.wait().await;
            self.up().and_then(|mut state| {
                if state.members.values().any(|m| m.group == group) {
                    Err(LogError::GroupActive { group: group.to_owned() })
                } else {
                    for topic in &topics {
                        for p in 0..state.partitions {
                            state.committed.insert((group.to_owned(), *topic, p), 0);
                        }
                    }
                    Ok(())
                }
            })
        })
    }
}
