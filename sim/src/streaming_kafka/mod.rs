//! Part C, streaming over Kafka: the experiments, run over `SimLog` in virtual time (the
//! services as tasks) or over a real Apache Kafka (the services as `campus-sim serve …
//! --model streaming-kafka` processes: producer, Inventory, Analytics).
//!
//! | experiment | what happens                                                          |
//! |------------|-----------------------------------------------------------------------|
//! | `produce`  | `--events` `OrderPlaced` appended to `order-events`, timed, nothing consuming |
//! | `lag`      | Inventory and a throttled Analytics (`--throttle-per-s`) consume while the producer runs at full speed: lag per partition per second, its peak, the catch-up |
//! | `replay`   | Analytics catches up, stops; its group is reset to the beginning (real: Kafka's `kafka-consumer-groups.sh --reset-offsets --to-earliest --execute`); a fresh Analytics recomputes: before and after compared, and against the workload |
//! | `broker-restart` | the producer at `--produce-rate`; a third of the way in the broker is killed (real: SIGKILL, then `scripts/brokers.sh up kafka`) and started again: every order decided once, metrics equal to the workload, the lag and the time to recover |
//! | `inventory-crash` | the producer at `--produce-rate`; Inventory is killed (real: SIGKILL) a third of the way in and started again: every order decided exactly once in `inventory-events` as a `read_committed` reader sees it, stock consistent with the reservations |
//! | `outage`   | Part B's outage over the log: the producer at `--outage-rate` (20/s) for `--down-for` (60 s) plus 10 s either side; Inventory is killed 10 s in (real: SIGKILL) and started again `--down-for` later: every order appended meanwhile, decided once Inventory is back, Inventory's lag and the time it takes to catch up |
//! | `poison`   | `--poison` malformed records (not JSON, wrong schema, unknown version) among the events: each in `dead-letters` with its reason, every good order decided |
//!
//! One more runs on a 3-broker cluster (`campus-sim cluster`): `node-loss`, the producer at
//! `--produce-rate` while broker 1 is SIGKILLed a third of the way in and started again
//! `node_down_for` later; the partitions it led move to the brokers left (replication 3,
//! `min.insync.replicas` 2), every order decided once.

pub mod broker_restart;
pub mod decisions;
pub mod deployment;
pub mod experiments;
pub mod figures;
pub mod invariants;
pub mod output;
pub mod rows;
pub mod scale_out;
pub mod tasks;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use campus::domain::{Order, OrderPlaced};
use campus::services::analytics::{Metrics, MinuteMetrics, MINUTE_MS};
use campus::services::order::OrderIds;
use campus::store::InventoryStats;
use campus::transport::log::Topic;
use campus::Model;

pub use decisions::Decisions;
pub use deployment::Deployment;
pub use experiments::run_experiment;

use crate::hosts::{Hosts, Place};
use crate::simulator::world::{self, Scope, Stream, World};
use crate::traces::Traced;
use crate::{workload, Mode};

pub use campus::streaming_kafka::consumers::ANALYTICS_GROUP;

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// Append --events OrderPlaced, timed.
    Produce,
    /// A throttled Analytics falls behind a full-speed producer, then catches up.
    Lag,
    /// Metrics, reset the Analytics group to the beginning, metrics again.
    Replay,
    /// The broker killed mid-stream and started again: everything decided once, metrics equal
    /// to the workload, the lag and the time to recover.
    BrokerRestart,
    /// Inventory killed mid-stream and started again: every order decided exactly once.
    InventoryCrash,
    /// Inventory down for --down-for while orders arrive at --outage-rate (Part B's outage):
    /// appended meanwhile, decided once it is back.
    Outage,
    /// Malformed records among the events: dead-lettered with their reasons.
    Poison,
    /// All seven, in that order.
    All,
}

