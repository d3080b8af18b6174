//! The clustered deployment (`campus-sim cluster`): what the services do when they outgrow one
//! broker node and one instance. Part B runs on a 3-node RabbitMQ cluster (quorum queues with a
//! replica on every node) with its state in PostgreSQL, which several Inventory instances share;
//! Part C on a 3-broker Kafka (replication 3, `min.insync.replicas` 2). The simulation runs the
//! same experiments over `SimQueue` and `SimLog`, Part B's instances sharing one store.
//!
//! | experiment  | what happens | shows |
//! |-------------|--------------|-------|
//! | `node-loss` | Part B: orders at `--rate`, the node the services use SIGKILLed, started again `--node-down-for` later; Part C: the producer at 500 events/s, broker 1 SIGKILLed a third of the way in, started again later | the services fail over, orders keep flowing, 0 lost, 0 double |
//! | `scale-out` | Part B: a backlog drained by each of `--instances` Inventory counts; then by the largest with one instance SIGKILLed halfway. Part C: the same with Inventory's instances as members of one consumer group, over each of `--partitions` | throughput per instance count; redelivery to the survivors (B), a rebalance (C) |
//!
//! The experiments themselves are the parts' own (`async_rabbitmq::node_loss`,
//! `async_rabbitmq::scale_out`, `streaming_kafka::broker_restart`,
//! `streaming_kafka::scale_out`); this module chooses the
//! runs, writes their rows, the report section `cluster/<mode>` and its figures.

pub mod figures;
pub mod output;
pub mod rows;

use std::path::Path;

use anyhow::bail;
use campus::Model;

use crate::async_rabbitmq::{self, Deployment, Scenario};
use crate::hosts::broker::BrokerHost;
use crate::hosts::{Hosts, Place};
use crate::simulator::world::{Scope, World};
use crate::streaming_kafka;
use crate::violation::Violation;
use crate::Mode;

/// The Kafka cluster `scripts/brokers.sh up --cluster` starts (broker 1 first: the one
/// `node-loss` kills).
pub const DEFAULT_CLUSTER_BOOTSTRAP: &str = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094";

/// One run on the cluster: a part's experiment, finished.
#[derive(Debug, Clone)]
pub enum Run {
    Messaging(async_rabbitmq::Run),
    Streaming(streaming_kafka::Run),
}

impl Run {
    pub fn mode(&self) -> Mode {
        match self {
            Run::Messaging(r) => r.mode,
            Run::Streaming(r) => r.mode,
        }
    }

    /// The part's own checks of the run.
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            Run::Messaging(r) => async_rabbitmq::invariants::check(r),
            Run::Streaming(r) => streaming_kafka::invariants::check(r),
        }
    }
}

/// One run to make: a part and its experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    Messaging(Scenario),
    Streaming(streaming_kafka::Scenario),
}

impl Planned {
    pub fn model(self) -> Model {
        match self {
            Planned::Messaging(_) => Model::AsyncRabbitmq,
            Planned::Streaming(_) => Model::StreamingKafka,
        }
    }
}

/// The RabbitMQ cluster `scripts/brokers.sh up --cluster` starts: its three nodes, the first
/// one first (the node the services connect to, and the one `node-loss` kills).
pub const DEFAULT_CLUSTER_AMQP_URL: &str =
    "amqp://guest:guest@127.0.0.1:5681/%2f,amqp://guest:guest@127.0.0.1:5682/%2f,amqp://guest:guest@127.0.0.1:5683/%2f";

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// The broker node the services use SIGKILLed mid-run, started again later.
    NodeLoss,
    /// A backlog drained by 1, 2, 4 Inventory instances; then one of them SIGKILLed halfway.
    ScaleOut,
    /// Both.
    All,
}

