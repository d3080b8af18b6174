//! Inventory's event-time merge (Part C): the order in which Inventory decides does not depend
//! on how its fetches interleave the partitions of `order-events`.
//!
//! Stock is first come, first served, so *which* orders fail once it runs low depends on the
//! order they are decided in. Deciding in arrival order makes that a race between partitions
//! (a real broker and the simulation interleave them differently; so do two runs of either).
//! Here Inventory decides in **event-time order**: it buffers each partition's orders and
//! decides the earliest (`placed_at_ms`, then partition, then offset) only once it is sure no
//! earlier one can still arrive — every other partition has either an order buffered, or a
//! **watermark** at or past that time.
//!
//! A watermark is a record with the header [`WATERMARK_HEADER`] = `ms` that the producer
//! appends to every partition after each batch: "what comes later in this partition has an
//! event time of at least `ms`" (see `services::producer`). An order read is a watermark for
//! its partition too: the producer appends in event-time order. A *late* order (below its
//! partition's watermark) is decided as soon as it is at the front of its partition: where
//! that falls among the other partitions' orders depends only on what precedes it in its own
//! partition, so every reader of the same partitions still decides in the same order.
//!
//! **What it costs**: a decision waits until every partition has shown a later event time:
//! under load about one producer batch; at the tail of a burst, until the producer's idle
//! watermark (`producer::IDLE`). Poison records are not orders: they are dead-lettered as
//! soon as they reach the front of their partition, and never hold up the others.
//!
//! A record redelivered (a consumer handed its partitions again reads from the committed
//! offset) is recognised by its offset and ignored: the merge already has it.
//!
//! **What a restart needs**: each partition's floor (the watermarks read) and, to read on
//! from, the offset of its first record not done yet ([`Merge::committable`]: the first order
//! still buffered, or the next offset if none). Inventory commits both in its transaction (the
//! floors in its changelog), so a restarted Inventory re-reads exactly the orders it had not
//! decided and knows every watermark it had read.

use std::collections::VecDeque;

use crate::domain::{DecodeError, Envelope, Event, OrderPlaced};
use crate::transport::log::Record;
use crate::transport::TRACEPARENT;

/// The header that makes a record a watermark; its value is the event time in ms.
pub const WATERMARK_HEADER: &str = "campus.watermark-ms";

/// What the merge lets Inventory do next, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Decide this order (`trace`: its record's `traceparent`, if traced).
    Decide { partition: u32, offset: u64, placed: OrderPlaced, trace: Option<String> },
    /// This record cannot be read: dead-letter it with `reason` (a [`DecodeError`] label).
    DeadLetter { record: Record, reason: &'static str, detail: String },
}

#[derive(Debug, Clone)]
enum Entry {
    /// An order, and its record's `traceparent`.
    Order(OrderPlaced, Option<String>),
    Poison(Record, &'static str, String),
}

#[derive(Debug, Clone, Default)]
struct Lane {
    buffer: VecDeque<(u64, Entry)>,
    /// No record still to come in this partition has an event time below this.
    floor: u64,
    /// The next offset not seen yet (anything below is a redelivery).
    next_offset: u64,
}

/// The merge over the partitions of `order-events`.
#[derive(Debug, Clone)]
pub struct Merge {
    lanes: Vec<Lane>,
}

/// What a record of `order-events` is.
fn classify(record: &Record) -> Result<Option<Entry>, u64> {
    if let Some(ms) = record.header(WATERMARK_HEADER) {
        return match ms.parse::<u64>() {
            Ok(ms) => Err(ms),
            Err(_) => Ok(Some(Entry::Poison(record.clone(), "schema_violation", format!("watermark header {ms:?} is not a whole number")))),
        };
    }
    Ok(Some(match Envelope::decode(&record.value) {
        Ok(Event::OrderPlaced(placed)) => Entry::Order(placed, record.header(TRACEPARENT).map(str::to_owned)),
        Ok(other) => Entry::Poison(record.clone(), "schema_violation", format!("{} does not belong on order-events", other.kind())),
        Err(e) => Entry::Poison(record.clone(), DecodeError::label(&e), e.to_string()),
    }))
}

/// What one record of `order-events` asks of an Inventory that decides each partition in
/// offset order, without a merge (a scaled-out Inventory, `super::partitioned`): an order to
/// decide, a record to dead-letter, or nothing (a watermark).
pub fn next_of(record: Record) -> Option<Next> {
    match classify(&record) {
        Err(_) | Ok(None) => None,
        Ok(Some(Entry::Order(placed, trace))) => Some(Next::Decide { partition: record.partition, offset: record.offset, placed, trace }),
        Ok(Some(Entry::Poison(record, reason, detail))) => Some(Next::DeadLetter { record, reason, detail }),
    }
}

impl Merge {
    pub fn new(partitions: u32) -> Self {
        Merge { lanes: vec![Lane::default(); partitions as usize] }
    }

