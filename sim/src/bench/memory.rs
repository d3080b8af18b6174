//! A service's memory after many orders (`campus-sim --real-brokers bench --memory N`): each
//! model's services as real processes, `N` orders through them in ten equal steps, and after
//! each step every process's resident memory (`VmRSS`) and its peak so far (`VmHWM`), read from
//! `/proc/<pid>/status`. Memory that grows with the orders handled shows as a peak that climbs
//! step after step; bounded state shows as a flat line after the first steps.
//!
//! Part A: 16 clients in a closed loop on Order. Part B: 32 clients, each step waited out until
//! every order is decided and notified. Part C: the producer fed in batches of 500, each step
//! waited out until Analytics has counted every outcome. Stock is large enough that every order
//! is reserved (the work, and the state, of the common case).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use campus::Model;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::settled;
use crate::hosts::{Hosts, Place};
use crate::reporting::csv::{self, Fixed, Row};
use crate::reporting::text_table;
use crate::simulator::world::{self, Scope, Stream};
use crate::sync_rest::load::{drive, Door};
use crate::{async_rabbitmq, streaming_kafka, sync_rest, workload, Mode};
use campus::faults::FaultPlan;

pub const MEMORY_CSV: &str = "memory.csv";

/// The steps `N` orders are sent in.
const STEPS: u64 = 10;
/// Units of each item: no order runs out.
const STOCK: u32 = 1_000_000_000;
/// How long one step may take to settle.
const SETTLE_WITHIN: Duration = Duration::from_secs(600);

/// One line of `memory.csv`: one service process after `orders` orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryRow {
    pub model: String,
    pub mode: Mode,
    pub service: String,
    pub orders: u64,
    pub rss_mb: Fixed<1>,
    pub peak_rss_mb: Fixed<1>,
}

