//! Where a part's services run: the simulated [`World`] or real processes on this machine
//! ([`Processes`]). A part's deployment writes its topology once, against [`Hosts`], and never
//! asks which: starting, killing and stopping a service instance, a fault switched, a broker or
//! a broker node taken away and brought back, the lab's own clients of the services and of the
//! broker — each has one method here, and each host applies it its way (the world in virtual
//! time; a process by its flags, SIGKILL and SIGTERM; a broker through `scripts/brokers.sh` or
//! `docker compose`).
//!
//! One vocabulary for what is taken away ([`Away`]), whichever host; every taking away and
//! bringing back is traced (`RUST_LOG=campus_sim=info` shows it, with the time).

pub mod broker;
pub mod compose;
pub mod process;
mod real;

use std::sync::Arc;

use campus::config::ServiceConfig;
use campus::telemetry::SpanSink;
use campus::transport::log::{EventLog, LogError, Topic};
use campus::transport::queue::MessageQueue;
use campus::transport::RequestReply;
use campus::Service;

pub use real::{LabFlags, Place, Processes};

use crate::simulator::world::World;
use crate::Mode;
use campus::faults::FaultPlan;

/// What the lab takes away from a running deployment, and later brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Away {
    /// The broker (RabbitMQ's app stopped; Kafka killed).
    Broker,
    /// The broker node the services are connected to (a node of a cluster).
    Node,
    /// The broker hangs: its connections stay open and nothing answers (RabbitMQ's VM or the
    /// Kafka JVM SIGSTOPped).
    Hang,
    /// The database the services' stores share (Part B on PostgreSQL: stopped, every
    /// connection closed, then started again).
    Database,
}

/// The hosts of one deployment. Every method takes `&self`, so that an experiment can restart
/// a service or bring the broker back while it reads the others.
pub enum Hosts<'w> {
    Sim(&'w World),
    Real(Box<Processes>),
}

impl Hosts<'static> {
    /// Real hosts for `experiment` of `model`: processes of `exe` over the broker `place` names
    /// (see [`Processes::new`]).
    pub async fn real(exe: &std::path::Path, model: campus::Model, experiment: &str, place: Place) -> anyhow::Result<Self> {
        Ok(Hosts::Real(Box::new(Processes::new(exe, model, experiment, place).await?)))
    }
}

impl<'w> Hosts<'w> {
    pub fn mode(&self) -> Mode {
        match self {
            Hosts::Sim(_) => Mode::Sim,
            Hosts::Real(_) => Mode::Real,
        }
    }

    /// Starts instance `instance` of the service `config` names (the host fills in where it
    /// runs: its port, namespace, broker, store).
    pub async fn start(&self, config: &ServiceConfig, instance: usize) -> anyhow::Result<()> {
        self.start_with(config, &FaultPlan::healthy(), instance).await
    }

    /// The same, a faultable service (Part A's Inventory) suffering `plan` from the start.
    pub async fn start_with(&self, config: &ServiceConfig, plan: &FaultPlan, instance: usize) -> anyhow::Result<()> {
        tracing::info!(service = %config.service, instance, fault = %plan, at_ms = crate::simulator::clock::now_ms(), "starting");
        match self {
            Hosts::Sim(world) => world.start(config, plan, instance).await,
            Hosts::Real(processes) => processes.start(config, plan, instance).await,
        }
    }

    /// Instance `instance` of `service` is killed where it stands (SIGKILL; in the simulation
    /// its loops aborted): what it held in memory is gone, its store stays.
    pub async fn kill(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        tracing::info!(%service, instance, at_ms = crate::simulator::clock::now_ms(), "killing");
        match self {
            Hosts::Sim(world) => {
                world.kill(service, instance).await;
                Ok(())
            }
            Hosts::Real(processes) => processes.kill(service, instance).await,
        }
    }

    /// Instance `instance` of `service` stops cleanly (SIGTERM; in the simulation its stop
    /// switch): it finishes what it is doing and leaves its consumer group.
    pub async fn stop(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        tracing::info!(%service, instance, at_ms = crate::simulator::clock::now_ms(), "stopping");
        match self {
            Hosts::Sim(world) => {
                world.stop(service, instance).await;
                Ok(())
            }
            Hosts::Real(processes) => processes.stop(service, instance).await,
        }
    }

