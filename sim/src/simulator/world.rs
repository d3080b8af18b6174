//! The simulated world, built once from the seed (turmoil's `Builder` → `Sim` is the model):
//! it owns the virtual clock, the RNG streams every random choice is drawn from, the link
//! latency, the in-memory network with its hosts, and the one place host faults are applied
//! (a service instance started, killed, stopped) and a broker outage. It starts a service
//! through the same door a process does (`campus::serve::build`), on a host of its own making
//! (its transports, stores kept as disks, virtual clock, seeded ids and jitter). Code on a host
//! never rolls dice itself: even the jitter of its reconnect backoff is drawn from the seed.
//!
//! Time: each world runs on a current-thread tokio runtime whose clock is paused, so time only
//! moves when every task waits, and jumps straight to the next timer. A 2 s delay costs no wall
//! time, and scheduling — hence every result — is a function of the seed alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use campus::config::ServiceConfig;
use campus::host::{Host, Transport};
use campus::retry::Policy;
use campus::safeguards::Safeguards;
use campus::services::order::OrderIds;
use campus::services::EventClock;
use campus::store::{MemoryStores, Storage};
use campus::telemetry::{SpanSink, Tracer};
use campus::Model;
use campus::Service;
use tokio::task::JoinHandle;

use crate::simulator::clock::{self, now_ms};
use crate::simulator::log::SimLog;
use crate::simulator::net::{LinkModel, SimNet};
use crate::simulator::queue::SimQueue;
use crate::simulator::rng::SimRng;
use campus::faults::{self, FaultPlan, FaultSwitch};

/// How long the clients of a lost broker node are without a broker in the simulation: the
/// model of a failover (reconnecting to another node, the quorum queues electing new leaders).
/// Measured on the real RabbitMQ cluster (`campus-sim cluster --real-brokers`, node 1
/// SIGKILLed): the services reconnected to node 2 within 20 ms, and publishes were refused for
/// about 0.6 s while the quorum queues elected new leaders.
pub const NODE_FAILOVER: std::time::Duration = std::time::Duration::from_millis(600);

/// How long the simulated group coordinator waits before it evicts a member that died (the
/// services' `session.timeout.ms` on Kafka).
pub const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// The same for the Kafka cluster (broker 1 SIGKILLed): its partitions' leadership moves once
/// the controller has missed the broker's heartbeats (`broker.session.timeout.ms`, 9 s by
/// default), and the clients find the new leaders in their next metadata refresh.
pub const KAFKA_NODE_FAILOVER: std::time::Duration = std::time::Duration::from_secs(9);

/// Why the world's queue is away.
#[derive(Debug, Default)]
struct Away {
    broker_down: bool,
    failing_over: u32,
}

impl Away {
    fn any(&self) -> bool {
        self.broker_down || self.failing_over > 0
    }
}

/// The world's brokers (a world has a queue, a log, or neither).
struct Brokers {
    queue: Option<Arc<SimQueue>>,
    log: Option<Arc<SimLog>>,
}

impl Brokers {
    fn apply(&self, away: &Away) {
        if let Some(queue) = &self.queue {
            queue.set_down(away.any());
        }
        if let Some(log) = &self.log {
            log.set_down(away.any());
        }
    }
}

/// What randomness is drawn for: one experiment of the graded run, `explore`'s schedules of a
/// model, or one round of a benchmark (which runs on real transports, but its orders come from
/// the seed too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Experiment(&'static str),
    Explore,
    Bench { round: u64 },
}

/// What a stream of randomness is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Link latencies of the request/reply network.
    Net,
    /// Publish and delivery latencies of the queue.
    Queue,
    /// Append and commit latencies of the log.
    Log,
    /// The orders a run places.
    Workload,
    /// The gaps between the event times of Part C's orders.
    EventTime,
    /// The jitter of the services' reconnect backoff.
    Backoff,
    /// The gaps between open-loop arrivals (Poisson).
    Arrivals,
}

/// Instead of the world's own transport, what a service instance talks over (`explore` hands
/// each one its view of a crashing queue or log).
pub type TransportFor = Arc<dyn Fn(Service, usize) -> Transport + Send + Sync>;

