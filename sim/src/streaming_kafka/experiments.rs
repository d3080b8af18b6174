//! Part C's experiments, step by step: the producer fed, Inventory and Analytics started,
//! crashed, stopped and started again, the lag sampled every second, the Analytics group reset,
//! and the wait until every consumer caught up. The same code runs over the simulated log and
//! a real Kafka; only the [`Deployment`] differs.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use campus::domain::OrderPlaced;
use campus::transport::log::{LogError, Outgoing, Topic};
use tokio::time::Instant;

use super::tasks::{account, caught_up, lag_of, produce, wait_caught_up, Produced};
use super::{Config, Deployment, Detail, Lag, LagSample, Run, Scenario, ANALYTICS_GROUP};

/// Runs one experiment on a fresh log (fresh topics in real mode).
pub async fn run_experiment(config: &Config, scenario: Scenario, deployment: Deployment<'_>) -> anyhow::Result<Run> {
    let mut events = config.events();
    if scenario == Scenario::Outage {
        events.truncate(config.outage_events());
    }
    let d = &deployment;
    let mut run = Run::new(d.mode(), &events, Detail::Produce);
    let result = async {
        match scenario {
            Scenario::Produce => {
                run.produce = produce(d, &events, config.batch, None, &Produced::default()).await?;
                crate::progress::step(&format!("produce: {} events in {:.2} s", events.len(), run.produce.as_secs_f64()));
            }
            Scenario::Lag => lag(config, d, &events, &mut run).await?,
            Scenario::Replay => replay(config, d, &events, &mut run).await?,
            Scenario::BrokerRestart => {
                super::broker_restart::run(config, d, &events, &mut run, super::broker_restart::Away::Broker).await?
            }
            Scenario::NodeLoss => super::broker_restart::run(config, d, &events, &mut run, super::broker_restart::Away::Node).await?,
            Scenario::ScaleOut { instances, partitions, crash } => {
                super::scale_out::run(config, d, &events, &mut run, instances, partitions, crash).await?
            }
            Scenario::InventoryCrash => inventory_crash(config, d, &events, &mut run).await?,
            Scenario::Outage => super::broker_restart::run(config, d, &events, &mut run, super::broker_restart::Away::Inventory).await?,
            Scenario::Poison => poison(config, d, &events, &mut run).await?,
        }
        Ok(())
    }
    .await;
    run.traced = crate::traces::Traced(deployment.teardown().await);
    result.map(|()| run)
}

async fn lag(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    d.start_inventory().await?;
    d.start_analytics(Some(config.throttle_per_s)).await?;
    let log = d.log();
    let t0 = Instant::now();
    let produced = Produced::default();
    let producing = produce(d, events, config.batch, None, &produced);
    tokio::pin!(producing);
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut produced_at = None;
    let mut lag = Lag::default();
    let mut live = crate::progress::Progress::new("lag");
    loop {
        tokio::select! {
            biased;
            took = &mut producing, if produced_at.is_none() => {
                run.produce = took?;
                produced_at = Some(t0.elapsed());
                continue;
            }
            _ = tick.tick() => {}
        }
        // A sample the broker cannot answer now (it is restarting) is skipped.
        let samples = match lag_of(log.as_ref(), ANALYTICS_GROUP, t0).await {
            Ok(samples) => samples,
            Err(e) if e.is_transient() && t0.elapsed() <= config.settle_within => continue,
            Err(e) => return Err(e.into()),
        };
        let total: u64 = samples.iter().map(LagSample::lag).sum();
        lag.peak = lag.peak.max(total);
        let t = t0.elapsed();
        lag.samples.extend(samples);
        live.update(|| {
            let phase = if produced_at.is_some() { "catching up" } else { "producing" };
            format!("t={:>3} s ({phase}): analytics lag {total} records (peak {})", t.as_secs(), lag.peak)
        });
        if produced_at.is_some() && total == 0 && caught_up(d, events.len()).await.unwrap_or(false) {
            lag.catch_up = produced_at.map(|p| t.saturating_sub(p));
            live.finish(&format!("caught up at {} s (peak lag {})", t.as_secs(), lag.peak));
            break;
        }
        if t > config.settle_within {
            bail!("lag: analytics did not catch up within {} s (lag {total})", config.settle_within.as_secs());
        }
    }
    account(d, events, run).await?;
    run.detail = Detail::Lag(lag);
    Ok(())
}