/// Everything a run depends on. [`Config::default`] is the assignment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub experiment: Experiment,
    /// `OrderPlaced` events produced.
    pub events: usize,
    /// Records per second the Analytics consumer may handle in `lag`.
    pub throttle_per_s: u32,
    /// Units of each item Inventory starts with: the default runs out late in the run, so
    /// the failure rate climbs in the last minutes.
    pub stock: u32,
    /// Records per append and per poll.
    pub batch: usize,
    /// A run that has not caught up this long after its last event fails.
    pub settle_within: Duration,
    /// `broker-restart`: events per second the producer appends (so that the broker can be
    /// killed mid-stream), and how long the broker stays dead before it is started again.
    pub produce_rate: u32,
    pub broker_down_for: Duration,
    /// `node-loss` (on a cluster): how long the lost broker stays down, and the simulation's
    /// model of its clients' failover.
    pub node_down_for: Duration,
    pub node_failover: Duration,
    /// `poison`: malformed records appended among the events.
    pub poison: usize,
    /// `outage` (Part B's, over the log): events per second, how long Inventory is down, and
    /// how long events flow before it goes down and after it is back.
    pub outage_rate: u32,
    /// How `outage`'s orders arrive: steadily, or as a Poisson process from the seed.
    pub arrivals: crate::load::Shape,
    pub down_for: Duration,
    pub outage_lead: Duration,
    /// Where the real Kafka runs (real mode: how `broker-restart` kills and starts it, and
    /// where `replay` finds kafka-consumer-groups.sh).
    pub brokers: crate::hosts::broker::BrokerHost,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: crate::DEFAULT_SEED,
            experiment: Experiment::All,
            events: 10_000,
            throttle_per_s: 500,
            stock: 5000,
            batch: 500,
            settle_within: Duration::from_secs(300),
            produce_rate: 500,
            broker_down_for: Duration::from_secs(10),
            node_down_for: Duration::from_secs(20),
            node_failover: crate::simulator::world::KAFKA_NODE_FAILOVER,
            poison: 30,
            outage_rate: 20,
            arrivals: crate::load::Shape::Steady,
            down_for: Duration::from_secs(60),
            outage_lead: Duration::from_secs(10),
            brokers: crate::hosts::broker::BrokerHost::Script,
        }
    }
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.events == 0 || self.throttle_per_s == 0 || self.batch == 0 || self.produce_rate == 0 {
            bail!("--events, --throttle-per-s, --batch and --produce-rate must be at least 1");
        }
        if self.poison == 0 {
            bail!("--poison must be at least 1");
        }
        if self.broker_down_for.is_zero() || self.node_down_for.is_zero() || self.down_for.is_zero() {
            bail!("--broker-down-for, --node-down-for and --down-for must be above 0 s");
        }
        if self.outage_rate == 0 {
            bail!("--outage-rate must be at least 1");
        }
        Ok(())
    }

    /// The experiments `--experiment` selects, in the order they run.
    pub fn scenarios(&self) -> Vec<Scenario> {
        match self.experiment {
            Experiment::All => Scenario::ALL.to_vec(),
            Experiment::Produce => vec![Scenario::Produce],
            Experiment::Lag => vec![Scenario::Lag],
            Experiment::Replay => vec![Scenario::Replay],
            Experiment::BrokerRestart => vec![Scenario::BrokerRestart],
            Experiment::InventoryCrash => vec![Scenario::InventoryCrash],
            Experiment::Outage => vec![Scenario::Outage],
            Experiment::Poison => vec![Scenario::Poison],
        }
    }

    /// The events of `outage`: `outage_rate` per second for the lead, Inventory's absence and
    /// the lead again (1,600 by default), the first of the run's events.
    pub fn outage_events(&self) -> usize {
        let secs = 2 * self.outage_lead.as_secs() + self.down_for.as_secs();
        (secs * u64::from(self.outage_rate)).clamp(1, self.events as u64) as usize
    }

    pub fn experiments(&self) -> Vec<&'static str> {
        self.scenarios().into_iter().map(Scenario::name).collect()
    }

    /// The run's events: orders from the seed, with event times a seeded walk over a campus
    /// day — quiet, a lunch rush in the middle third (three times the rate), quiet again —
    /// about 85 orders per minute outside the rush, so 10,000 orders span about 90 minutes.
    pub fn events(&self) -> Vec<OrderPlaced> {
        let scope = Scope::Experiment("events");
        let requests = workload::orders(&mut world::stream(self.seed, Model::StreamingKafka, &scope, Stream::Workload), self.events);
        let mut gaps = world::stream(self.seed, Model::StreamingKafka, &scope, Stream::EventTime);
        let ids = OrderIds::seeded(self.seed);
        let mut t = 0u64;
        requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let rush = (self.events / 3..2 * self.events / 3).contains(&i);
                t += if rush { gaps.between(1, 470) } else { gaps.between(1, 1410) };
                OrderPlaced { order: Order::new(ids.next(), request), placed_at_ms: t }
            })
            .collect()
    }
}

