//! Part B, asynchronous messaging over RabbitMQ: the experiments, run in the simulation
//! (`SimQueue`, services as tasks, virtual time) or against real processes and a real
//! RabbitMQ — the same harness code, only the [`Deployment`] differs.
//!
//! | experiment    | what happens                                                         | shows |
//! |---------------|----------------------------------------------------------------------|-------|
//! | `outage`      | orders at a steady rate; Inventory down for `--down-for` (real: SIGKILL, then a new process on the same store) | the backlog grows while Order keeps accepting, then drains |
//! | `idempotency` | orders, then the same `OrderPlaced` published again straight to the broker | one reservation, one notification per order |
//! | `poison`      | malformed messages (not JSON, schema violations, unknown version, wrong event) among good orders | all malformed dead-lettered with reasons, all good ones processed |
//! | `broker-restart` | orders at a steady rate; RabbitMQ itself down for `--broker-down-for` (real: `rabbitmqctl stop_app` / `start_app`) | every service keeps running, Order keeps answering 202 into its outbox, everything drains once the broker is back |
//!
//! Two more run on a clustered deployment (`campus-sim cluster`, which chooses their runs):
//!
//! | experiment    | what happens                                                         | shows |
//! |---------------|----------------------------------------------------------------------|-------|
//! | `node-loss`   | orders at a steady rate; the RabbitMQ node the services use SIGKILLed, started again `--node-down-for` later | the services fail over to another node, the quorum queues lose nothing, orders keep flowing |
//! | `scale-out`   | a backlog of orders drained by 1, 2, 4 Inventory instances sharing PostgreSQL; once more with one instance SIGKILLed halfway | throughput per instance count; redelivery to the survivors, 0 lost, 0 double |

pub mod broker_restart;
pub mod deployment;
pub mod experiments;
pub mod figures;
pub mod invariants;
pub mod node_loss;
pub mod observe;
pub mod output;
pub mod poison;
pub mod rows;
pub mod scale_out;
mod window;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use campus::api::order::OrdersReply;
use campus::domain::OrderRequest;
use campus::store::{InventoryStats, NotificationStats};
use campus::Model;

pub use deployment::Deployment;
pub use experiments::run_experiment;
pub use observe::{get_json, sample};
pub use poison::poison_bodies;

use crate::hosts::{Hosts, Place};
use crate::simulator::world::{self, Scope, Stream, World};
use crate::traces::Traced;
use crate::{workload, Mode};

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Inventory down for --down-for while orders keep coming: backlog and drain.
    Outage,
    /// Every order's OrderPlaced delivered twice: one reservation, one notification.
    Idempotency,
    /// Malformed messages among good ones: dead-lettered with reasons, nothing blocked.
    Poison,
    /// RabbitMQ itself stopped for --broker-down-for while orders keep coming: every service
    /// keeps running, Order keeps accepting, all catch up when it is back.
    BrokerRestart,
    /// All four, in that order.
    All,
}

