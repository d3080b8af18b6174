//! Inventory scaled out (Part C): several instances, members of one consumer group, each
//! deciding the partitions of `order-events` the group assigns it.
//!
//! **What changes against one Inventory** (`super::consumers`): each partition is a shard with
//! its own stock (`stock` units of each item *per partition*: an order's key — its id — picks
//! its partition, and so its shard) and its own decided order ids, and it is decided in offset
//! order. There is no event-time merge across partitions: no instance sees them all. So the
//! log keeps order per key (per partition), and scales by partitions: at most one instance per
//! partition does any work.
//!
//! **Exactly once with several writers.** Each instance has a transactional identity of its
//! own (`inventory-<instance>`; a restarted instance of the same name fences its predecessor)
//! and writes each batch's outcomes, changelog entries, dead letters and offsets in one
//! transaction, as one Inventory does. What keeps two instances from both deciding a partition
//! is the group: a transaction whose offsets belong to a generation the group has left behind
//! is refused (Kafka, KIP-447; `SimLog` refuses offsets of a partition dealt to another
//! member), and records a rebalance took away while a poll gathered them are dropped by the log.
//!
//! **A partition changes hands** (an instance joins, leaves or dies, and its session times
//! out): the new owner reads it from the group's committed offset. An instance keeps, per
//! partition, the decisions it knows and the next offset it expects. A record at that offset
//! continues the shard; one below it is a redelivery of what it decided already (its own
//! transactions all committed, or it started over); one above it — or a partition it has no
//! shard for — means another owner decided in between: the shard is restored from that
//! partition of the changelog first (the same key on the same number of partitions lands on
//! the same partition number), waiting for any transaction still open on it.
//!
//! **A refused transaction** (`Rebalanced`) aborts; the shards it touched are dropped (they were
//! decided in place) and restored when their partitions come back. Any other failure starts
//! the session over, as for one Inventory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::changelog;
use super::consumers::{decide, start_over, Decided, InventoryConfig, INVENTORY_GROUP, INVENTORY_WRITER, POLL_WAIT};
use super::merge::next_of;
use super::stall::Watch;
use crate::retry::Policy;
use crate::services::inventory::Inventory;
use crate::store::InventoryStats;
use crate::telemetry::Tracer;
use crate::transport::log::{EventLog, LogError, Position, Record, Topic};

/// How long the broker lets a member's transaction stay open (Kafka Streams' default under
/// exactly-once, instead of Kafka's 60 s or the single Inventory's 30 s). A member SIGKILLed
/// mid-transaction leaves it open: its partitions' next owner cannot restore them (the
/// changelog's last stable offset stays below it) until the broker aborts it. A restarted
/// single Inventory aborts its own predecessor's transaction at once (the same identity);
/// the members of a group each have their own, so this bounds the stall. A batch takes
/// milliseconds; one that takes longer is aborted and decided again.
pub const MEMBER_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One partition's state, as the instance that owns it knows it.
#[derive(Debug, Clone)]
pub struct Shard {
    pub inventory: Inventory,
    /// The next offset of the partition to decide.
    pub next: u64,
}

/// An instance's shards by partition, as its HTTP face and the lab see them.
pub type ShardsView = Arc<Mutex<BTreeMap<u32, Shard>>>;

/// The instance's transactional identity.
pub fn writer(instance: &str) -> String {
    format!("{INVENTORY_WRITER}-{instance}")
}

/// The accounting of the shards an instance holds now (each partition starts with `stock`).
pub fn stats(shards: &BTreeMap<u32, Shard>, stock: u32) -> InventoryStats {
    let mut total = InventoryStats::default();
    for shard in shards.values() {
        let s = super::consumers::stats(&shard.inventory, stock);
        total.reserved += s.reserved;
        total.failed += s.failed;
        total.units_taken += s.units_taken;
        total.units_of_reserved_orders += s.units_of_reserved_orders;
        total.stock_applications += s.stock_applications;
        for (sku, units) in s.stock {
            *total.stock.entry(sku).or_insert(0) += units;
        }
    }
    total.partitions = shards.keys().copied().collect();
    total
}

/// One scaled-out Inventory instance named `instance` (see the module's documentation).
pub async fn run(
    log: Arc<dyn EventLog>,
    view: ShardsView,
    config: InventoryConfig,
    instance: String,
    policy: Policy,
    tracer: Tracer,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let writer = writer(&instance);
    let mut backoff = policy.backoff("inventory");
    loop {
        match session(log.as_ref(), &view, config, &writer, policy, &tracer, &mut stop).await {
            Ok(()) => return Ok(()),
            Err(e) => start_over(e, policy, &mut backoff, &writer).await?,
        }
    }
}

