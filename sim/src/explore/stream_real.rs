//! Part C's schedule played on real processes and a real Kafka (`explore --real-brokers
//! --model streaming-kafka`): the same timeline as in the simulation (`stream::play`), each
//! virtual millisecond [`RealTarget::scale`] wall milliseconds, against Part C's deployment
//! started through the same door ([`Deployment::start`]) on real hosts; judged by the same
//! checker (`stream::judged`): what a reader that is not Inventory finds in the topics, read
//! `read_committed`, and what Analytics counts.
//!
//! How each fault is made real:
//!
//! | the schedule's fault | on the real deployment |
//! |---|---|
//! | Inventory or Analytics crashes at a point of its group's n-th batch | the process aborts itself there (the simulation's `CrashingLog` inside it, `crate::fault::served`), its batch count kept across its lives; Inventory is started again at once (Kafka evicts the dead member after the session timeout, 6 s; the new one fences its transactional identity), Analytics once its group could be reset to the beginning (Kafka refuses while the dead member is in it) |
//! | Analytics reset (a replay) | Analytics stopped, its group reset with `kafka-consumer-groups.sh`, started again |
//! | Inventory down for a while | every Inventory process SIGKILLed, started again at the window's end |
//! | the broker down for a while | the Kafka JVM SIGKILLed, started at the window's end (waited for until it serves); not played on the cluster |
//! | the broker hangs for a while | the Kafka JVM SIGSTOPped, SIGCONT at the window's end; not played on the cluster |
//! | a broker of the cluster lost | with `--cluster` (the 3-broker cluster of `scripts/brokers.sh up --cluster kafka`): broker 1 SIGKILLed, started again after the case; a schedule's first loss only |
//! | a duplicate, a malformed record | appended by the harness's own client |
//! | a consumer's fetches going silent | the process's own `SilencedLog` (hidden `--lab-silence-on-usr1`) silences its members on SIGUSR1, sent at the schedule's moment |
//! | a broker loss on one broker, a scaled-out Inventory's crash | not played: `Schedule::for_real` drops them, in both runs |

use std::sync::Arc;
use std::time::Duration;

use campus::{Model, Service};

use super::stream::{judged, play, Hands, Schedule, BATCH};
use super::target::Notes;
use super::{Break, Outcome, RealTarget};
use crate::hosts::{Hosts, LabFlags, Processes};
use crate::streaming_kafka::{Config, Deployment};

/// How long a reset of Analytics' group is tried for: Kafka refuses it while a dead member is
/// still in the group (until its session timeout, 6 s) and cannot answer while it hangs (up to
/// 10 s of a schedule, 50 s at the real runs' 5×); each try starts Kafka's tool, a JVM.
const RESET_WITHIN: Duration = Duration::from_secs(180);

/// Plays `schedule` (as [`Schedule::for_real`] left it) on real processes, its orders' ids
/// drawn from `seed` as in the simulation.
pub async fn run(schedule: &Schedule, seed: u64, broken: Option<Break>, target: &RealTarget) -> anyhow::Result<Outcome> {
    if !schedule.for_real(target.cluster).1.is_empty() {
        anyhow::bail!("the schedule has a fault this deployment cannot be made to suffer (Schedule::for_real drops it)");
    }
    let lab: LabFlags = {
        let schedule = schedule.clone();
        Arc::new(move |service, _, dir| schedule.served_faults(service, broken, dir).flags())
    };
    let processes = Processes::new(&target.exe, Model::StreamingKafka, "explore", target.place.clone()).await?.with_lab_flags(lab);
    let config = Config { stock: schedule.stock, batch: BATCH, ..Config::default() };
    let d = Deployment::start(Hosts::Real(Box::new(processes)), &config).await?;
    let inventories = usize::from(schedule.inventories.max(1));
    let notes = Notes::new();
    let outcome = async {
        d.start_inventories(inventories).await?;
        d.start_analytics(schedule.throttle_per_s).await?;
        let (inventory_down, downs) = flume::unbounded();
        let (reset, resets) = flume::unbounded();
        let (inventory_crashed, inventory_crashes) = flume::unbounded();
        let (analytics_crashed, analytics_crashes) = flume::unbounded();
        let supervisors: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> = vec![
            Box::pin(watch_aborted(&d, inventory_crashed, analytics_crashed)),
            Box::pin(supervise_inventory(&d, inventories, (inventory_crashes, downs), &notes)),
            Box::pin(supervise_analytics(&d, schedule.throttle_per_s, (analytics_crashes, resets), &notes)),
        ];
        let drive = async {
            let events = schedule.events(seed);
            let note = |line: String| notes.note(line);
            let stall = |consumer: super::stream::Consumer| {
                let service = consumer.service();
                match d.silence(service) {
                    Ok(()) => notes.note(format!("{service}'s fetches silenced (SIGUSR1)")),
                    Err(e) => notes.note(format!("{service}'s fetches could not be silenced: {e:#}")),
                }
            };
            let hands = Hands { note: &note, raw: d.log(), inventory_down, reset, stall: &stall };
            play(schedule, &events, &d, &hands, target.scale).await?;
            let reader = d.log();
            let (violations, business) = judged(schedule, &events, &d, reader.as_ref(), &note).await?;
            anyhow::Ok(Outcome { violations, business, ..Outcome::default() })
        };
        super::while_running(drive, supervisors).await
    }
    .await;
    d.teardown().await;
    let mut outcome = outcome?;
    outcome.trace = notes.take();
    Ok(outcome)
}

