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
//! `outage` takes Inventory away instead (Part B's outage, over the log): the producer at
//! `--outage-rate`, Inventory killed after the lead and started again `--down-for` later. The
//! broker serves throughout: what piles up is Inventory's lag, and nothing is refused.
//!
//! `node-loss` runs the same on a 3-broker cluster, with broker 1 (real: `scripts/brokers.sh
//! kill kafka-node 1`, then `up --cluster kafka`; simulated: the world's node loss) in place of
//! the broker: the cluster goes on answering, so the lags are read throughout.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::bail;
use campus::domain::OrderPlaced;
use campus::streaming_kafka::consumers::INVENTORY_GROUP;
use campus::transport::log::{EventLog, LogError, Topic};
use campus::Model;
use tokio::time::Instant;

use super::tasks::{account, caught_up, completed, lag_of, produce, produce_on, Produced};
use super::{Config, Deployment, Detail, LagSample, Restart, RestartSample, Run, ANALYTICS_GROUP};
use crate::simulator::world::{self, Scope, Stream};

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
    /// Inventory (`outage`).
    Inventory,
}

pub async fn run(config: &Config, d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run, away: Away) -> anyhow::Result<()> {
    let (name, down_for, rate) = match away {
        Away::Broker => ("broker-restart", config.broker_down_for, config.produce_rate),
        Away::Node => ("node-loss", config.node_down_for, config.produce_rate),
        Away::Inventory => ("outage", config.down_for, config.outage_rate),
    };
    let what = if away == Away::Inventory { "inventory" } else { "broker" };
    let log = d.log();
    d.start_inventory().await?;
    d.start_analytics(None).await?;
    let t0 = Instant::now();
    let produced = Produced::default();
    // One event per batch at the outage's rate, arriving as `--arrivals` says (Part B's
    // orders arrive one by one).
    let producing = match away {
        Away::Inventory => {
            let mut rng = world::stream(config.seed, Model::StreamingKafka, &Scope::Experiment(name), Stream::Arrivals);
            Box::pin(produce_on(d, events, 1, config.arrivals.offsets(rate, events.len(), &mut rng), &produced))
                as Pin<Box<dyn Future<Output = anyhow::Result<Duration>> + Send + '_>>
        }
        Away::Broker | Away::Node => Box::pin(produce(d, events, config.batch.min(50), Some(rate), &produced)),
    };
    tokio::pin!(producing);
    let mut producer_done = false;
    let kill_at = match away {
        Away::Inventory => (config.outage_lead.as_secs() * u64::from(rate)) as usize,
        Away::Broker | Away::Node => events.len() / 3,
    };
    let (mut down_ms, mut up_ms) = (None::<u64>, None::<u64>);
    let mut restart = Restart::default();
    // The outage samples four times a second: its backlog drains within about a second.
    let every = if away == Away::Inventory { Duration::from_millis(250) } else { Duration::from_secs(1) };
    let mut tick = tokio::time::interval_at(t0, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut live = crate::progress::Progress::new(name);
    let deadline = Duration::from_secs_f64(events.len() as f64 / f64::from(rate)) + down_for + config.settle_within;
    // Starting a real broker takes seconds (a JVM, log recovery): the sampling goes on meanwhile.
    let mut starting: Option<Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>> = None;
    let mut taking: Option<Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>> = None;
    let recovered_ms = loop {
        tokio::select! {
            biased;
            took = &mut producing, if !producer_done => {
                run.produce = took?;
                producer_done = true;
                continue;
            }
            _ = tick.tick() => {}
            taken = async { taking.as_mut().expect("guarded").await }, if taking.is_some() => {
                taken?;
                taking = None;
                crate::progress::step(&format!("{name}: {what} down at {:.1} s", down_ms.unwrap_or(0) as f64 / 1e3));
            }
            started = async { starting.as_mut().expect("guarded").await }, if starting.is_some() => {
                started?;
                starting = None;
                up_ms = Some(t0.elapsed().as_millis() as u64);
                crate::progress::step(&format!("{name}: {what} back at {:.1} s", t0.elapsed().as_secs_f64()));
            }
        }
        let done_producing = produced.events();
        if down_ms.is_none() && done_producing >= kill_at {
            // Away from the moment it is taken; the taking goes on beside the producer and the
            // sampling (the simulation's kill waits out the group's session timeout).
            down_ms = Some(t0.elapsed().as_millis() as u64);
            taking = Some(match away {
                Away::Broker => Box::pin(d.stop_broker()),
                Away::Node => Box::pin(d.lose_node()),
                Away::Inventory => Box::pin(d.kill_inventory()),
            });
            crate::progress::step(&format!("{name}: taking the {what} down, {done_producing} events appended"));
        }
        if let (Some(down), None, None, None) = (down_ms, up_ms, starting.as_ref(), taking.as_ref()) {
            if t0.elapsed() >= Duration::from_millis(down) + down_for {
                starting = Some(match away {
                    Away::Broker => Box::pin(d.start_broker()),
                    Away::Node => Box::pin(d.restore_node()),
                    Away::Inventory => Box::pin(d.start_inventory()),
                });
            }
        }
        let broker_up = down_ms.is_none() || up_ms.is_some();
        // A cluster that lost a node still answers, and so does a broker without Inventory: ask
        // them throughout.
        let ask = broker_up || away != Away::Broker;
        let (inventory_lag, analytics_lag) = if ask { lags(log.as_ref(), t0).await } else { (None, None) };
        restart.peak_lag = restart.peak_lag.max(analytics_lag.unwrap_or(0));
        restart.peak_inventory_lag = restart.peak_inventory_lag.max(inventory_lag.unwrap_or(0));
        // Orders whose outcome Analytics has counted (Analytics runs throughout the outage).
        let decided = if away == Away::Inventory {
            tokio::time::timeout(SAMPLE_WITHIN, d.metrics()).await.ok().and_then(Result::ok).map(|m| m.outcomes_seen as u64)
        } else {
            None
        };
        let t_ms = t0.elapsed().as_millis() as u64;
        let sample = RestartSample { t_ms, broker_up, produced: produced.events() as u64, inventory_lag, analytics_lag, decided };
        // One sample per instant: a change seen in the same millisecond as the tick before it
        // (the broker or Inventory taken or back) replaces that tick's sample.
        match restart.samples.last_mut() {
            Some(last) if last.t_ms == t_ms => *last = sample,
            _ => restart.samples.push(sample),
        }
        // Drained: every order appended before the return has its outcome.
        if let (Some(up), Some(decided), None) = (up_ms, decided, restart.drained) {
            let before_return = restart.samples.iter().rfind(|s| s.t_ms <= up).map_or(0, |s| s.produced);
            if decided >= before_return {
                restart.drained = Some(Duration::from_millis(t_ms.saturating_sub(up)));
            }
        }
        live.update(|| {
            let show = |l: Option<u64>| l.map_or("?".to_owned(), |l| l.to_string());
            let phase = if up_ms.is_some() {
                "recovering".to_owned()
            } else if down_ms.is_some() {
                format!("{what} down")
            } else {
                "producing".to_owned()
            };
            format!(
                "t={:>3} s ({phase}): produced {}, inventory lag {}, analytics lag {}",
                t_ms / 1000,
                produced.events(),
                show(inventory_lag),
                show(analytics_lag)
            )
        });
        if up_ms.is_some()
            && producer_done
            && analytics_lag == Some(0)
            && inventory_lag == Some(0)
            && caught_up(d, events.len()).await.unwrap_or(false)
        {
            live.finish(&format!("caught up at {:.1} s", t_ms as f64 / 1e3));
            break t_ms;
        }
        if t0.elapsed() > deadline {
            bail!("{name}: the consumers did not catch up within {} s", deadline.as_secs());
        }
    };
    let (down, up) = (down_ms.expect("it was stopped"), up_ms.expect("it was started again"));
    restart.down_window_ms = (down, up);
    restart.append_p50 = produced.append_p50();
    restart.recover = Some(Duration::from_millis(recovered_ms.saturating_sub(up)));
    if away == Away::Inventory {
        restart.orders = completed(d, &produced).await?;
    }
    account(d, events, run).await?;
    run.detail = match away {
        Away::Broker => Detail::BrokerRestart(restart),
        Away::Node => Detail::NodeLoss(restart),
        Away::Inventory => Detail::Outage(restart),
    };
    Ok(())
}