/// Everything a run depends on. [`Config::default`] is the assignment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub experiment: Experiment,
    /// Orders per second during `outage`.
    pub rate: u32,
    /// How they arrive: steadily, or as a Poisson process from the seed.
    pub arrivals: crate::load::Shape,
    /// How long Inventory is down in `outage`.
    pub down_for: Duration,
    /// How long RabbitMQ itself is down in `broker-restart`.
    pub broker_down_for: Duration,
    /// How long the lost node stays down in `node-loss` (the services fail over long before).
    pub node_down_for: Duration,
    /// The simulation's model of a failover: how long the clients of a lost node are without a
    /// broker before they have reconnected to another node (real runs measure it).
    pub node_failover: Duration,
    /// Orders of the backlog each `scale-out` run drains.
    pub backlog: usize,
    /// How long orders flow before the outage, and after Inventory is back.
    pub lead: Duration,
    /// Orders in `idempotency` and `poison`.
    pub orders: usize,
    /// `OrderPlaced` messages published a second time in `idempotency`.
    pub duplicates: usize,
    /// Malformed messages in `poison`.
    pub poison: usize,
    /// Units of each item Inventory starts with.
    pub stock: u32,
    /// Unacknowledged deliveries each consumer may hold.
    pub prefetch: u16,
    /// A run that has not settled this long after its last order fails.
    pub settle_within: Duration,
    /// Where the real RabbitMQ runs (real mode: how `broker-restart` pauses and resumes it).
    pub brokers: crate::hosts::broker::BrokerHost,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: crate::DEFAULT_SEED,
            experiment: Experiment::All,
            rate: 20,
            arrivals: crate::load::Shape::Steady,
            down_for: Duration::from_secs(60),
            broker_down_for: Duration::from_secs(30),
            node_down_for: Duration::from_secs(20),
            node_failover: crate::simulator::world::NODE_FAILOVER,
            backlog: 2000,
            lead: Duration::from_secs(10),
            orders: 200,
            duplicates: 200,
            poison: 40,
            stock: 5000,
            prefetch: 10,
            settle_within: Duration::from_secs(120),
            brokers: crate::hosts::broker::BrokerHost::Script,
        }
    }
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rate == 0 || self.orders == 0 || self.prefetch == 0 {
            bail!("--rate, --orders and --prefetch must be at least 1");
        }
        if self.duplicates > self.orders {
            bail!("--duplicates ({}) cannot exceed --orders ({}): each duplicate repeats one order", self.duplicates, self.orders);
        }
        if self.down_for.is_zero() || self.broker_down_for.is_zero() || self.node_down_for.is_zero() {
            bail!("--down-for, --broker-down-for and --node-down-for must be above 0 s");
        }
        if self.backlog < 10 {
            bail!("--backlog must be at least 10 orders (its throughput is timed from the 10th to the 90th percentile)");
        }
        Ok(())
    }

    /// The experiments `--experiment` selects, in the order they run.
    pub fn scenarios(&self) -> Vec<Scenario> {
        match self.experiment {
            Experiment::All => Scenario::ALL.to_vec(),
            Experiment::Outage => vec![Scenario::Outage],
            Experiment::Idempotency => vec![Scenario::Idempotency],
            Experiment::Poison => vec![Scenario::Poison],
            Experiment::BrokerRestart => vec![Scenario::BrokerRestart],
        }
    }

    pub fn experiments(&self) -> Vec<&'static str> {
        self.scenarios().into_iter().map(Scenario::name).collect()
    }

    /// `n` orders of `scenario` at `rate` a second, arriving as `--arrivals` says; the same in
    /// both modes (drawn from the seed).
    fn load(&self, scenario: Scenario, n: usize, rate: u32) -> observe::Load {
        let mut rng = world::stream(self.seed, Model::AsyncRabbitmq, &Scope::Experiment(scenario.name()), Stream::Arrivals);
        observe::Load { orders: self.orders_for(scenario, n), offsets: self.arrivals.offsets(rate, n, &mut rng) }
    }

    /// The orders of `scenario`, the same in both modes (drawn from the seed).
    fn orders_for(&self, scenario: Scenario, n: usize) -> Vec<OrderRequest> {
        workload::orders(&mut world::stream(self.seed, Model::AsyncRabbitmq, &Scope::Experiment(scenario.name()), Stream::Workload), n)
    }
}

/// One experiment of Part B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Outage,
    Idempotency,
    Poison,
    BrokerRestart,
    /// On a cluster: the node the services use lost mid-run.
    NodeLoss,
    /// On a shared store: a backlog drained by this many Inventory instances, one of them
    /// SIGKILLed halfway if `crash`.
    ScaleOut {
        instances: usize,
        crash: bool,
    },
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [Scenario::Outage, Scenario::Idempotency, Scenario::Poison, Scenario::BrokerRestart];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Outage => "outage",
            Scenario::Idempotency => "idempotency",
            Scenario::Poison => "poison",
            Scenario::BrokerRestart => "broker-restart",
            Scenario::NodeLoss => "node-loss",
            Scenario::ScaleOut { .. } => "scale-out",
        }
    }
}