/// Hands each process that aborted itself (its crash point) to its supervisor.
async fn watch_aborted(d: &Deployment<'_>, inventory: flume::Sender<usize>, analytics: flume::Sender<()>) {
    loop {
        for (service, instance) in d.aborted().await {
            let _ = match service {
                Service::Inventory => inventory.send(instance).map_err(drop),
                Service::Analytics => analytics.send(()).map_err(drop),
                _ => Ok(()),
            };
        }
    }
}

/// Inventory: started again at once after a crash (unless it is held down then), and taken
/// down for a window when the schedule says so. A process that ended any other way (a loop
/// that gave up under `--break no-reconnect`) stays dead, as in the simulation.
async fn supervise_inventory(
    d: &Deployment<'_>,
    inventories: usize,
    (crashes, downs): (flume::Receiver<usize>, flume::Receiver<Duration>),
    notes: &Notes,
) {
    loop {
        tokio::select! {
            biased;
            Ok(away) = downs.recv_async() => {
                for k in d.running(Service::Inventory) {
                    if let Err(e) = d.kill(Service::Inventory, k).await {
                        notes.note(format!("inventory #{k} could not be killed: {e:#}"));
                    }
                }
                tokio::time::sleep(away).await;
                // Crashes announced while it was down are over: it starts now anyway.
                while crashes.try_recv().is_ok() {}
                match d.start_inventories(inventories).await {
                    Ok(()) => notes.note("inventory started again".into()),
                    Err(e) => notes.note(format!("inventory could not be started again: {e:#}")),
                }
            }
            // Only a single Inventory crashes (`Schedule::for_real`).
            Ok(_) = crashes.recv_async() => {
                notes.note("CRASH inventory (aborted at its crash point)".into());
                match d.start_inventory().await {
                    Ok(()) => notes.note("inventory restarted".into()),
                    Err(e) => notes.note(format!("inventory could not be restarted: {e:#}")),
                }
            }
            else => return,
        }
    }
}

/// Analytics: after a crash or a reset request, its group goes back to the beginning and a
/// new Analytics starts, its aggregate empty (as in the simulation).
async fn supervise_analytics(
    d: &Deployment<'_>,
    throttle: Option<u32>,
    (crashes, resets): (flume::Receiver<()>, flume::Receiver<()>),
    notes: &Notes,
) {
    loop {
        tokio::select! {
            biased;
            Ok(()) = crashes.recv_async() => notes.note("CRASH analytics (aborted at its crash point)".into()),
            Ok(()) = resets.recv_async() => {
                if let Err(e) = d.stop_analytics().await {
                    notes.note(format!("analytics could not be stopped: {e:#}"));
                }
            }
            else => return,
        }
        let deadline = tokio::time::Instant::now() + RESET_WITHIN;
        let reset = loop {
            match d.reset_analytics().await {
                Ok(_) => break Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => break Err(e),
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        // Started only on a group back at the beginning: a new Analytics reading on from the
        // group's last commit would rebuild only the records after it, and never settle.
        if let Err(e) = reset {
            notes.note(format!("analytics' group could not be reset within {} s, so it stays down: {e:#}", RESET_WITHIN.as_secs()));
            continue;
        }
        match d.start_analytics(throttle).await {
            Ok(()) => notes.note("analytics group reset to the beginning; rebuilding".into()),
            Err(e) => notes.note(format!("analytics could not be started again: {e:#}")),
        }
    }
}