async fn replay(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    d.start_inventory().await?;
    d.start_analytics(None).await?;
    run.produce = produce(d, events, config.batch, None, &Produced::default()).await?;
    wait_caught_up(d, events.len(), config.settle_within).await?;
    let before = d.metrics().await?.metrics();
    d.stop_analytics().await?;
    crate::progress::step("replay: analytics stopped; resetting its group to the beginning");

    // The group has just lost its only member; a broker may take a moment to see it empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    let command = loop {
        match d.reset_analytics().await {
            Ok(command) => break command,
            Err(e) if matches!(e.downcast_ref::<LogError>(), Some(LogError::GroupActive { .. })) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => return Err(e).context("resetting the analytics group"),
        }
    };
    let lag_after_reset: u64 = lag_of(d.log().as_ref(), ANALYTICS_GROUP, Instant::now()).await?.iter().map(LagSample::lag).sum();
    crate::progress::step(&format!("replay: `{command}`: {lag_after_reset} records to read again"));
    if lag_after_reset == 0 {
        bail!("replay: the reset left nothing to re-read");
    }
    d.start_analytics(None).await?;
    wait_caught_up(d, events.len(), config.settle_within).await?;
    account(d, events, run).await?;
    run.detail = Detail::Replay { before, command };
    Ok(())
}

/// Inventory killed a third of the way in (its memory gone), started again at once while the
/// producer goes on: it restores from its changelog and reads on from its committed offsets.
async fn inventory_crash(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    d.start_inventory().await?;
    d.start_analytics(None).await?;
    let t0 = Instant::now();
    let (batch, rate) = (config.batch.min(50), Some(config.produce_rate));
    let produced = Produced::default();
    let (before, after) = events.split_at(events.len() / 3);
    let first = produce(d, before, batch, rate, &produced).await?;
    let killed_after = produced.events() as u64;
    let restart = async {
        d.kill_inventory().await?;
        crate::progress::step(&format!("inventory-crash: inventory killed after {killed_after} events appended; starting it again"));
        d.start_inventory().await?;
        anyhow::Ok(t0.elapsed().as_millis() as u64)
    };
    let (restarted, rest) = tokio::join!(restart, produce(d, after, batch, rate, &produced));
    let restarted_ms = restarted?;
    run.produce = first + rest?;
    wait_caught_up(d, events.len(), config.settle_within).await?;
    account(d, events, run).await?;
    run.detail = Detail::InventoryCrash { killed_after, restarted_ms };
    Ok(())
}

/// The malformed records of `poison`, cycling through the three reasons a consumer refuses a
/// record: not JSON, JSON of the wrong shape, an unknown schema version.
pub fn poison_records(n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| {
            let value: Bytes = match i % 3 {
                0 => Bytes::from_static(b"{\"schema_version\": 1, \"event\": {\"type\": \"OrderPl"),
                1 => Bytes::from_static(b"{\"schema_version\": 1, \"event\": {\"type\": \"OrderPlaced\", \"order\": \"?\"}}"),
                _ => Bytes::from_static(b"{\"schema_version\": 99, \"event\": {\"type\": \"OrderPlaced\"}}"),
            };
            Outgoing::new(Topic::OrderEvents, format!("poison-{i:04}"), value)
        })
        .collect()
}

/// `--poison` malformed records appended (by the lab, as a faulty producer would) among the
/// events: Inventory dead-letters each with its reason and decides every good order.
async fn poison(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    d.start_inventory().await?;
    d.start_analytics(None).await?;
    let log = d.log();
    let started = Instant::now();
    let bad = poison_records(config.poison);
    let chunks: Vec<&[OrderPlaced]> = events.chunks(config.batch).collect();
    let per_chunk = bad.len().div_ceil(chunks.len());
    let mut bad = bad.into_iter();
    // Each share of poison goes in before a chunk of good events, so that good orders follow
    // it on every partition.
    for chunk in chunks {
        let some: Vec<Outgoing> = bad.by_ref().take(per_chunk).collect();
        if !some.is_empty() {
            log.append(some).await?;
        }
        d.produce(chunk).await?;
    }
    run.produce = started.elapsed();
    wait_caught_up(d, events.len(), config.settle_within).await?;
    account(d, events, run).await?;
    run.detail = Detail::Poison { injected: config.poison };
    Ok(())
}