    /// Where a service that calls `service` finds it: its first instance's URL (in the
    /// simulation a name the network ignores: calls go by service there).
    pub fn url(&self, service: Service) -> anyhow::Result<String> {
        match self {
            Hosts::Sim(_) => Ok(format!("http://{service}.sim")),
            Hosts::Real(processes) => processes.url(service),
        }
    }

    /// The instances of `service` running now.
    pub fn running(&self, service: Service) -> Vec<usize> {
        match self {
            Hosts::Sim(world) => world.running(service),
            Hosts::Real(processes) => processes.running(service),
        }
    }

    /// A faultable service's instance suffers `plan` from its next request on (real: through its
    /// loopback `/admin/fault`).
    pub async fn set_fault(&self, service: Service, instance: usize, plan: &FaultPlan) -> anyhow::Result<()> {
        tracing::info!(%service, instance, fault = %plan, at_ms = crate::simulator::clock::now_ms(), "fault switched");
        match self {
            Hosts::Sim(world) => world.set_fault(service, instance, plan.clone()),
            Hosts::Real(processes) => processes.set_fault(service, instance, plan).await,
        }
    }

    /// A client of the services as any client is: over the network (in the simulation, its
    /// link's latency).
    pub fn client(&self) -> Arc<dyn RequestReply> {
        match self {
            Hosts::Sim(world) => world.net().clone(),
            Hosts::Real(processes) => processes.http(),
        }
    }

    /// The lab's own look at the services (in the simulation it costs no virtual time and
    /// draws nothing: reading an account changes nothing in the run).
    pub fn observer(&self) -> Arc<dyn RequestReply> {
        match self {
            Hosts::Sim(world) => world.net().observer(),
            Hosts::Real(processes) => processes.http(),
        }
    }

    /// The lab's look at one instance of a service.
    pub fn instance(&self, service: Service, instance: usize) -> anyhow::Result<Arc<dyn RequestReply>> {
        match self {
            Hosts::Sim(world) => Ok(world.net().instance(instance)),
            Hosts::Real(processes) => processes.instance(service, instance),
        }
    }

    /// Takes `what` away (real: through `scripts/brokers.sh` or compose, restored whatever
    /// happens to the run).
    pub async fn take_away(&self, what: Away) -> anyhow::Result<()> {
        tracing::info!(?what, at_ms = crate::simulator::clock::now_ms(), "taken away");
        match (self, what) {
            (Hosts::Sim(world), Away::Broker) => world.set_broker(false),
            (Hosts::Sim(world), Away::Node) => world.lose_node(),
            (Hosts::Sim(world), Away::Hang) => world.set_broker_hung(true),
            (Hosts::Sim(world), Away::Database) => world.set_database(false),
            (Hosts::Real(processes), what) => processes.take_away(what).await?,
        }
        Ok(())
    }

    /// Brings back what was taken away, and waits until it serves. A lost node's clients have
    /// failed over already: in the simulation nothing changes.
    pub async fn bring_back(&self, what: Away) -> anyhow::Result<()> {
        tracing::info!(?what, at_ms = crate::simulator::clock::now_ms(), "brought back");
        match (self, what) {
            (Hosts::Sim(world), Away::Broker) => world.set_broker(true),
            (Hosts::Sim(_), Away::Node) => {}
            (Hosts::Sim(world), Away::Hang) => world.set_broker_hung(false),
            (Hosts::Sim(world), Away::Database) => world.set_database(true),
            (Hosts::Real(processes), what) => processes.bring_back(what).await?,
        }
        Ok(())
    }

    /// The lab's own connection to the deployment's queue (Part B).
    pub fn queue(&self) -> Arc<dyn MessageQueue> {
        match self {
            Hosts::Sim(world) => world.queue(),
            Hosts::Real(processes) => processes.queue().expect("a deployment over RabbitMQ"),
        }
    }

