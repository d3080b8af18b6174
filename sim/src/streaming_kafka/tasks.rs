//! What Part C's experiments do to and read from a deployment, whichever experiment: feeding
//! the producer, each group's lag, the wait until every consumer caught up, and the final
//! accounting (Analytics' metrics, Inventory's state, the decisions in the log).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use campus::domain::OrderPlaced;
use campus::transport::log::{EventLog, LogError, Topic};
use campus::Service;
use tokio::time::Instant;

use super::{decisions, Deployment, LagSample, Run, ANALYTICS_GROUP};
use crate::load::{completed_by, Clock, Schedule, Timed};

/// What the producer has appended so far, over every [`produce`] call that shares it: the
/// events the log acknowledged, how long each append took to be acknowledged, and — for a
/// paced producer — each event on the run's clock.
#[derive(Debug, Default)]
pub struct Produced {
    events: AtomicUsize,
    appends: Mutex<Vec<Duration>>,
    timed: Mutex<Vec<Timed>>,
}

impl Produced {
    pub fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    /// The median time an append took to be acknowledged (from its intended start when paced).
    pub fn append_p50(&self) -> Option<Duration> {
        let mut appends = self.appends.lock().expect("appends lock").clone();
        appends.sort();
        (!appends.is_empty()).then(|| crate::reporting::percentile(&appends, 50.0))
    }

    /// Each event appended at a pace, in order: its intended start and its accept (the
    /// producer's 202 once the log acknowledged it).
    pub fn timed(&self) -> Vec<Timed> {
        self.timed.lock().expect("timed lock").clone()
    }
}

/// Hands `events` to the producer `batch` at a time, counting them into `produced`. With a
/// `rate`, at most that many events a second from this call's start, from one sender in order
/// (the producer's watermarks want appends in event-time order): an append that is slow holds
/// back the next, which is charged from its intended start ([`crate::load`]). Returns how long
/// it took.
pub async fn produce(
    d: &Deployment<'_>,
    events: &[OrderPlaced],
    batch: usize,
    rate: Option<u32>,
    produced: &Produced,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let chunks: Vec<&[OrderPlaced]> = events.chunks(batch).collect();
    let Some(rate) = rate else {
        for chunk in chunks {
            let append = Instant::now();
            d.produce(chunk).await?;
            produced.appends.lock().expect("appends lock").push(append.elapsed());
            produced.events.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        return Ok(started.elapsed());
    };
    let offsets = chunks.iter().scan(0, |sent, chunk| {
        let at = Duration::from_secs_f64(*sent as f64 / f64::from(rate));
        *sent += chunk.len();
        Some(at)
    });
    produce_on(d, events, batch, offsets.collect(), produced).await
}

/// Hands `events` to the producer `batch` at a time, chunk `i` at `offsets[i]` from now, from
/// one sender in order (see [`produce`]), counting them into `produced`. Returns how long it
/// took.
pub async fn produce_on(
    d: &Deployment<'_>,
    events: &[OrderPlaced],
    batch: usize,
    offsets: Vec<Duration>,
    produced: &Produced,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let chunks: Vec<&[OrderPlaced]> = events.chunks(batch).collect();
    let schedule = Schedule::starting_at(started, offsets);
    let clock = Clock::of(d.mode());
    let chunks = &chunks;
    crate::load::drive_in_order(&schedule, |i, intended| async move {
        d.produce(chunks[i]).await?;
        let accept = intended.elapsed();
        produced.appends.lock().expect("appends lock").push(accept);
        let intended_ms = clock.ms_at(intended);
        produced.timed.lock().expect("timed lock").extend(chunks[i].iter().map(|e| Timed {
            index: 0,
            order_id: e.order.order_id.as_str().to_owned(),
            intended_ms,
            accept: Some(accept),
            completion: None,
        }));
        produced.events.fetch_add(chunks[i].len(), Ordering::Relaxed);
        anyhow::Ok(())
    })
    .await?;
    let mut timed = produced.timed.lock().expect("timed lock");
    timed.iter_mut().enumerate().for_each(|(i, t)| t.index = i);
    Ok(started.elapsed())
}

/// Each order's completion: when Analytics first counted its outcome (`GET /completions`), on
/// the same clock as its intended start.
pub async fn completed(d: &Deployment<'_>, produced: &Produced) -> anyhow::Result<Vec<Timed>> {
    completed_by(d.observer().as_ref(), Service::Analytics, &produced.timed()).await
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
    run.inventory = Some(d.restored_inventory_stats(Duration::from_secs(60)).await?);
    run.decisions = Some(decisions::read(d.log().as_ref(), events).await?);
    Ok(())
}