/// One experiment of Part C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Produce,
    Lag,
    Replay,
    BrokerRestart,
    InventoryCrash,
    /// Inventory down for `down_for` while events arrive at `outage_rate`.
    Outage,
    Poison,
    /// On a cluster: broker 1 lost mid-stream.
    NodeLoss,
    /// On a cluster: a backlog drained by `instances` scaled-out Inventories over topics of
    /// `partitions` partitions; with `crash`, instance 0 SIGKILLed halfway.
    ScaleOut {
        instances: usize,
        partitions: u32,
        crash: bool,
    },
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Produce,
        Scenario::Lag,
        Scenario::Replay,
        Scenario::BrokerRestart,
        Scenario::InventoryCrash,
        Scenario::Outage,
        Scenario::Poison,
    ];

    /// The partitions of each topic the scenario runs over.
    pub fn partitions(self) -> u32 {
        match self {
            Scenario::ScaleOut { partitions, .. } => partitions,
            _ => campus::transport::log::PARTITIONS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Produce => "produce",
            Scenario::Lag => "lag",
            Scenario::Replay => "replay",
            Scenario::BrokerRestart => "broker-restart",
            Scenario::InventoryCrash => "inventory-crash",
            Scenario::Outage => "outage",
            Scenario::Poison => "poison",
            Scenario::NodeLoss => "node-loss",
            Scenario::ScaleOut { .. } => "scale-out",
        }
    }
}

/// What Analytics should find: the orders per minute straight from the workload.
pub fn expected_orders_per_minute(events: &[OrderPlaced]) -> BTreeMap<u64, u64> {
    let mut per_minute = BTreeMap::new();
    for e in events {
        *per_minute.entry(e.placed_at_ms / MINUTE_MS).or_insert(0) += 1;
    }
    per_minute
}

/// One lag sample: one partition of one topic, for the Analytics group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSample {
    pub t_ms: u64,
    pub topic: Topic,
    pub partition: u32,
    pub end_offset: u64,
    pub committed: u64,
}

impl LagSample {
    pub fn lag(&self) -> u64 {
        self.end_offset.saturating_sub(self.committed)
    }
}

/// A finished experiment: what every experiment measures, and what only its kind does.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub mode: Mode,
    pub events: usize,
    /// How long appending the events took (the producer alone in `produce`; alongside the
    /// consumers in the others).
    pub produce: Duration,
    /// Analytics' metrics (after the replay, in `replay`); none in `produce`.
    pub metrics: Option<Metrics>,
    pub expected_orders: BTreeMap<u64, u64>,
    pub inventory: Option<InventoryStats>,
    /// What a `read_committed` reader that is not Inventory finds in `inventory-events` and
    /// `dead-letters`; none in `produce`.
    pub decisions: Option<Decisions>,
    pub detail: Detail,
    /// Its services' spans, if traced ([`crate::traces::traced`]).
    pub traced: Traced,
}