    /// The lab's own client of the deployment's log (Part C).
    pub fn log(&self) -> Arc<dyn EventLog> {
        match self {
            Hosts::Sim(world) => world.log(),
            Hosts::Real(processes) => processes.log().expect("a deployment over Kafka"),
        }
    }

    /// A dead consumer group member as its coordinator treats it, awaited: evicted once its
    /// session timed out (the simulation's model of it; Kafka does it by itself).
    pub async fn await_eviction(&self, group: &str) {
        if let Hosts::Sim(world) = self {
            tokio::time::sleep(crate::simulator::world::SESSION_TIMEOUT).await;
            world.log().evict_group(group);
        }
    }

    /// The same, in the background: the others go on meanwhile.
    pub fn evict_later(&self, group: &str) {
        if let Hosts::Sim(world) = self {
            let (log, group) = (world.log(), group.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(crate::simulator::world::SESSION_TIMEOUT).await;
                log.evict_silent(&group, crate::simulator::world::SESSION_TIMEOUT);
            });
        }
    }

    /// Sets `group` back to the beginning of `topics` while it has no member, the way a user
    /// does: in the simulation through the log; for real with Kafka's own
    /// `kafka-consumer-groups.sh --reset-offsets --to-earliest --execute` where Kafka runs.
    /// Returns the command (for the report).
    pub async fn reset_group(&self, group: &str, topics: &[Topic]) -> anyhow::Result<String> {
        match self {
            Hosts::Sim(world) => {
                world.log().reset_to_beginning(group, topics).await?;
                let names: Vec<&str> = topics.iter().map(|t| t.suffix()).collect();
                Ok(format!("SimLog::reset_to_beginning({group:?}, {})", names.join(", ")))
            }
            Hosts::Real(processes) => processes.reset_group(group, topics).await,
        }
    }

    /// The next instances that abort themselves, once one has (real: a lab crash inside the
    /// process, by the lab's served faults; in the simulation a crash is announced by its
    /// transport instead, so this never returns).
    pub async fn aborted(&self) -> Vec<(Service, usize)> {
        match self {
            Hosts::Sim(_) => std::future::pending().await,
            Hosts::Real(processes) => processes.aborted().await,
        }
    }

    /// The services' stores, as the lab reads them after the fact (real: their files in the
    /// run's data directory, or its PostgreSQL schema).
    pub fn storage(&self) -> campus::store::Storage {
        match self {
            Hosts::Sim(world) => world.storage(),
            Hosts::Real(processes) => processes.storage(),
        }
    }

    /// Silences the fetches of every instance of `service` (real: SIGUSR1 to its processes,
    /// which the lab's `--lab-silence-on-usr1` hands to their `SilencedLog`; in the simulation
    /// the run silences its own `SilencedLog`, so nothing here).
    pub fn silence(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Hosts::Sim(_) => Ok(()),
            Hosts::Real(processes) => processes.signal_usr1(service),
        }
    }

    /// Each running service process's name and pid (none in the simulation).
    pub fn pids(&self) -> Vec<(String, u32)> {
        match self {
            Hosts::Sim(_) => Vec::new(),
            Hosts::Real(processes) => processes.pids(),
        }
    }

    /// The same hosts, their services traced: real processes append their spans to a file of
    /// the run's. (A simulated world is traced from its making: [`World::traced`].)
    pub fn traced(self) -> Self {
        match self {
            Hosts::Real(processes) => Hosts::Real(Box::new(processes.traced())),
            sim => sim,
        }
    }

    /// Stops everything and removes what the run created (real: the processes; a broker still
    /// taken away is brought back; the namespace's queues or topics, its schema and its data
    /// directory are deleted). Returns the services' spans, if they were traced.
    pub async fn teardown(self) -> Vec<campus::telemetry::trace::Request> {
        match self {
            Hosts::Sim(world) => {
                world.clear();
                world.spans().and_then(SpanSink::take).into_iter().collect()
            }
            Hosts::Real(processes) => processes.teardown().await,
        }
    }
}

/// A log error that means "the group still has members": the reset must wait.
pub fn group_active(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<LogError>(), Some(LogError::GroupActive { .. }))
}