/// One instance of a service the world runs: the switch that asks its loops to stop, and their
/// tasks.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// One simulated world.
pub struct World {
    seed: u64,
    model: Model,
    scope: Scope,
    link: LinkModel,
    net: Arc<SimNet>,
    /// The world's broker, as a queue (Part B) or a log (Part C), once created.
    queue: Mutex<Option<Arc<SimQueue>>>,
    /// Why the broker is away now: down, or node losses whose clients have not yet failed over
    /// (it serves again only when neither holds).
    away: Arc<Mutex<Away>>,
    log: Mutex<Option<Arc<SimLog>>>,
    /// The loops (consumers, relays) of each instance of each service, aborted when it is
    /// killed.
    running: Mutex<BTreeMap<(Service, usize), Running>>,
    /// The fault switch of each faultable instance.
    switches: Mutex<BTreeMap<(Service, usize), FaultSwitch>>,
    /// The services' stores, kept across their restarts as disks are.
    stores: Arc<MemoryStores>,
    /// One sequence of order ids for the whole world.
    ids: OrderIds,
    safeguards: Safeguards,
    transport_for: Option<TransportFor>,
    /// How long the clients of a lost broker node are without a broker.
    node_failover: std::time::Duration,
    /// Where the services' spans go, if they are traced (ids from the world's seed).
    spans: Option<SpanSink>,
}

impl World {
    /// A world for `model` in `scope`, every stream drawn from `seed`.
    pub fn new(seed: u64, model: Model, scope: Scope) -> World {
        let link = LinkModel::default();
        let net = Arc::new(SimNet::new(stream(seed, model, &scope, Stream::Net), link));
        let node_failover = if model == Model::StreamingKafka { KAFKA_NODE_FAILOVER } else { NODE_FAILOVER };
        World {
            seed,
            model,
            scope,
            link,
            net,
            queue: Mutex::new(None),
            away: Arc::new(Mutex::new(Away::default())),
            log: Mutex::new(None),
            running: Mutex::new(BTreeMap::new()),
            switches: Mutex::new(BTreeMap::new()),
            stores: Arc::new(MemoryStores::default()),
            ids: OrderIds::seeded(seed),
            safeguards: Safeguards::ALL,
            transport_for: None,
            node_failover,
            spans: None,
        }
    }

    /// The same world whose services are traced: their spans, on virtual time and with ids
    /// drawn from the seed, collect in [`World::spans`].
    pub fn traced(mut self) -> World {
        self.spans = Some(SpanSink::seeded(self.seed));
        self
    }

    /// Where the services' spans collect (`None`: not traced).
    pub fn spans(&self) -> Option<&SpanSink> {
        self.spans.as_ref()
    }

    /// The same world whose services keep their state in `stores` (`explore` hands over stores
    /// it reuses).
    pub fn with_stores(mut self, stores: MemoryStores) -> World {
        self.stores = Arc::new(stores);
        self
    }

    /// The same world with one safeguard or more switched off (`explore --break`).
    pub fn with_safeguards(mut self, safeguards: Safeguards) -> World {
        self.safeguards = safeguards;
        self
    }

    /// The same world whose service instances talk over what `transport_for` gives each.
    pub fn with_transport(mut self, transport_for: TransportFor) -> World {
        self.transport_for = Some(transport_for);
        self
    }

    /// The same world whose lost broker nodes leave their clients without a broker this long.
    pub fn with_node_failover(mut self, failover: std::time::Duration) -> World {
        self.node_failover = failover;
        self
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// The random stream for `purpose` (see [`stream`]).
    pub fn stream(&self, purpose: Stream) -> SimRng {
        stream(self.seed, self.model, &self.scope, purpose)
    }

    /// Runs `future` to completion in this world's virtual time.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        clock::block_on(future)
    }

    /// The request/reply network, its hosts and their faults.
    pub fn net(&self) -> &Arc<SimNet> {
        &self.net
    }

    /// The world's in-memory queue (created on first use).
    pub fn queue(&self) -> Arc<SimQueue> {
        self.queue.lock().expect("queue lock").get_or_insert_with(|| Arc::new(SimQueue::new(self.stream(Stream::Queue), self.link))).clone()
    }

    /// The world's in-memory log (created on first use, with `log::PARTITIONS` partitions).
    pub fn log(&self) -> Arc<SimLog> {
        self.log_with(campus::transport::log::PARTITIONS)
    }

    /// The world's in-memory log, created on first use with `partitions` partitions per topic
    /// (a log that exists keeps its own).
    pub fn log_with(&self, partitions: u32) -> Arc<SimLog> {
        self.log
            .lock()
            .expect("log lock")
            .get_or_insert_with(|| Arc::new(SimLog::with_partitions(self.stream(Stream::Log), self.link, partitions)))
            .clone()
    }

    /// How the services' loops meet a broker outage: they reconnect (unless `reconnect` is off:
    /// the lab's `--break no-reconnect`), their jitter drawn from the world's seed.
    pub fn policy(&self, reconnect: bool) -> Policy {
        Policy { reconnect, seed: Some(self.jitter_seed()), ..Policy::production() }
    }

    fn jitter_seed(&self) -> u64 {
        self.stream(Stream::Backoff).next_u64()
    }