/// What one kind of run measured besides the common counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Produce,
    Lag(Lag),
    /// The metrics before the Analytics group was reset (those after are [`Run::metrics`]), and
    /// the command that reset it.
    Replay {
        before: Metrics,
        command: String,
    },
    BrokerRestart(Restart),
    /// A broker node lost and started again: the same observations as a broker restart.
    NodeLoss(Restart),
    /// Inventory was killed after `killed_after` events had been appended, and started again
    /// `restarted_ms` into the run (it then restored its state from the changelog).
    InventoryCrash {
        killed_after: u64,
        restarted_ms: u64,
    },
    /// Inventory down for a window while events arrived: the same observations as a broker
    /// restart, the window Inventory's.
    Outage(Restart),
    /// `injected` malformed records were appended among the events.
    Poison {
        injected: usize,
    },
    /// One schedule of `campus-sim explore`.
    Explore,
    /// A backlog drained by scaled-out Inventories over `partitions` partitions;
    /// `out_of_order` counts decisions written in a partition of `inventory-events` before one
    /// of an order that came earlier in its partition of `order-events` (a log keeps order per
    /// key: 0).
    ScaleOut {
        drain: crate::reporting::drain::ScaleOut,
        partitions: u32,
        out_of_order: u64,
    },
}

/// The lag experiment's time series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lag {
    pub samples: Vec<LagSample>,
    /// Total lag (all partitions of both topics) at its highest.
    pub peak: u64,
    /// From the last event appended to the Analytics lag back at 0.
    pub catch_up: Option<Duration>,
}

/// The time series of a broker restart, a node loss or Inventory's outage, the window of what
/// was away and the recovery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restart {
    pub samples: Vec<RestartSample>,
    /// When it was killed and when it answered again (ms since the producer started).
    pub down_window_ms: (u64, u64),
    /// Analytics' total lag at its highest (where it could be read).
    pub peak_lag: u64,
    /// Inventory's, likewise.
    pub peak_inventory_lag: u64,
    /// From the broker's return to every consumer caught up.
    pub recover: Option<Duration>,
    /// `outage`: from Inventory's return to the outcome of every order appended before it
    /// (as Analytics counted them), at the sampling's grain.
    pub drained: Option<Duration>,
    /// The median time the producer took to acknowledge an append (in `outage`, of one event:
    /// the time to accept an order).
    pub append_p50: Option<Duration>,
    /// `outage`: every order on one clock, its accept (the producer's 202) and its completion
    /// (Analytics counted its outcome), from its intended start.
    pub orders: Vec<crate::load::Timed>,
}

impl Restart {
    /// From the return to the first sample at which the producer had appended again: the
    /// producer sitting out its retry backoff (at the sampling's resolution).
    pub fn retry_wait(&self) -> Option<(Duration, Duration)> {
        crate::reporting::recovery::first_progress_after(self.samples.iter().map(|s| (s.t_ms, s.produced)), self.down_window_ms.1)
    }
}

/// One sample of a [`Restart`] (every second): how far each consumer group is behind, `None`
/// while the broker cannot be asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartSample {
    pub t_ms: u64,
    /// What was taken away (the broker, a node, Inventory) is up.
    pub broker_up: bool,
    pub produced: u64,
    pub inventory_lag: Option<u64>,
    pub analytics_lag: Option<u64>,
    /// `outage`: orders whose outcome Analytics has counted (`None` elsewhere, or if it did not
    /// answer).
    pub decided: Option<u64>,
}

impl Run {
    fn new(mode: Mode, events: &[OrderPlaced], detail: Detail) -> Self {
        Run {
            mode,
            events: events.len(),
            produce: Duration::ZERO,
            metrics: None,
            expected_orders: expected_orders_per_minute(events),
            inventory: None,
            decisions: None,
            detail,
            traced: Traced::default(),
        }
    }

