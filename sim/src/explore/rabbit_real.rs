//! Part B's schedule played on real processes and a real RabbitMQ (`explore --real-brokers`):
//! the same timeline as in the simulation (`Schedule::timeline`, played by `rabbit::play`), each virtual millisecond
//! [`RealTarget::scale`] wall milliseconds, against Part B's deployment started through the
//! same door ([`Deployment::start`]) on real hosts; judged by the same checker (`rabbit::judged`) on
//! what the real services and queues hold at the end.
//!
//! How each fault is made real:
//!
//! | the schedule's fault | on the real deployment |
//! |---|---|
//! | a consumer crashes at a point of its n-th delivery | the process aborts itself there (the simulation's `CrashingQueue` inside it, `crate::fault::served`); the harness restarts it `RESTART_AFTER` × scale later |
//! | Inventory down for a while | every Inventory process SIGKILLed, started again at the window's end |
//! | the broker down for a while | `rabbitmqctl stop_app`, `start_app` at the window's end (waited for until it serves) |
//! | a duplicate, a malformed message | published by the harness on the run's exchange |
//! | the node the services use lost | not played on one node: `explore` drops it from the schedule, in both runs |
//!
//! A step that takes longer than its slot (stopping or starting the broker takes seconds) holds
//! back the steps after it: the timeline keeps its order, not its exact times.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use campus::transport::queue::QueueName;
use campus::{Model, Service};
use tokio::time::Instant;

use super::rabbit::{judged, play, Injected, Publisher, Schedule, Timeline, INSTANCE_NAMES, RESTART_AFTER, SETTLE_WITHIN};
use super::target::Notes;
use super::{Break, Outcome, RealTarget};
use crate::async_rabbitmq::observe::{sample, settled};
use crate::async_rabbitmq::{Config, Deployment};
use crate::hosts::{Hosts, LabFlags, Processes};

/// Plays `schedule` (as [`Schedule::for_real`] left it) on real processes.
pub async fn run(schedule: &Schedule, broken: Option<Break>, target: &RealTarget) -> anyhow::Result<Outcome> {
    if !schedule.for_real(target.cluster).1.is_empty() {
        anyhow::bail!("the schedule has a fault this deployment cannot be made to suffer (Schedule::for_real drops it)");
    }
    let lab: LabFlags = {
        let schedule = schedule.clone();
        Arc::new(move |service, instance, dir| schedule.served_faults(service, instance, broken, dir).flags())
    };
    let processes = Processes::new(&target.exe, Model::AsyncRabbitmq, "explore", target.place.clone()).await?.with_lab_flags(lab);
    let config = Config { prefetch: schedule.prefetch, stock: schedule.stock, ..Config::default() };
    let d = Deployment::start(Hosts::Real(Box::new(processes)), &config, schedule.inventories.max(1)).await?;
    let notes = Notes::new();
    let held_down = Cell::new(false);
    let supervisor = Box::pin(restart_crashed(&d, &held_down, &notes, target.scale));
    let outcome = super::while_running(drive(schedule, &d, &held_down, &notes, target.scale), vec![supervisor]).await;
    d.teardown().await;
    let mut outcome = outcome?;
    outcome.trace = notes.take();
    Ok(outcome)
}

/// The real counterpart of the simulation's supervisors: an instance that aborted itself (its
/// crash point) is started again `RESTART_AFTER` (scaled) later, unless Inventory is held down
/// then (it starts with the others when the window ends); a start that fails (a process that
/// waited for the database longer than the READY bound) is tried again as long as the run goes
/// on. An instance that ended any other way (a loop that gave up under `--break
/// no-reconnect`) stays dead, as in the simulation.
async fn restart_crashed(d: &Deployment<'_>, held_down: &Cell<bool>, notes: &Notes, scale: u32) {
    loop {
        for (service, instance) in d.aborted().await {
            let name = if service == Service::Inventory { INSTANCE_NAMES[instance].to_owned() } else { service.to_string() };
            notes.note(format!("CRASH {name} (aborted at its crash point)"));
            loop {
                tokio::time::sleep(RESTART_AFTER * scale).await;
                if (service == Service::Inventory && held_down.get()) || d.is_running(service, instance) {
                    break;
                }
                match d.start_instance(service, instance).await {
                    Ok(()) => break notes.note(format!("{name} restarted")),
                    Err(e) => notes.note(format!("{name} could not be restarted: {e:#}; trying again")),
                }
            }
        }
    }
}

async fn drive(schedule: &Schedule, d: &Deployment<'_>, held_down: &Cell<bool>, notes: &Notes, scale: u32) -> anyhow::Result<Outcome> {
    let t0 = notes.t0();
    let Timeline { steps, duplicates, malformed } = schedule.timeline();
    let (mq, publisher) = (d.mq(), Publisher::new(d.mq()));
    let played = play(schedule, steps, d, (&publisher, held_down), &|line| notes.note(line), scale).await?;
    let n = played.count();

    // Settled: every order decided and every reserved one notified, Inventory's queue and the
    // others empty, every malformed message dead-lettered, every service serving — in three
    // readings in a row (a reading cannot see a delivery in hand, unacknowledged). A reading
    // that fails (a crashed service not back yet, the lab's own connection still waiting to
    // reconnect after the broker's return) is one more reading that is not quiet.
    let deadline = Instant::now() + SETTLE_WITHIN;
    let (mut quiet_readings, mut settled_in_time) = (0, false);
    while Instant::now() < deadline {
        let reading = async {
            let s = sample(d, t0).await?;
            // (At least every malformed message: one published again after a failed attempt
            // may be dead-lettered twice, which the checker bounds.)
            let mut quiet = settled(&s, n as u64) && s.dead_lettered >= malformed;
            quiet &= d.is_running(Service::Notification, 0) && d.inventory_up() && publisher.waiting() == 0;
            for queue in [QueueName::OrderInbox, QueueName::NotificationInbox] {
                quiet &= mq.depth(queue).await? == 0;
            }
            anyhow::Ok(quiet)
        };
        let quiet = reading.await.unwrap_or(false);
        quiet_readings = if quiet { quiet_readings + 1 } else { 0 };
        if quiet_readings == 3 {
            settled_in_time = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    notes.note(if settled_in_time { "settled".into() } else { format!("not settled within {} s", SETTLE_WITHIN.as_secs()) });
    let injected = Injected { duplicates, malformed: malformed as usize, malformed_failed: publisher.malformed_failed() };
    let (violations, business) = judged(d, schedule, injected, &played, settled_in_time).await?;
    Ok(Outcome { violations, business, ..Outcome::default() })
}
