//! Part C's `broker-restart` experiment: the producer appends at `--produce-rate`, Inventory
//! and Analytics consume; a third of the way in, the broker is killed (simulated: the world's
//! outage; real: SIGKILL of the Kafka JVM) and after `--broker-down-for` started again (real:
//! `scripts/brokers.sh up kafka`, which waits until it serves). Nothing else is restarted: the
//! producer appends again what was not acknowledged, the consumers retry where they failed and
//! read on from their committed offsets.
//!
//! What it shows: every order decided exactly once by Inventory (its transactions and its
//! dedup absorb the records read or appended twice), the metrics equal to the workload, the lag
//! while the broker is away and the time to recover once it is back.
//!
//! `node-loss` runs the same on a 3-broker cluster, with broker 1 (real: `scripts/brokers.sh
//! kill kafka-node 1`, then `up --cluster kafka`; simulated: the world's node loss) in place of
//! the broker: the cluster goes on answering, so the lags are read throughout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::bail;
use campus::domain::OrderPlaced;
use campus::services::streaming::INVENTORY_GROUP;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::tasks::{account, caught_up, lag_of, produce};
use super::{Config, Deployment, Detail, LagSample, Restart, RestartSample, Run, ANALYTICS_GROUP};

/// How long one lag sample may take: a broker that does not answer within it is counted as
/// away for that second.
const SAMPLE_WITHIN: Duration = Duration::from_secs(2);

/// Each group's total lag, or `None` if the broker cannot answer now.
async fn lags(log: &dyn EventLog, t0: Instant) -> (Option<u64>, Option<u64>) {
    let total = |samples: Result<Vec<LagSample>, LogError>| samples.ok().map(|s| s.iter().map(LagSample::lag).sum::<u64>());
    let analytics = tokio::time::timeout(SAMPLE_WITHIN, lag_of(log, ANALYTICS_GROUP, t0)).await.ok().and_then(|s| total(Ok(s.ok()?)));
    let inventory = tokio::time::timeout(SAMPLE_WITHIN, async {
        let ends = log.end_offsets(Topic::OrderEvents).await?;
        let committed = log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?;
        Ok::<u64, LogError>(ends.iter().zip(&committed).map(|(e, c)| e.saturating_sub(*c)).sum())
    })
    .await
    .ok()
    .and_then(Result::ok);
    (inventory, analytics)
}

/// What is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Away {
    /// The broker (the single node).
    Broker,
    /// Broker 1 of a cluster.
    Node,
}

pub async fn run(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run, away: Away) -> anyhow::Result<()> {
    let (name, down_for) = match away {
        Away::Broker => ("broker-restart", config.broker_down_for),
        Away::Node => ("node-loss", config.node_down_for),
    };
    let log = d.log();
    d.start_inventory().await?;
    d.start_analytics(None).await?;
    let t0 = Instant::now();
    let produced = AtomicUsize::new(0);
    let producing = produce(d, events, config.batch.min(50), Some(config.produce_rate), &produced);
    tokio::pin!(producing);
    let mut producer_done = false;
    let kill_at = events.len() / 3;
    let (mut down_ms, mut up_ms) = (None::<u64>, None::<u64>);
    let mut restart = Restart::default();
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut live = crate::progress::Progress::new(name);
    let deadline = Duration::from_secs_f64(events.len() as f64 / f64::from(config.produce_rate)) + down_for + config.settle_within;
    // Starting a real broker takes seconds (a JVM, log recovery): the sampling goes on meanwhile.
    let mut starting: Option<Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>> = None;
    let recovered_ms = loop {
        tokio::select! {
            biased;
            took = &mut producing, if !producer_done => {
                run.produce = took?;
                producer_done = true;
                continue;
            }
            _ = tick.tick() => {}
            started = async { starting.as_mut().expect("guarded").await }, if starting.is_some() => {
                started?;
                starting = None;
                up_ms = Some(t0.elapsed().as_millis() as u64);
                crate::progress::step(&format!("{name}: broker back at {:.1} s", t0.elapsed().as_secs_f64()));
            }
        }
        let done_producing = produced.load(Ordering::Relaxed);
        if down_ms.is_none() && done_producing >= kill_at {
            match away {
                Away::Broker => d.stop_broker().await?,
                Away::Node => d.lose_node().await?,
            }
            down_ms = Some(t0.elapsed().as_millis() as u64);
            crate::progress::step(&format!("{name}: broker down at {:.1} s, {done_producing} events appended", t0.elapsed().as_secs_f64()));
        }
        if let (Some(down), None, None) = (down_ms, up_ms, starting.as_ref()) {
            if t0.elapsed() >= Duration::from_millis(down) + down_for {
                starting = Some(match away {
                    Away::Broker => Box::pin(d.start_broker()),
                    Away::Node => Box::pin(d.restore_node()),
                });
            }
        }
        let broker_up = down_ms.is_none() || up_ms.is_some();
        // A cluster that lost a node still answers: ask it throughout.
        let ask = broker_up || away == Away::Node;
        let (inventory_lag, analytics_lag) = if ask { lags(log.as_ref(), t0).await } else { (None, None) };
        restart.peak_lag = restart.peak_lag.max(analytics_lag.unwrap_or(0));
        let t_ms = t0.elapsed().as_millis() as u64;
        restart.samples.push(RestartSample { t_ms, broker_up, produced: produced.load(Ordering::Relaxed) as u64, inventory_lag, analytics_lag });
        live.update(|| {
            let show = |l: Option<u64>| l.map_or("?".to_owned(), |l| l.to_string());
            let phase = if up_ms.is_some() { "recovering" } else if down_ms.is_some() { "broker down" } else { "producing" };
            format!("t={:>3} s ({phase}): produced {}, inventory lag {}, analytics lag {}", t_ms / 1000, produced.load(Ordering::Relaxed), show(inventory_lag), show(analytics_lag))
        });
        if up_ms.is_some() && producer_done && analytics_lag == Some(0) && inventory_lag == Some(0) && caught_up(d, events.len()).await.unwrap_or(false) {
            live.finish(&format!("caught up at {:.1} s", t_ms as f64 / 1e3));
            break t_ms;
        }
        if t0.elapsed() > deadline {
            bail!("{name}: the consumers did not catch up within {} s", deadline.as_secs());
        }
    };
    let (down, up) = (down_ms.expect("the broker was stopped"), up_ms.expect("the broker was started again"));
    restart.down_window_ms = (down, up);
    restart.recover = Some(Duration::from_millis(recovered_ms.saturating_sub(up)));
    account(d, events, run).await?;
    run.detail = match away {
        Away::Broker => Detail::BrokerRestart(restart),
        Away::Node => Detail::NodeLoss(restart),
    };
    Ok(())
}