    /// The experiment's name, as the CSVs and checks name it.
    pub fn name(&self) -> &'static str {
        match self.detail {
            Detail::Produce => Scenario::Produce.name(),
            Detail::Lag(_) => Scenario::Lag.name(),
            Detail::Replay { .. } => Scenario::Replay.name(),
            Detail::BrokerRestart(_) => Scenario::BrokerRestart.name(),
            Detail::InventoryCrash { .. } => Scenario::InventoryCrash.name(),
            Detail::Outage(_) => Scenario::Outage.name(),
            Detail::Poison { .. } => Scenario::Poison.name(),
            Detail::NodeLoss(_) => Scenario::NodeLoss.name(),
            Detail::ScaleOut { .. } => "scale-out",
            Detail::Explore => "explore",
        }
    }

    pub fn lag(&self) -> Option<&Lag> {
        match &self.detail {
            Detail::Lag(lag) => Some(lag),
            _ => None,
        }
    }

    pub fn restart(&self) -> Option<&Restart> {
        match &self.detail {
            Detail::BrokerRestart(r) => Some(r),
            _ => None,
        }
    }

    /// `scale-out`: the drain, the partitions, the decisions out of their partition's order.
    pub fn scale_out(&self) -> Option<(&crate::reporting::drain::ScaleOut, u32, u64)> {
        match &self.detail {
            Detail::ScaleOut { drain, partitions, out_of_order } => Some((drain, *partitions, *out_of_order)),
            _ => None,
        }
    }

    pub fn outage(&self) -> Option<&Restart> {
        match &self.detail {
            Detail::Outage(r) => Some(r),
            _ => None,
        }
    }

    pub fn node_loss(&self) -> Option<&Restart> {
        match &self.detail {
            Detail::NodeLoss(r) => Some(r),
            _ => None,
        }
    }

    pub fn before_replay(&self) -> Option<&Metrics> {
        match &self.detail {
            Detail::Replay { before, .. } => Some(before),
            _ => None,
        }
    }

    pub fn replay_equal(&self) -> Option<bool> {
        Some(self.before_replay()? == self.metrics.as_ref()?)
    }
}

/// Runs the selected experiments over `SimLog`, each in a fresh world.
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<Run>> {
    config.scenarios().into_iter().map(|scenario| run_sim_one(config, scenario)).collect()
}

/// Runs `scenario` over `SimLog`, in a fresh world.
pub fn run_sim_one(config: &Config, scenario: Scenario) -> anyhow::Result<Run> {
    let world = World::new(config.seed, Model::StreamingKafka, Scope::Experiment(scenario.name())).with_node_failover(config.node_failover);
    let world = if crate::traces::traced(Model::StreamingKafka, scenario.name()) { world.traced() } else { world };
    world.log_with(scenario.partitions());
    world.block_on(async { run_experiment(config, scenario, Deployment::start(Hosts::Sim(&world), config).await?).await })
}

/// Runs the selected experiments against the Kafka at `bootstrap`, each on fresh topics, the
/// services as processes of `exe`.
pub async fn run_real(config: &Config, exe: &std::path::Path, bootstrap: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for scenario in config.scenarios() {
        runs.push(
            run_real_one(config, scenario, exe, &Place { bootstrap: bootstrap.into(), brokers: config.brokers, ..Place::default() })
                .await?,
        );
    }
    Ok(runs)
}

/// Runs `scenario` against the Kafka `place` names, on fresh topics (of the scenario's
/// partitions), the services as processes of `exe`.
pub async fn run_real_one(config: &Config, scenario: Scenario, exe: &std::path::Path, place: &Place) -> anyhow::Result<Run> {
    let place = Place { partitions: scenario.partitions(), ..place.clone() };
    let hosts = Hosts::real(exe, Model::StreamingKafka, scenario.name(), place).await?;
    let hosts = if crate::traces::traced(Model::StreamingKafka, scenario.name()) { hosts.traced() } else { hosts };
    run_experiment(config, scenario, Deployment::start(hosts, config).await?).await
}

/// Per-minute metrics as (minute, metrics) rows.
pub fn minutes(metrics: &Metrics) -> Vec<(u64, MinuteMetrics)> {
    metrics.per_minute.iter().map(|(m, v)| (*m, *v)).collect()
}