    /// What this world gives instance `instance` of `service`: the model's in-memory
    /// transport (or what `explore` put in its place), the kept stores, the virtual clock since
    /// the world began, the world's order ids, jitter from the seed, the world's safeguards.
    fn host_for(&self, service: Service, instance: usize) -> Host {
        let transport = match (&self.transport_for, self.model) {
            (Some(transport_for), _) => transport_for(service, instance),
            (None, Model::SyncRest) => Transport::RequestReply(self.net.clone()),
            (None, Model::AsyncRabbitmq) => Transport::Queue(self.queue()),
            (None, Model::StreamingKafka) => Transport::Log(self.log()),
        };
        let clock = EventClock::Since(clock::started());
        let tracer = match &self.spans {
            Some(sink) => Tracer::new(service, Arc::new(move || clock.system_time()), sink),
            None => Tracer::off(),
        };
        Host {
            transport,
            storage: Storage::Memory(self.stores.clone()),
            clock,
            ids: self.ids.clone(),
            jitter_seed: Some(self.jitter_seed()),
            safeguards: self.safeguards,
            metrics: campus::telemetry::ServiceMetrics::new(),
            tracer,
        }
    }

    /// Starts instance `instance` of the service `config` names, built through the same door as
    /// a process (`campus::serve::build`), on this world's host: its face answers on the network,
    /// its loops run as tasks of the world. A faultable service (Part A's Inventory) suffers
    /// `plan`, changed later through [`World::set_fault`] or its `/admin/fault`.
    pub async fn start(&self, config: &ServiceConfig, plan: &FaultPlan, instance: usize) -> anyhow::Result<()> {
        let service = config.service;
        let built = campus::serve::build(config, &self.host_for(service, instance)).await?;
        let app = if faults::takes_faults(config.model, service) {
            let switch = FaultSwitch::new(plan.clone());
            self.switches.lock().expect("switches lock").insert((service, instance), switch.clone());
            faults::switchable(built.app, &switch)
        } else {
            built.app
        };
        self.net.host(service, instance, app);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = built
            .loops
            .into_iter()
            .map(|each| {
                let (name, work) = (each.name, each.run(stopped.clone()));
                // A loop that gives up is the experiment's to judge (its checks see what it left
                // undone): logged, not raised.
                tokio::spawn(async move {
                    if let Err(e) = work.await {
                        tracing::debug!(%service, instance, task = name, error = %e, "loop ended");
                    }
                })
            })
            .collect();
        tracing::debug!(%service, instance, at_ms = now_ms(), "started");
        let old = self.running.lock().expect("running lock").insert((service, instance), Running { stop, tasks });
        for task in old.into_iter().flat_map(|r| r.tasks) {
            task.abort();
        }
        Ok(())
    }