/// One sample of the outage time series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub t_ms: u64,
    pub inventory_up: bool,
    /// `OrderPlaced` ready in Inventory's queue.
    pub queue_depth: u64,
    pub accepted: u64,
    pub published: u64,
    pub reserved: u64,
    pub failed: u64,
    pub notified: u64,
    pub dead_lettered: u64,
}

/// A dead-lettered message as read back from the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub reason: String,
}

/// The services' state at the end of an experiment: what the accounting checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub orders: OrdersReply,
    pub inventory: InventoryStats,
    pub inventory_outcomes: BTreeMap<String, String>,
    pub notification: NotificationStats,
    pub notified: Vec<String>,
    pub dead_letters: Vec<DeadLetter>,
}

/// A finished experiment: what every experiment measures, and what only its kind does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub mode: Mode,
    /// Orders answered 202, and requests that were not.
    pub accepted: usize,
    pub refused: usize,
    pub end: Final,
    pub detail: Detail,
    /// Its services' spans, if traced ([`crate::traces::traced`]).
    pub traced: Traced,
}

/// What one kind of run measured besides the common counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    Outage(Outage),
    /// `OrderPlaced` messages published a second time.
    Idempotency {
        duplicates: usize,
    },
    /// Malformed messages published among the good ones.
    Poison {
        injected: usize,
    },
    BrokerRestart(BrokerRestart),
    /// The node-loss window: the same observations as a broker restart.
    NodeLoss(BrokerRestart),
    ScaleOut(ScaleOut),
    /// One schedule of `campus-sim explore`.
    Explore {
        duplicates: usize,
        malformed: usize,
        /// Attempts at publishing a malformed message that failed: each may have landed as
        /// well, and be dead-lettered once more.
        malformed_failed: usize,
    },
}

/// The outage's time series, its window and its drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub samples: Vec<Sample>,
    /// The deepest Inventory's queue was at any sample (every 250 ms).
    pub peak_backlog: u64,
    pub down_window_ms: (u64, u64),
    pub drain: Option<Duration>,
    /// The median time Order took to answer 202.
    pub accept_p50: Option<Duration>,
    /// Every order on one clock: its accept (Order's 202) and its completion (Notification's
    /// confirmation), from its intended start.
    pub orders: Vec<crate::load::Timed>,
}

pub use crate::reporting::drain::ScaleOut;

/// The broker restart's time series, its window and its drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRestart {
    pub samples: Vec<BrokerSample>,
    /// When RabbitMQ was stopped and when it served again (ms since the first order).
    pub down_window_ms: (u64, u64),
    /// The most orders waiting in Order's outbox (at the kept samples, every second); and
    /// waiting anywhere (outbox + Inventory's queue, where it could be read; every 250 ms).
    pub peak_outbox: u64,
    pub peak_backlog: u64,
    /// From the broker's return until the orders waiting (outbox + queue) are back to what
    /// they were before the outage.
    pub drain: Option<Duration>,
}

impl BrokerRestart {
    /// From the broker's return to the first sample at which Order's relay had published
    /// again: the relay sitting out its retry backoff (as fine as the samples either side).
    pub fn retry_wait(&self) -> Option<(Duration, Duration)> {
        crate::reporting::recovery::first_progress_after(self.samples.iter().map(|s| (s.t_ms, s.published)), self.down_window_ms.1)
    }
}

/// One sample of the broker restart (every 250 ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSample {
    pub t_ms: u64,
    pub broker_up: bool,
    pub accepted: u64,
    pub published: u64,
    /// `OrderPlaced` ready in Inventory's queue; `None` while the broker cannot be asked.
    pub queue_depth: Option<u64>,
    pub reserved: u64,
    pub failed: u64,
    pub notified: u64,
}