/// Everything a cluster run depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub experiment: Experiment,
    /// Part B's settings: the seed, `rate`, `lead`, `node_down_for`, `backlog`, `prefetch`,
    /// `stock`, `settle_within`.
    pub messaging: async_rabbitmq::Config,
    /// Part C's settings: the seed, `events`, `produce_rate`, `node_down_for`.
    pub streaming: streaming_kafka::Config,
    /// Inventory instance counts of `scale-out`, each drained in its own run; the largest is
    /// run once more with one instance SIGKILLed halfway.
    pub instances: Vec<usize>,
    /// Part C's `scale-out`: the partition counts, each drained by every instance count.
    pub partitions: Vec<u32>,
    /// Only this model's runs (`None`: both).
    pub model: Option<Model>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            experiment: Experiment::All,
            messaging: async_rabbitmq::Config::default(),
            streaming: streaming_kafka::Config::default(),
            instances: vec![1, 2, 4],
            partitions: vec![3, 6],
            model: None,
        }
    }
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.messaging.validate()?;
        self.streaming.validate()?;
        if self.instances.is_empty() || self.instances.iter().any(|&n| n == 0 || n > 16) {
            bail!("--instances takes counts from 1 to 16 (e.g. 1,2,4)");
        }
        if self.partitions.is_empty() || self.partitions.iter().any(|&p| p == 0 || p > 64) {
            bail!("--partitions takes counts from 1 to 64 (e.g. 3,6)");
        }
        if self.model == Some(Model::SyncRest) {
            bail!("--model: the cluster runs async-rabbitmq and streaming-kafka (sync-rest has no broker to lose)");
        }
        Ok(())
    }

    /// The runs, in order: node loss (Part B, Part C), then each instance count, then the
    /// crash.
    pub fn scenarios(&self) -> Vec<Planned> {
        let mut runs = Vec::new();
        if matches!(self.experiment, Experiment::NodeLoss | Experiment::All) {
            runs.push(Planned::Messaging(Scenario::NodeLoss));
            runs.push(Planned::Streaming(streaming_kafka::Scenario::NodeLoss));
        }
        if matches!(self.experiment, Experiment::ScaleOut | Experiment::All) {
            runs.extend(self.instances.iter().map(|&instances| Planned::Messaging(Scenario::ScaleOut { instances, crash: false })));
            let most = self.instances.iter().copied().max().unwrap_or(1).max(2);
            runs.push(Planned::Messaging(Scenario::ScaleOut { instances: most, crash: true }));
            for &partitions in &self.partitions {
                let scale = |instances, crash| Planned::Streaming(streaming_kafka::Scenario::ScaleOut { instances, partitions, crash });
                runs.extend(self.instances.iter().map(|&instances| scale(instances, false)));
                runs.push(scale(most, true));
            }
        }
        runs.retain(|planned| self.model.is_none_or(|m| m == planned.model()));
        runs
    }

    pub fn names(&self) -> Vec<String> {
        self.scenarios().into_iter().map(label).collect()
    }
}

/// A run's name as the progress lines show it.
pub fn label(planned: Planned) -> String {
    match planned {
        Planned::Messaging(Scenario::ScaleOut { instances, crash }) => {
            format!("scale-out {instances}{}", if crash { " + crash" } else { "" })
        }
        Planned::Messaging(other) => format!("{} (Part B)", other.name()),
        Planned::Streaming(streaming_kafka::Scenario::ScaleOut { instances, partitions, crash }) => {
            format!("scale-out {instances}{} over {partitions} partitions (Part C)", if crash { " + crash" } else { "" })
        }
        Planned::Streaming(other) => format!("{} (Part C)", other.name()),
    }
}

/// Inventory's instances in `scenario`.
fn inventories(scenario: Scenario) -> usize {
    match scenario {
        Scenario::ScaleOut { instances, .. } => instances,
        _ => 1,
    }
}

/// Runs the selected experiments in the simulation, each in a fresh world (Inventory's
/// instances share one store there).
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    let m = &config.messaging;
    config
        .scenarios()
        .into_iter()
        .map(|planned| match planned {
            Planned::Messaging(scenario) => {
                let world =
                    World::new(m.seed, Model::AsyncRabbitmq, Scope::Experiment(scenario.name())).with_node_failover(m.node_failover);
                let run = world.block_on(async {
                    let d = Deployment::start(Hosts::Sim(&world), m, inventories(scenario)).await?;
                    async_rabbitmq::run_experiment(m, scenario, d).await
                });
                run.map(Run::Messaging)
            }
            Planned::Streaming(scenario) => streaming_kafka::run_sim_one(&config.streaming, scenario).map(Run::Streaming),
        })
        .collect()
}

/// Where the real cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers {
    /// The RabbitMQ cluster's nodes (comma-separated AMQP URLs).
    pub amqp_url: String,
    /// The PostgreSQL the services of Part B keep their state in.
    pub store: String,
    /// The Kafka cluster's brokers (comma-separated host:port).
    pub bootstrap: String,
}

impl Brokers {
    /// Where the real services find the cluster.
    fn place(&self) -> Place {
        Place::new(&self.amqp_url, &self.bootstrap, BrokerHost::Script)
    }
}

/// Runs the selected experiments over real processes and the cluster at `brokers`, each in its
/// own namespace (queues, schema, topics).
pub async fn run_real(config: &Config, exe: &Path, brokers: &Brokers) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for planned in config.scenarios() {
        crate::progress::step(&format!("{}: starting services", label(planned)));
        runs.push(match planned {
            Planned::Messaging(scenario) => {
                let place = Place { store: Some(brokers.store.clone()), ..brokers.place() };
                let hosts = Hosts::real(exe, Model::AsyncRabbitmq, scenario.name(), place).await?;
                let d = Deployment::start(hosts, &config.messaging, inventories(scenario)).await?;
                Run::Messaging(async_rabbitmq::run_experiment(&config.messaging, scenario, d).await?)
            }
            Planned::Streaming(scenario) => {
                Run::Streaming(streaming_kafka::run_real_one(&config.streaming, scenario, exe, &brokers.place()).await?)
            }
        });
    }
    Ok(runs)
}