    /// A merge that resumes with the floors a previous one had reached.
    pub fn resume(partitions: u32, floors: &[u64]) -> Self {
        let mut merge = Merge::new(partitions);
        for (lane, floor) in merge.lanes.iter_mut().zip(floors) {
            lane.floor = *floor;
        }
        merge
    }

    /// Each partition's floor, to save with the offsets.
    pub fn floors(&self) -> Vec<u64> {
        self.lanes.iter().map(|l| l.floor).collect()
    }

    /// For each partition read from: the offset to read on from after a restart (everything
    /// before it is done).
    pub fn committable(&self) -> Vec<(u32, u64)> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| lane.next_offset > 0)
            .map(|(p, lane)| (p as u32, lane.buffer.front().map_or(lane.next_offset, |(offset, _)| *offset)))
            .collect()
    }

    /// Takes in one record read from `order-events`.
    pub fn push(&mut self, record: Record) {
        let Some(lane) = self.lanes.get_mut(record.partition as usize) else {
            tracing::warn!(partition = record.partition, "a record from a partition the merge does not know; ignored");
            return;
        };
        if record.offset < lane.next_offset {
            return;
        }
        lane.next_offset = record.offset + 1;
        match classify(&record) {
            Err(watermark) => lane.floor = lane.floor.max(watermark),
            Ok(Some(entry)) => {
                if let Entry::Order(placed, _) = &entry {
                    lane.floor = lane.floor.max(placed.placed_at_ms);
                }
                lane.buffer.push_back((record.offset, entry));
            }
            Ok(None) => {}
        }
    }

    /// Everything that can be done now, in order: poison at the front of its partition, and
    /// the orders no earlier one can precede any more.
    pub fn release(&mut self) -> Vec<Next> {
        let mut out = Vec::new();
        loop {
            for (p, lane) in self.lanes.iter_mut().enumerate() {
                while let Some((offset, Entry::Poison(..))) = lane.buffer.front() {
                    let offset = *offset;
                    let Some((_, Entry::Poison(record, reason, detail))) = lane.buffer.pop_front() else { unreachable!("checked above") };
                    debug_assert_eq!((record.partition as usize, record.offset), (p, offset));
                    out.push(Next::DeadLetter { record, reason, detail });
                }
            }
            let head = self
                .lanes
                .iter()
                .enumerate()
                .filter_map(|(p, lane)| match lane.buffer.front() {
                    Some((_, Entry::Order(placed, _))) => Some((placed.placed_at_ms, p)),
                    _ => None,
                })
                .min();
            let Some((t, p)) = head else { break };
            let safe = self
                .lanes
                .iter()
                .enumerate()
                .all(|(q, lane)| q == p || !lane.buffer.is_empty() || lane.floor > t || (lane.floor == t && q > p));
            if !safe {
                break;
            }
            let Some((offset, Entry::Order(placed, trace))) = self.lanes[p].buffer.pop_front() else {
                unreachable!("the head is an order")
            };
            out.push(Next::Decide { partition: p as u32, offset, placed, trace });
        }
        out
    }

    /// Orders read but not decided yet.
    pub fn waiting(&self) -> usize {
        self.lanes.iter().map(|l| l.buffer.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Items, Order, OrderId, OrderItem, OrderRequest, Qty, Sku, StudentId};
    use crate::transport::log::Topic;

    fn order(partition: u32, offset: u64, id: &str, t: u64) -> Record {
        let request = OrderRequest::new(
            StudentId::parse("s1").unwrap(),
            Items::parse(vec![OrderItem { sku: Sku::parse("pho").unwrap(), qty: Qty::parse(1).unwrap() }]).unwrap(),
        );
        let placed = OrderPlaced { order: Order::new(OrderId::parse(id).unwrap(), request), placed_at_ms: t };
        Record {
            topic: Topic::OrderEvents,
            partition,
            offset,
            key: id.into(),
            value: Envelope::new(Event::OrderPlaced(placed)).encode().into(),
            headers: vec![],
        }
    }

    fn watermark(partition: u32, offset: u64, t: u64) -> Record {
        Record {
            topic: Topic::OrderEvents,
            partition,
            offset,
            key: String::new(),
            value: Default::default(),
            headers: vec![(WATERMARK_HEADER.into(), t.to_string())],
        }
    }

    fn decided(next: &[Next]) -> Vec<String> {
        next.iter()
            .map(|n| match n {
                Next::Decide { placed, .. } => placed.order.order_id.to_string(),
                Next::DeadLetter { reason, .. } => format!("dead:{reason}"),
            })
            .collect()
    }

    /// Pushes `records` in the given order, releasing after each, and returns all decisions.
    fn feed(records: &[Record]) -> Vec<String> {
        let mut merge = Merge::new(2);
        let mut out = Vec::new();
        for r in records {
            merge.push(r.clone());
            out.extend(decided(&merge.release()));
        }
        out
    }

    #[test]
    fn an_order_waits_until_every_other_partition_has_passed_its_time() {
        let mut merge = Merge::new(2);
        merge.push(order(0, 0, "a", 100));
        assert!(merge.release().is_empty(), "partition 1 might still bring something earlier");
        merge.push(watermark(1, 0, 99));
        assert!(merge.release().is_empty(), "partition 1 might still bring something at 99");
        merge.push(watermark(1, 1, 100));
        assert_eq!(decided(&merge.release()), ["a"], "a tie at 100 on partition 1 would come after partition 0's");
    }

    #[test]
    fn the_decisions_do_not_depend_on_how_the_partitions_interleave() {
        let p0 = [order(0, 0, "a", 10), order(0, 1, "c", 30), watermark(0, 2, 50)];
        let p1 = [order(1, 0, "b", 20), order(1, 1, "d", 30), watermark(1, 2, 50)];
        let one_then_other: Vec<Record> = p0.iter().chain(&p1).cloned().collect();
        let other_then_one: Vec<Record> = p1.iter().chain(&p0).cloned().collect();
        let zipped: Vec<Record> = p0.iter().zip(&p1).flat_map(|(a, b)| [b.clone(), a.clone()]).collect();
        let expected = ["a", "b", "c", "d"];
        assert_eq!(feed(&one_then_other), expected);
        assert_eq!(feed(&other_then_one), expected);
        assert_eq!(feed(&zipped), expected);
    }

    #[test]
    fn poison_is_dead_lettered_at_once_and_a_redelivery_is_ignored() {
        let mut merge = Merge::new(2);
        let mut bad = order(0, 0, "x", 5);
        bad.value = "not json".into();
        merge.push(bad);
        merge.push(order(0, 1, "a", 10));
        merge.push(order(0, 1, "a", 10));
        assert_eq!(decided(&merge.release()), ["dead:not_json"]);
        assert_eq!(merge.waiting(), 1, "the redelivered record was taken once");
        assert_eq!(merge.committable(), [(0, 1)], "a restart reads on from the order not decided yet");
    }

    #[test]
    fn a_resumed_merge_knows_the_watermarks_read_before_the_restart() {
        let mut before = Merge::new(2);
        before.push(watermark(1, 0, 500));
        assert_eq!(before.committable(), [(1, 1)], "the watermark is done: its floor is saved instead");
        let mut after = Merge::resume(2, &before.floors());
        after.push(order(0, 0, "a", 100));
        assert_eq!(decided(&after.release()), ["a"]);
    }
}