    /// Instance `instance` of `service` is killed: its loops are aborted where they stand (its
    /// unacknowledged deliveries go back to their queue, its log member goes silent), its face
    /// refuses calls, as a closed port refuses. Its store stays.
    pub async fn kill(&self, service: Service, instance: usize) {
        tracing::debug!(%service, instance, at_ms = now_ms(), "killed");
        self.net.take_down(service, instance);
        let running = self.running.lock().expect("running lock").remove(&(service, instance));
        for task in running.into_iter().flat_map(|r| r.tasks) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Instance `instance` of `service` is asked to stop: its loops finish what they are doing
    /// (a consumer leaves its group) and it is waited for; then its face refuses calls.
    pub async fn stop(&self, service: Service, instance: usize) {
        tracing::debug!(%service, instance, at_ms = now_ms(), "stopping");
        let running = self.running.lock().expect("running lock").remove(&(service, instance));
        if let Some(running) = running {
            let _ = running.stop.send(true);
            for task in running.tasks {
                let _ = task.await;
            }
        }
        self.net.take_down(service, instance);
    }

    /// The instances of `service` running now.
    pub fn running(&self, service: Service) -> Vec<usize> {
        self.running.lock().expect("running lock").keys().filter(|(s, _)| *s == service).map(|(_, k)| *k).collect()
    }

    /// Instance `instance` of a faultable `service` suffers `plan` from its next request on.
    pub fn set_fault(&self, service: Service, instance: usize, plan: FaultPlan) -> anyhow::Result<()> {
        let switches = self.switches.lock().expect("switches lock");
        let switch = switches.get(&(service, instance)).ok_or_else(|| anyhow::anyhow!("{service} #{instance} takes no faults"))?;
        switch.set(plan);
        Ok(())
    }

    /// The database the services' stores share goes down (`up` false: PostgreSQL restarting,
    /// for real) or is back: every store call fails meanwhile, transient, and nothing stored
    /// is lost ([`campus::store::Outage`]).
    pub fn set_database(&self, up: bool) {
        tracing::debug!(up, at_ms = now_ms(), "database");
        self.stores.outage().set_down(!up);
    }

    /// The broker goes down (`up` false) or comes back: the one place a broker outage is
    /// applied, to the world's queue and log alike.
    pub fn set_broker(&self, up: bool) {
        tracing::debug!(up, at_ms = now_ms(), "broker");
        let mut away = self.away.lock().expect("away lock");
        away.broker_down = !up;
        self.brokers().apply(&away);
    }

    /// The broker hangs (`true`: SIGSTOPped for real; nothing answers, nothing is lost; see
    /// `SimQueue::set_hung`, `SimLog::set_hung`) or answers again.
    pub fn set_broker_hung(&self, hung: bool) {
        tracing::debug!(hung, at_ms = now_ms(), "broker");
        let brokers = self.brokers();
        if let Some(queue) = &brokers.queue {
            queue.set_hung(hung);
        }
        if let Some(log) = &brokers.log {
            log.set_hung(hung, SESSION_TIMEOUT);
        }
    }

    /// The world's brokers as they exist now.
    fn brokers(&self) -> Brokers {
        Brokers { queue: self.queue.lock().expect("queue lock").clone(), log: self.log.lock().expect("log lock").clone() }
    }

    /// A broker node the services are connected to dies (a node of a cluster; the others keep
    /// the replicas): every connection to it closes, so for its clients the broker is gone until
    /// they have failed over, the world's node failover later; then it serves again, holding
    /// everything it had confirmed (a quorum queue's majority, a partition's in-sync replicas).
    pub fn lose_node(&self) {
        let failover = self.node_failover;
        tracing::debug!(at_ms = now_ms(), failover_ms = failover.as_millis() as u64, "node lost");
        let (brokers, away) = (self.brokers(), self.away.clone());
        away.lock().expect("away lock").failing_over += 1;
        brokers.apply(&away.lock().expect("away lock"));
        tokio::spawn(async move {
            tokio::time::sleep(failover).await;
            let mut away = away.lock().expect("away lock");
            away.failing_over -= 1;
            brokers.apply(&away);
        });
    }

    /// Stops every service where it stands (routers hold services that hold the network: this
    /// breaks the cycle).
    pub fn clear(&self) {
        for task in std::mem::take(&mut *self.running.lock().expect("running lock")).into_values().flat_map(|r| r.tasks) {
            task.abort();
        }
        self.net.clear();
    }

    /// Where the world's services keep their state (the lab reads their stores there).
    pub fn storage(&self) -> Storage {
        Storage::Memory(self.stores.clone())
    }

    /// The services' stores, once the world is gone (`explore` reuses them).
    pub fn into_stores(self) -> Option<MemoryStores> {
        self.clear();
        let World { stores, .. } = self;
        Arc::try_unwrap(stores).ok()
    }
}

/// The random stream for `purpose`. Every fork of the seed in the lab happens here, so the
/// streams are independent of one another and one seed replays a run exactly. (The labels
/// are those the lab has always used, so a seed gives the same runs as before.)
pub fn stream(seed: u64, model: Model, scope: &Scope, purpose: Stream) -> SimRng {
    let seed = SimRng::new(seed);
    let name = model.name();
    let label = match purpose {
        Stream::Net => "net",
        Stream::Queue => "queue",
        Stream::Log => "log",
        Stream::Workload => "workload",
        Stream::EventTime => "event-time",
        Stream::Backoff => "backoff",
        Stream::Arrivals => "arrivals",
    };
    match (scope, purpose) {
        (Scope::Explore, _) => seed.fork(&format!("explore/{name}")).fork(label),
        (Scope::Bench { round }, _) => seed.fork(&format!("bench/{name}")).fork(&round.to_string()).fork(label),
        (Scope::Experiment(experiment), Stream::Net | Stream::Queue | Stream::Backoff | Stream::Arrivals) => {
            seed.fork(name).fork(experiment).fork(label)
        }
        (Scope::Experiment(experiment), Stream::Log) => seed.fork(&format!("{name}/log")).fork(experiment),
        // Part C's events are the same in every experiment (replay and sim-vs-real compare
        // them), and so are Part A's orders; Part B's differ per experiment.
        (Scope::Experiment(_), Stream::Workload | Stream::EventTime) if model == Model::StreamingKafka => seed.fork(name).fork(label),
        (Scope::Experiment(_), Stream::Workload) if model == Model::SyncRest => seed.fork(&format!("{name}/workload")),
        (Scope::Experiment(experiment), Stream::Workload | Stream::EventTime) => seed.fork(&format!("{name}/workload")).fork(experiment),
    }
}
