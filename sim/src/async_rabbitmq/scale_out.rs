//! Part B's `scale-out` experiment: Inventory as several instances, competing consumers of its
//! one quorum queue, sharing one store (PostgreSQL in real mode). Each run builds a backlog
//! first — Inventory stopped while Order accepts and relays `--backlog` orders — then starts
//! the instances together and times the drain. With `crash`, instance 0 is SIGKILLed once half
//! the backlog is decided.
//!
//! What it shows: how Inventory's throughput grows with instances (a queue scales by adding
//! consumers, and gives up order: the instances decide orders in whatever order they take
//! them), and that a crashed instance's unacknowledged deliveries go to the survivors — 0
//! lost, 0 double.

use std::time::Duration;

use anyhow::bail;
use campus::store::InventoryStats;
use campus::Service;
use tokio::time::Instant;

use super::observe::{finish, get_json, place_orders, settled, wait_settled};
use super::{Config, Deployment, Detail, Run, ScaleOut, Scenario};
use crate::Mode;

/// How often Inventory's count is read while it drains: often enough that the 10 %–90 % span
/// is many polls long. A simulated drain takes a fraction of a virtual second; a real one
/// seconds, and a read there is a query on the store the instances are busy with.
fn poll(mode: Mode) -> Duration {
    match mode {
        Mode::Sim => Duration::from_millis(2),
        Mode::Real => Duration::from_millis(50),
    }
}

pub async fn run(config: &Config, d: &mut Deployment<'_>, instances: usize, crash: bool) -> anyhow::Result<Run> {
    let scenario = Scenario::ScaleOut { instances, crash };
    let label =
        format!("scale-out, {instances} instance{}{}", if instances == 1 { "" } else { "s" }, if crash { ", one crashed" } else { "" });
    d.stop_inventory().await?;
    let t0 = Instant::now();
    let load = config.load(scenario, config.backlog, config.rate.max(1000));
    let placed = place_orders(d.order_client(), load, d.mode()).await;
    let n = placed.accepted.len() as u64;
    wait_settled(d, t0, config.settle_within, |s| s.published == n && s.queue_depth == n).await?;
    crate::progress::step(&format!("{label}: {n} orders wait in Inventory's queue; starting the instances"));

    d.start_inventory().await?;
    let start = Instant::now();
    let (mut progress, mut crashed) = (Vec::new(), None);
    let mut live = crate::progress::Progress::new("scale-out");
    loop {
        let stats: InventoryStats = get_json(d.http().as_ref(), Service::Inventory, "/stats").await?;
        let (t, decided) = (start.elapsed().as_millis() as u64, stats.reserved + stats.failed);
        progress.push((t, decided));
        live.update(|| format!("{decided} of {n} decided, {} instances running", d.inventories_running()));
        if crash && crashed.is_none() && decided >= n / 2 {
            d.crash_inventory(0).await?;
            crashed = Some((t, decided));
            crate::progress::step(&format!("{label}: instance 0 SIGKILLed at {decided} of {n} decided"));
        }
        if decided >= n {
            break;
        }
        if start.elapsed() > config.settle_within {
            bail!("{label}: {decided} of {n} decided after {} s", config.settle_within.as_secs());
        }
        tokio::time::sleep(poll(d.mode())).await;
    }
    let drain = start.elapsed();
    live.finish(&format!("{n} decided in {:.2} s", drain.as_secs_f64()));
    wait_settled(d, t0, config.settle_within, |s| settled(s, n)).await?;
    let end = finish(d).await?;
    Ok(Run {
        mode: d.mode(),
        accepted: placed.accepted.len(),
        refused: placed.refused,
        end,
        traced: Default::default(),
        detail: Detail::ScaleOut(ScaleOut {
            instances,
            backlog: n as usize,
            orders_per_s: crate::reporting::drain::middle_rate(&progress, n, poll(d.mode())),
            drain,
            crashed,
            progress,
        }),
    })
}