/// The partitions of `records` whose shard must be restored first: unknown here, or read on
/// from past where this instance stopped (another owner decided in between).
fn stale(shards: &BTreeMap<u32, Shard>, records: &[Record]) -> Vec<u32> {
    let mut first: BTreeMap<u32, u64> = BTreeMap::new();
    for r in records {
        first.entry(r.partition).or_insert(r.offset);
    }
    first.into_iter().filter(|(p, offset)| shards.get(p).is_none_or(|s| *offset > s.next)).map(|(p, _)| p).collect()
}

async fn session(
    log: &dyn EventLog,
    view: &ShardsView,
    config: InventoryConfig,
    writer: &str,
    policy: Policy,
    tracer: &Tracer,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LogError> {
    log.fence(writer).await?;
    view.lock().expect("shards lock").clear();
    let me = log.join(INVENTORY_GROUP, &[Topic::OrderEvents]).await?;
    // A member of several: the partitions it holds no position in may be another's.
    let mut watch = Watch::new(INVENTORY_GROUP, &[Topic::OrderEvents], false, policy);
    let result = async {
        while !*stop.borrow_and_update() {
            let records = log.poll(me, config.batch, POLL_WAIT).await?;
            watch.check(log, me).await?;
            // Shards of partitions the group has dealt elsewhere are stale from now on: dropped
            // (restored if the partition comes back), so that what an instance holds is what it
            // owns, and its memory does not grow with the partitions it ever held.
            // (Not while a rebalance has taken every partition away for a moment: nothing there
            // says which come back.)
            let assigned: std::collections::BTreeSet<u32> = log.positions(me).await?.iter().map(|p| p.partition).collect();
            if !assigned.is_empty() {
                view.lock().expect("shards lock").retain(|p, _| assigned.contains(p) || records.iter().any(|r| r.partition == *p));
            }
            if records.is_empty() {
                continue;
            }
            let restore = stale(&view.lock().expect("shards lock"), &records);
            for partition in restore {
                let inventory = changelog::restore_partition(log, config.stock, partition).await?;
                let next = records.iter().find(|r| r.partition == partition).map_or(0, |r| r.offset);
                tracing::debug!(partition, next, decided = inventory.decided().0 + inventory.decided().1, "restored a partition's shard");
                view.lock().expect("shards lock").insert(partition, Shard { inventory, next });
            }
            // Decided in place, each partition in offset order; redeliveries skipped.
            let (mut decided, positions) = {
                let mut shards = view.lock().expect("shards lock");
                let mut decided = Decided::default();
                let mut touched = BTreeMap::new();
                for record in records {
                    let shard = shards.get_mut(&record.partition).expect("restored above");
                    if record.offset < shard.next {
                        continue;
                    }
                    shard.next = record.offset + 1;
                    touched.insert(record.partition, shard.next);
                    let one = decide(&mut shard.inventory, next_of(record).into_iter().collect(), tracer);
                    decided.writes.extend(one.writes);
                    decided.spans.extend(one.spans);
                }
                let positions: Vec<Position> =
                    touched.into_iter().map(|(partition, next)| Position { topic: Topic::OrderEvents, partition, next }).collect();
                (decided, positions)
            };
            if positions.is_empty() {
                continue;
            }
            let written = log.transact(writer, me, std::mem::take(&mut decided.writes), positions.clone()).await;
            decided.settled(&written);
            match written {
                Ok(()) => {}
                Err(LogError::Rebalanced(detail)) => {
                    tracing::info!(%detail, "the group moved on; this batch was aborted and its partitions are read again by their owner");
                    let mut shards = view.lock().expect("shards lock");
                    for p in &positions {
                        shards.remove(&p.partition);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = log.leave(me).await {
        tracing::debug!(error = %e, "inventory leaving its group");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: u32, offset: u64) -> Record {
        Record { topic: Topic::OrderEvents, partition, offset, key: String::new(), value: Default::default(), headers: Vec::new() }
    }

    fn shard(next: u64) -> Shard {
        Shard { inventory: Inventory::with_stock(1), next }
    }

    #[test]
    fn a_partition_read_on_from_past_where_this_instance_stopped_is_restored_first() {
        let shards = BTreeMap::from([(0, shard(10)), (1, shard(10)), (2, shard(10))]);
        let records = [record(0, 10), record(1, 4), record(2, 12), record(3, 0)];
        // 0 continues, 1 is a redelivery, 2 was decided elsewhere from 10 to 11, 3 is new here.
        assert_eq!(stale(&shards, &records), vec![2, 3]);
    }
}
