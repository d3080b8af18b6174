//! What Part C's experiments do to and read from a deployment, whichever experiment: feeding
//! the producer, each group's lag, the wait until every consumer caught up, and the final
//! accounting (Analytics' metrics, Inventory's state, the decisions in the log).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use campus::domain::OrderPlaced;
use campus::transport::log::{EventLog, LogError, Topic};
use tokio::time::Instant;

use super::{decisions, Deployment, LagSample, Run, ANALYTICS_GROUP};

/// What the producer has appended so far, over every [`produce`] call that shares it: the
/// events the log acknowledged, and how long each append took to be acknowledged.
#[derive(Debug, Default)]
pub(super) struct Produced {
    events: AtomicUsize,
    appends: Mutex<Vec<Duration>>,
}

impl Produced {
    pub fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    /// The median time an append took to be acknowledged.
    pub fn append_p50(&self) -> Option<Duration> {
        let mut appends = self.appends.lock().expect("appends lock").clone();
        appends.sort();
        (!appends.is_empty()).then(|| crate::reporting::percentile(&appends, 50.0))
    }
}

/// Hands `events` to the producer `batch` at a time, at most `rate` events per second (from
/// this call's start) if given, counting them into `produced`. Returns how long it took.
pub(super) async fn produce(
    d: &Deployment<'_>,
    events: &[OrderPlaced],
    batch: usize,
    rate: Option<u32>,
    produced: &Produced,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut sent = 0;
    for chunk in events.chunks(batch) {
        if let Some(rate) = rate {
            tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / f64::from(rate))).await;
        }
        let append = Instant::now();
        d.produce(chunk).await?;
        produced.appends.lock().expect("appends lock").push(append.elapsed());
        sent += chunk.len();
        produced.events.fetch_add(chunk.len(), Ordering::Relaxed);
    }
    Ok(started.elapsed())
}

/// `group`'s lag on both workflow topics, per partition.
pub(super) async fn lag_of(log: &dyn EventLog, group: &str, t0: Instant) -> Result<Vec<LagSample>, LogError> {
    let t_ms = t0.elapsed().as_millis() as u64;
    let mut samples = Vec::new();
    for topic in Topic::EVENTS {
        let ends = log.end_offsets(topic).await?;
        let committed = log.committed(group, topic).await?;
        for (partition, (end_offset, committed)) in ends.into_iter().zip(committed).enumerate() {
            samples.push(LagSample { t_ms, topic, partition: partition as u32, end_offset, committed });
        }
    }
    Ok(samples)
}

/// True once Analytics has seen every order and every decision (so Inventory decided them
/// all) and its group has committed everything there is to read.
pub(super) async fn caught_up(d: &Deployment<'_>, events: usize) -> anyhow::Result<bool> {
    let metrics = d.metrics().await?;
    if (metrics.orders_seen, metrics.outcomes_seen) != (events, events) {
        return Ok(false);
    }
    let lag: u64 = lag_of(d.log().as_ref(), ANALYTICS_GROUP, Instant::now()).await?.iter().map(LagSample::lag).sum();
    Ok(lag == 0)
}

pub(super) async fn wait_caught_up(d: &Deployment<'_>, events: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    // An answer the broker or a service cannot give now (a restart) means "not yet".
    while !caught_up(d, events).await.unwrap_or(false) {
        if Instant::now() > deadline {
            bail!("analytics did not catch up within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The run's final accounting: Analytics' metrics, Inventory's state and what a
/// `read_committed` reader that is not Inventory finds in the log.
pub(super) async fn account(d: &Deployment<'_>, events: &[OrderPlaced], run: &mut Run) -> anyhow::Result<()> {
    run.metrics = Some(d.metrics().await?.metrics());
    run.inventory = Some(d.inventory_stats().await?);
    run.decisions = Some(decisions::read(d.log().as_ref(), events).await?);
    Ok(())
}
