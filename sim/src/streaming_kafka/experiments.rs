//! Part C's experiments, step by step: the producer, Inventory and Analytics as tasks, the lag
//! sampled every second, the reset of the Analytics group, and the wait until every consumer
//! caught up. The same code runs over the simulated log and a real Kafka; only the
//! [`Deployment`] differs.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use campus::domain::OrderPlaced;
use campus::retry::Policy;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::tasks::{caught_up, lag_of, metrics_of, produce, start_analytics, start_inventory, wait_caught_up};
use super::{Config, Deployment, Detail, Lag, LagSample, Run, Scenario, ANALYTICS_GROUP};

/// Runs one experiment on a fresh log (fresh topics in real mode).
pub async fn run_experiment(config: &Config, scenario: Scenario, deployment: Deployment<'_>) -> anyhow::Result<Run> {
    let events = config.events();
    let l = deployment.log();
    let policy = deployment.policy();
    let mut run = Run::new(deployment.mode(), &events, Detail::Produce);
    let result = async {
        match scenario {
            Scenario::Produce => {
                run.produce = produce(l.as_ref(), &events, config.batch, None, policy, &AtomicUsize::new(0)).await?;
                crate::progress::step(&format!("produce: {} events in {:.2} s", events.len(), run.produce.as_secs_f64()));
            }
            Scenario::Lag => lag(config, &l, policy, &events, &mut run).await?,
            Scenario::Replay => replay(config, &l, policy, &events, &mut run).await?,
            Scenario::BrokerRestart => super::broker_restart::run(config, &deployment, &events, &mut run).await?,
        }
        Ok(())
    }
    .await;
    deployment.teardown().await;
    result.map(|()| run)
}

async fn lag(config: &Config, log: &Arc<dyn EventLog>, policy: Policy, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config, policy)?;
    let (state, analytics) = start_analytics(log.clone(), config, Some(config.throttle_per_s), policy);
    let t0 = Instant::now();
    let producer = {
        let (log, events, batch) = (log.clone(), events.to_vec(), config.batch);
        tokio::spawn(async move { produce(log.as_ref(), &events, batch, None, policy, &AtomicUsize::new(0)).await })
    };
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut produced_at = None;
    let mut lag = Lag::default();
    let mut live = crate::progress::Progress::new("lag");
    loop {
        tick.tick().await;
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
        if produced_at.is_none() && producer.is_finished() {
            produced_at = Some(t);
        }
        live.update(|| {
            let phase = if produced_at.is_some() { "catching up" } else { "producing" };
            format!("t={:>3} s ({phase}): analytics lag {total} records (peak {})", t.as_secs(), lag.peak)
        });
        if produced_at.is_some() && total == 0 && caught_up(log.as_ref(), ANALYTICS_GROUP, events.len()).await.unwrap_or(false) {
            lag.catch_up = produced_at.map(|p| t.saturating_sub(p));
            live.finish(&format!("caught up at {} s (peak lag {})", t.as_secs(), lag.peak));
            break;
        }
        if t > config.settle_within {
            bail!("lag: analytics did not catch up within {} s (lag {total})", config.settle_within.as_secs());
        }
    }
    run.produce = producer.await.context("the producer panicked")??;
    analytics.stop().await.context("stopping analytics")?;
    inventory.stop().await.context("stopping inventory")?;
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    run.detail = Detail::Lag(lag);
    Ok(())
}

async fn replay(config: &Config, log: &Arc<dyn EventLog>, policy: Policy, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    let (store, inventory) = start_inventory(log.clone(), config, policy)?;
    let (state, analytics) = start_analytics(log.clone(), config, None, policy);
    run.produce = produce(log.as_ref(), events, config.batch, None, policy, &AtomicUsize::new(0)).await?;
    wait_caught_up(log.as_ref(), ANALYTICS_GROUP, events.len(), config.settle_within).await?;
    let before = metrics_of(&state);
    analytics.stop().await.context("stopping analytics")?;
    crate::progress::step("replay: analytics stopped; resetting its group to the beginning");

    // The group has just lost its only member; a broker may take a moment to see it empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.reset_to_beginning(ANALYTICS_GROUP, &Topic::ALL).await {
            Ok(()) => break,
            Err(LogError::GroupActive { .. }) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(e).context("resetting the analytics group"),
        }
    }
    let lag_after_reset: u64 = lag_of(log.as_ref(), ANALYTICS_GROUP, Instant::now()).await?.iter().map(LagSample::lag).sum();
    crate::progress::step(&format!("replay: group reset, {lag_after_reset} records to read again"));
    if lag_after_reset == 0 {
        bail!("replay: the reset left nothing to re-read");
    }
    let (state, analytics) = start_analytics(log.clone(), config, None, policy);
    wait_caught_up(log.as_ref(), ANALYTICS_GROUP, events.len(), config.settle_within).await?;
    analytics.stop().await.context("stopping analytics")?;
    inventory.stop().await.context("stopping inventory")?;
    run.detail = Detail::Replay { before };
    run.metrics = Some(metrics_of(&state));
    run.inventory = Some(store.stats()?);
    Ok(())
}

