//! The clustered deployment (`campus-sim cluster`): what the services do when they outgrow one
//! broker node and one instance. Part B runs on a 3-node RabbitMQ cluster (quorum queues with a
//! replica on every node) with its state in PostgreSQL, which several Inventory instances share;
//! the simulation runs the same experiments over `SimQueue` with the instances sharing one store.
//!
//! | experiment  | what happens | shows |
//! |-------------|--------------|-------|
//! | `node-loss` | orders at `--rate`; the node the services use SIGKILLed, started again `--node-down-for` later | the services fail over, orders keep flowing, 0 lost, 0 double |
//! | `scale-out` | a backlog drained by each of `--instances` Inventory counts; then by the largest with one instance SIGKILLed halfway | throughput per instance count; redelivery to the survivors |
//!
//! The experiments themselves are Part B's (`crate::async_rabbitmq::node_loss`,
//! `crate::async_rabbitmq::scale_out`); this module chooses the runs, writes their rows, the
//! report section `cluster/<mode>` and its figures.

pub mod figures;
pub mod output;
pub mod rows;

use std::path::Path;

use anyhow::bail;
use campus::Model;

use crate::async_rabbitmq::{self, Deployment, Run, Scenario, Shape};
use crate::world::{Scope, World};

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
    /// Inventory instance counts of `scale-out`, each drained in its own run; the largest is
    /// run once more with one instance SIGKILLed halfway.
    pub instances: Vec<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config { experiment: Experiment::All, messaging: async_rabbitmq::Config::default(), instances: vec![1, 2, 4] }
    }
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.messaging.validate()?;
        if self.instances.is_empty() || self.instances.iter().any(|&n| n == 0 || n > 16) {
            bail!("--instances takes counts from 1 to 16 (e.g. 1,2,4)");
        }
        Ok(())
    }

    /// The runs, in order: node loss, then each instance count, then the crash.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut runs = Vec::new();
        if matches!(self.experiment, Experiment::NodeLoss | Experiment::All) {
            runs.push(Scenario::NodeLoss);
        }
        if matches!(self.experiment, Experiment::ScaleOut | Experiment::All) {
            runs.extend(self.instances.iter().map(|&instances| Scenario::ScaleOut { instances, crash: false }));
            let most = self.instances.iter().copied().max().unwrap_or(1).max(2);
            runs.push(Scenario::ScaleOut { instances: most, crash: true });
        }
        runs
    }

    pub fn names(&self) -> Vec<String> {
        self.scenarios().into_iter().map(label).collect()
    }
}

/// A run's name as the table and CSVs show it.
pub fn label(scenario: Scenario) -> String {
    match scenario {
        Scenario::ScaleOut { instances, crash } => format!("scale-out {instances}{}", if crash { " + crash" } else { "" }),
        other => other.name().to_owned(),
    }
}

fn shape(scenario: Scenario, store: Option<&str>) -> Shape {
    let inventories = match scenario {
        Scenario::ScaleOut { instances, .. } => instances,
        _ => 1,
    };
    Shape { inventories, store: store.map(str::to_owned) }
}

/// Runs the selected experiments in the simulation, each in a fresh world (Inventory's
/// instances share one store there).
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    let m = &config.messaging;
    config
        .scenarios()
        .into_iter()
        .map(|scenario| {
            let world = World::new(m.seed, Model::AsyncRabbitmq, Scope::Experiment(scenario.name()));
            world.block_on(async {
                let d = Deployment::sim_shaped(&world, m, &shape(scenario, None)).await?;
                async_rabbitmq::run_experiment(m, scenario, d).await
            })
        })
        .collect()
}

/// Runs the selected experiments over real processes, the RabbitMQ cluster at `amqp_url` and
/// the PostgreSQL at `store`, each in its own namespace (queues and schema).
pub async fn run_real(config: &Config, exe: &Path, amqp_url: &str, store: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for scenario in config.scenarios() {
        crate::progress::step(&format!("{}: starting services", label(scenario)));
        let d = Deployment::real_shaped(&config.messaging, exe, amqp_url, scenario.name(), &shape(scenario, Some(store))).await?;
        runs.push(async_rabbitmq::run_experiment(&config.messaging, scenario, d).await?);
    }
    Ok(runs)
}