impl BrokerSample {
    /// Orders accepted and not yet published: waiting in Order's outbox.
    pub fn outbox(&self) -> u64 {
        self.accepted.saturating_sub(self.published)
    }
}

impl Run {
    /// The experiment's name, as the CSVs and checks name it.
    pub fn name(&self) -> &'static str {
        match self.detail {
            Detail::Outage(_) => Scenario::Outage.name(),
            Detail::Idempotency { .. } => Scenario::Idempotency.name(),
            Detail::Poison { .. } => Scenario::Poison.name(),
            Detail::BrokerRestart(_) => Scenario::BrokerRestart.name(),
            Detail::NodeLoss(_) => Scenario::NodeLoss.name(),
            Detail::ScaleOut(_) => "scale-out",
            Detail::Explore { .. } => "explore",
        }
    }

    pub fn outage(&self) -> Option<&Outage> {
        match &self.detail {
            Detail::Outage(o) => Some(o),
            _ => None,
        }
    }

    pub fn broker_restart(&self) -> Option<&BrokerRestart> {
        match &self.detail {
            Detail::BrokerRestart(b) => Some(b),
            _ => None,
        }
    }

    pub fn node_loss(&self) -> Option<&BrokerRestart> {
        match &self.detail {
            Detail::NodeLoss(b) => Some(b),
            _ => None,
        }
    }

    pub fn scale_out(&self) -> Option<&ScaleOut> {
        match &self.detail {
            Detail::ScaleOut(s) => Some(s),
            _ => None,
        }
    }

    pub fn duplicates_injected(&self) -> usize {
        match self.detail {
            Detail::Idempotency { duplicates } | Detail::Explore { duplicates, .. } => duplicates,
            _ => 0,
        }
    }

    pub fn poison_injected(&self) -> usize {
        self.poison_dead_letters().0
    }

    /// How many malformed messages must be dead-lettered, and how many may be: more only in
    /// `explore`, where a publish that failed may have landed before it was tried again.
    pub fn poison_dead_letters(&self) -> (usize, usize) {
        match self.detail {
            Detail::Poison { injected } => (injected, injected),
            Detail::Explore { malformed, malformed_failed, .. } => (malformed, malformed + malformed_failed),
            _ => (0, 0),
        }
    }
}

/// Runs the selected experiments in the simulation, each in a fresh world.
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    config
        .scenarios()
        .into_iter()
        .map(|scenario| {
            let world =
                World::new(config.seed, Model::AsyncRabbitmq, Scope::Experiment(scenario.name())).with_node_failover(config.node_failover);
            let world = if crate::traces::traced(Model::AsyncRabbitmq, scenario.name()) { world.traced() } else { world };
            world.block_on(async {
                let d = Deployment::start(Hosts::Sim(&world), config, 1).await?;
                run_experiment(config, scenario, d).await
            })
        })
        .collect()
}

/// Runs the selected experiments over real processes (`exe serve …`) and the RabbitMQ at
/// `amqp_url`, each in its own namespace on the broker and its own data directory.
pub async fn run_real(config: &Config, exe: &Path, amqp_url: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for scenario in config.scenarios() {
        crate::progress::step(&format!("{}: starting services", scenario.name()));
        let hosts = Hosts::real(
            exe,
            Model::AsyncRabbitmq,
            scenario.name(),
            Place { amqp_url: amqp_url.into(), brokers: config.brokers, ..Place::default() },
        )
        .await?;
        let hosts = if crate::traces::traced(Model::AsyncRabbitmq, scenario.name()) { hosts.traced() } else { hosts };
        let d = Deployment::start(hosts, config, 1).await?;
        runs.push(run_experiment(config, scenario, d).await?);
    }
    Ok(runs)
}
