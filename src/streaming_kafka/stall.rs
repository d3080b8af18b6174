//! A consumer that stopped reading (Part C). After a broker of the cluster was lost and came
//! back, librdkafka's fetcher can stay silent on partitions that have records: no error, no
//! record, for minutes. The cluster's `node-loss` met it once in CI: Inventory's lag stood at
//! 6,895 from the broker's return until the run gave up 300 s later, while Analytics read on;
//! rust-rdkafka's tracker has the same report (a consumer that "sometimes" does not consume
//! after a reconnect), cured only by a new consumer.
//!
//! So every consumer loop here keeps a [`Watch`]: each [`CHECK_EVERY`] it looks at the
//! partitions it reads. The consumer is **stalled** when, at two checks in a row, some
//! partition had records to read (where the consumer reads from is below the end) and the
//! consumer did not move in any partition in between. Then the loop replaces its consumer:
//! Inventory starts its session over (fence, restore, join: it reads on from its committed
//! offsets), Analytics leaves and joins again. A healthy consumer moves within milliseconds of
//! a record's arrival, so a whole check period without a step over a backlog is never mistaken
//! for work in progress; a broker that cannot answer the check counts as no check (its outage
//! is handled by the retries, not by this).
//!
//! Per consumer, not per partition: a throttled Analytics was seen reading one topic for over
//! 10 s while the other waited (librdkafka serves what it fetched a partition at a time), and
//! a per-partition watch replaced it for nothing. The price: a consumer silent on some
//! partitions while it reads others is found once the others have nothing left to read.
//!
//! Where it reads from: the consumer's position in each partition it holds; a group's only
//! member (one Inventory, Analytics) also counts the group's committed offset in a partition it
//! has no position in yet (a fetcher stuck before its first record). A scaled-out member does
//! not: the partitions it holds no position in may be another member's.
//!
//! The fault is data in one place, [`crate::faults::silence`]: `explore`'s `stall` applies it in
//! the simulation, the broker tests to a real Kafka consumer, and the same watch has to find it
//! in both (`--break no-stall-watch` turns the watch off to show what it mends).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Policy;
use crate::transport::log::{ConsumerId, EventLog, LogError, Topic};

/// How often a consumer loop checks its partitions: a stall is found between one and two of
/// these after it began.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Where a consumer reads from and where each partition ends: (topic, partition) → (from, end).
type Places = BTreeMap<(Topic, u32), (u64, u64)>;

/// One consumer loop's watch over its partitions (see the module's documentation).
#[derive(Debug)]
pub struct Watch {
    group: String,
    topics: Vec<Topic>,
    /// The group's only member: partitions without a position count from the committed offset.
    sole: bool,
    next_check: Instant,
    /// Where the consumer was at the last check.
    last: Option<Places>,
    /// Off only under the lab's `--break no-stall-watch`.
    on: bool,
}

impl Watch {
    /// A watch for a member of `group` reading `topics`; `sole` if it is the group's only
    /// member. Its first check comes one [`CHECK_EVERY`] from now; `policy.stall_watch` off,
    /// it never finds anything.
    pub fn new(group: &str, topics: &[Topic], sole: bool, policy: Policy) -> Self {
        let next_check = Instant::now() + CHECK_EVERY;
        Watch { group: group.to_owned(), topics: topics.to_vec(), sole, next_check, last: None, on: policy.stall_watch }
    }

    /// Called after each poll: when a check is due, [`LogError::Stalled`] if `me` has stood
    /// still over records to read since the last one.
    pub async fn check(&mut self, log: &dyn EventLog, me: ConsumerId) -> Result<(), LogError> {
        if !self.on || Instant::now() < self.next_check {
            return Ok(());
        }
        self.next_check = Instant::now() + CHECK_EVERY;
        let Ok(now) = self.places(log, me).await else {
            // The log cannot answer now: no comparison across this gap.
            self.last = None;
            return Ok(());
        };
        let last = self.last.replace(now.clone());
        let behind = |places: &Places| places.values().any(|(from, end)| from < end);
        let moved = |last: &Places| now.iter().any(|(partition, (from, _))| last.get(partition).is_none_or(|(was, _)| was != from));
        // A consumer that moved in any partition is working, whatever order its client serves
        // the partitions in (a throttled one may read a topic before the other).
        match last {
            Some(last) if behind(&last) && behind(&now) && !moved(&last) => {
                let waiting: Vec<String> = now
                    .iter()
                    .filter(|(_, (from, end))| from < end)
                    .map(|((topic, partition), (from, end))| format!("{topic}[{partition}] at {from} of {end}"))
                    .collect();
                Err(LogError::Stalled(format!("{} read nothing for {} s from {}", self.group, CHECK_EVERY.as_secs(), waiting.join(", "))))
            }
            _ => Ok(()),
        }
    }

    /// Where `me` reads from in each partition it reads, and where the partition ends.
    async fn places(&self, log: &dyn EventLog, me: ConsumerId) -> Result<Places, LogError> {
        let positions = log.positions(me).await?;
        let mut places = Places::new();
        for &topic in &self.topics {
            let ends = log.end_offsets(topic).await?;
            let mut from: BTreeMap<u32, u64> = positions.iter().filter(|p| p.topic == topic).map(|p| (p.partition, p.next)).collect();
            if self.sole {
                for (partition, committed) in log.committed(&self.group, topic).await?.into_iter().enumerate() {
                    from.entry(partition as u32).or_insert(committed);
                }
            }
            for (partition, from) in from {
                places.insert((topic, partition), (from, ends.get(partition as usize).copied().unwrap_or(0)));
            }
        }
        Ok(places)
    }
}
