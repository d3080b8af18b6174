//! Part C's `scale-out` experiment (on the cluster): Inventory as several instances, members of
//! one consumer group over topics of 3 or 6 partitions (`services::partitioned`: each
//! partition its own stock, decided in offset order). The producer first appends the backlog —
//! the `--events` of the workload — with no Inventory running; then the instances start
//! together and the drain is timed by the group's committed offsets, until a `read_committed`
//! reader that is not Inventory sees every decision. With `crash`, an instance that holds
//! partitions is SIGKILLed once half the backlog is decided: its partitions wait until the
//! group evicts it (the session timeout, 6 s) and are then read on by the others from the
//! committed offsets; a transaction it left open hides what follows it in the partitions it
//! wrote from readers until the broker aborts it (the members' transaction timeout, 10 s).
//!
//! What it shows: a log scales by partitions — an instance beyond the partition count has
//! nothing to read — and keeps order per key: every partition is decided in its own order
//! whoever decides it (`out_of_order` counts the exceptions, read back from the log: 0).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use campus::domain::{Envelope, Event, OrderPlaced};
use campus::streaming_kafka::consumers::INVENTORY_GROUP;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::tasks::{produce, Produced};
use super::{decisions, Config, Deployment, Detail, Run};
use crate::reporting::drain::{middle_rate, ScaleOut};
use crate::Mode;

/// How often the group's committed offsets are read while it drains (real: one request; a
/// simulated drain of 10,000 orders takes a few tens of virtual ms, the timer's grain is 1 ms).
fn poll(mode: Mode) -> Duration {
    match mode {
        Mode::Sim => Duration::from_millis(1),
        Mode::Real => Duration::from_millis(50),
    }
}

/// How far Inventory's group has got: the records of `order-events` committed and there are
/// (orders and the producer's watermarks).
async fn committed(log: &dyn EventLog) -> Result<(u64, u64), LogError> {
    let ends: u64 = log.end_offsets(Topic::OrderEvents).await?.iter().sum();
    let done: u64 = log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?.iter().sum();
    Ok((done, ends))
}

pub async fn run(
    config: &Config,
    d: &Deployment<'_>,
    events: &[OrderPlaced],
    run: &mut Run,
    instances: usize,
    partitions: u32,
    crash: bool,
) -> anyhow::Result<()> {
    let label = format!(
        "scale-out, {instances} instance{} over {partitions} partitions{}",
        if instances == 1 { "" } else { "s" },
        if crash { ", one crashed" } else { "" }
    );
    let log = d.log();
    run.produce = produce(d, events, config.batch, None, &Produced::default()).await?;
    let n = events.len() as u64;
    crate::progress::step(&format!("{label}: {n} orders wait in order-events; starting the instances"));

    d.start_instances(instances).await?;
    let start = Instant::now();
    let (mut progress, mut crashed) = (Vec::new(), None);
    let mut live = crate::progress::Progress::new("scale-out");
    loop {
        // A moment the cluster cannot answer (a rebalance, a leader moving) is skipped.
        if let Ok((done, ends)) = committed(log.as_ref()).await {
            let (t, decided) = (start.elapsed().as_millis() as u64, if ends == 0 { 0 } else { done * n / ends });
            progress.push((t, decided));
            live.update(|| format!("{decided} of {n} decided, {} records of {ends} committed", done));
            if crash && crashed.is_none() && decided >= n / 2 {
                // A member that holds partitions: with more members than partitions, one holds none.
                if let Some(i) = d.busiest_instance().await? {
                    d.kill_instance(i).await?;
                    crashed = Some((t, decided));
                    crate::progress::step(&format!("{label}: instance {i} SIGKILLed at {decided} of {n} decided"));
                }
            }
            if ends > 0 && done >= ends {
                break;
            }
        }
        if start.elapsed() > config.settle_within {
            bail!("{label}: not drained after {} s", config.settle_within.as_secs());
        }
        tokio::time::sleep(poll(d.mode())).await;
    }
    if crash && crashed.is_none() {
        bail!("{label}: the drain ended before an instance with work could be killed");
    }
    // Committed is not yet visible: a member killed mid-transaction leaves it open, and a
    // `read_committed` reader sees nothing past it in the partitions it wrote until the broker
    // aborts it. The drain ends when a reader that is not Inventory sees every decision.
    let decided = loop {
        let decided = decisions::read(log.as_ref(), events).await?;
        if decided.lost == 0 || start.elapsed() > config.settle_within {
            break decided;
        }
        live.update(|| format!("every record committed; {} of {n} decisions visible to readers yet", n as usize - decided.lost));
        tokio::time::sleep(poll(d.mode()) * 10).await;
    };
    let drain = start.elapsed();
    live.finish(&format!("{n} decided in {:.2} s", drain.as_secs_f64()));
    let out_of_order = out_of_order(log.as_ref()).await?;
    run.decisions = Some(decided);
    let orders_per_s = middle_rate(&progress, n, poll(d.mode()));
    run.detail = Detail::ScaleOut {
        drain: ScaleOut { instances, backlog: n as usize, orders_per_s, drain, crashed, progress },
        partitions,
        out_of_order,
    };
    Ok(())
}

/// Decisions written in a partition of `inventory-events` after the decision of an order that
/// came later in its partition of `order-events` (an order's id keys both, so both are on the
/// same partition number). A repeat of a decision is counted by the checks, not here.
async fn out_of_order(log: &dyn EventLog) -> Result<u64, LogError> {
    let mut placed_at: BTreeMap<String, u64> = BTreeMap::new();
    for record in log.scan(Topic::OrderEvents).await? {
        if let Ok(Event::OrderPlaced(p)) = Envelope::decode(&record.value) {
            placed_at.entry(p.order.order_id.to_string()).or_insert(record.offset);
        }
    }
    let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
    let mut decided = std::collections::BTreeSet::new();
    let mut inversions = 0;
    for record in log.scan(Topic::InventoryEvents).await? {
        let id = match Envelope::decode(&record.value) {
            Ok(Event::InventoryReserved(e)) => e.order_id.to_string(),
            Ok(Event::InventoryFailed(e)) => e.order_id.to_string(),
            _ => continue,
        };
        let Some(&offset) = placed_at.get(&id) else { continue };
        if !decided.insert(id) {
            continue;
        }
        let seen = latest.entry(record.partition).or_insert(0);
        if offset < *seen {
            inversions += 1;
        }
        *seen = (*seen).max(offset);
    }
    Ok(inversions)
}