impl Row for MemoryRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// A process's resident memory now and at its peak, in MiB.
fn resident(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

fn measure(model: Model, pids: &[(String, u32)], orders: u64, rows: &mut Vec<MemoryRow>) -> anyhow::Result<()> {
    let mut line = Vec::new();
    for (service, pid) in pids {
        let (rss, peak) = resident(*pid)?;
        line.push(format!("{service} {rss:.0} MiB"));
        rows.push(MemoryRow {
            model: model.name().to_owned(),
            mode: Mode::Real,
            service: service.clone(),
            orders,
            rss_mb: Fixed(rss),
            peak_rss_mb: Fixed(peak),
        });
    }
    crate::progress::step(&format!("{}: {orders} orders: {}", model.name(), line.join(", ")));
    Ok(())
}

fn orders(model: Model, seed: u64, step: u64, n: usize) -> Vec<campus::domain::OrderRequest> {
    workload::orders(&mut world::stream(seed, model, &Scope::Bench { round: step }, Stream::Workload), n)
}

async fn sync_rest(exe: &Path, n: u64, seed: u64, rows: &mut Vec<MemoryRow>) -> anyhow::Result<()> {
    let hosts = Hosts::real(exe, Model::SyncRest, "memory", Place::default()).await?;
    let d = sync_rest::Deployment::start(hosts, &sync_rest::Settings::new(STOCK, Duration::from_secs(5)), &FaultPlan::healthy()).await?;
    let result = async {
        let pids = d.pids();
        for step in 1..=STEPS {
            let (answers, _) =
                drive(Door::rest(d.client()), orders(Model::SyncRest, seed, step, (n / STEPS) as usize), 16, Duration::from_secs(10)).await;
            let failed = answers.iter().filter(|a| a.status != 201).count();
            anyhow::ensure!(failed == 0, "sync-rest: {failed} orders not answered 201");
            measure(Model::SyncRest, &pids, step * (n / STEPS), rows)?;
        }
        Ok(())
    }
    .await;
    d.teardown().await;
    result
}

async fn async_rabbitmq(exe: &Path, n: u64, seed: u64, amqp_url: &str, rows: &mut Vec<MemoryRow>) -> anyhow::Result<()> {
    let config = async_rabbitmq::Config { stock: STOCK, ..async_rabbitmq::Config::default() };
    let hosts = Hosts::real(exe, Model::AsyncRabbitmq, "memory", Place { amqp_url: amqp_url.into(), ..Place::default() }).await?;
    let d = async_rabbitmq::Deployment::start(hosts, &config, 1).await?;
    let result = async {
        let pids = d.pids();
        for step in 1..=STEPS {
            let (answers, _) = drive(
                Door::rest(d.order_client()),
                orders(Model::AsyncRabbitmq, seed, step, (n / STEPS) as usize),
                32,
                Duration::from_secs(30),
            )
            .await;
            let refused = answers.iter().filter(|a| a.status != 202).count();
            anyhow::ensure!(refused == 0, "async-rabbitmq: {refused} orders not accepted");
            let total = step * (n / STEPS);
            settled(&format!("async-rabbitmq: {total} orders decided and notified"), SETTLE_WITHIN, || async {
                let s = async_rabbitmq::sample(&d, Instant::now()).await?;
                Ok(s.reserved + s.failed >= total && s.notified >= s.reserved)
            })
            .await?;
            measure(Model::AsyncRabbitmq, &pids, total, rows)?;
        }
        Ok(())
    }
    .await;
    d.teardown().await;
    result
}

async fn streaming_kafka(exe: &Path, n: u64, seed: u64, bootstrap: &str, rows: &mut Vec<MemoryRow>) -> anyhow::Result<()> {
    let config = streaming_kafka::Config { seed, events: n as usize, stock: STOCK, ..streaming_kafka::Config::default() };
    let hosts = Hosts::real(exe, Model::StreamingKafka, "memory", Place { bootstrap: bootstrap.into(), ..Place::default() }).await?;
    let d = streaming_kafka::Deployment::start(hosts, &config).await?;
    let result = async {
        d.start_inventory().await?;
        d.start_analytics(None).await?;
        let pids = d.pids();
        let events = config.events();
        for (step, chunk) in (1..).zip(events.chunks((n / STEPS) as usize)) {
            for batch in chunk.chunks(500) {
                d.produce(batch).await?;
            }
            let total = step * (n / STEPS);
            settled(&format!("streaming-kafka: {total} orders decided and counted"), SETTLE_WITHIN, || async {
                Ok(d.metrics().await.map_or(0, |m| m.outcomes_seen as u64) >= total)
            })
            .await?;
            measure(Model::StreamingKafka, &pids, total, rows)?;
        }
        Ok(())
    }
    .await;
    d.teardown().await;
    result
}

/// Runs `n` orders through each model `wants`, writes `memory.csv` and prints the table.
pub fn run(out: &Path, n: u64, wants: impl Fn(Model) -> bool, config: &super::Config) -> anyhow::Result<Vec<MemoryRow>> {
    let exe = std::env::current_exe().context("locating the campus-sim executable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    let seed = config.seed;
    runtime.block_on(async {
        if wants(Model::SyncRest) {
            println!("bench memory sync-rest: {n} orders through Order, Inventory and Notification");
            sync_rest(&exe, n, seed, &mut rows).await?;
        }
        if wants(Model::AsyncRabbitmq) {
            println!("bench memory async-rabbitmq: {n} orders over RabbitMQ");
            async_rabbitmq(&exe, n, seed, &config.amqp_url, &mut rows).await?;
        }
        if wants(Model::StreamingKafka) {
            println!("bench memory streaming-kafka: {n} events through the producer, Inventory and Analytics");
            streaming_kafka(&exe, n, seed, &config.bootstrap_servers, &mut rows).await?;
        }
        anyhow::Ok(())
    })?;
    csv::merge(&out.join(MEMORY_CSV), Mode::Real, rows.clone())?;
    let (first, all) = (n / STEPS, STEPS * (n / STEPS));
    let last: Vec<Vec<String>> = rows.iter().filter(|r| r.orders == first || r.orders == all).map(csv::cells).collect();
    println!("\n{}", text_table(&csv::header::<MemoryRow>(), &last));
    Ok(rows)
}
