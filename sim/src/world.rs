//! The simulated world, built once from the seed (turmoil's `Builder` → `Sim` is the model):
//! it owns the virtual clock, the RNG streams every random choice is drawn from, the link
//! latency, the in-memory network with its hosts, and the one place host faults are applied
//! (a host taken down, crashed, restarted) and a broker outage. Code on a host never rolls
//! dice itself: even the jitter of its reconnect backoff is drawn from the world's seed.
//!
//! Time: each world runs on a current-thread tokio runtime whose clock is paused, so time only
//! moves when every task waits, and jumps straight to the next timer. A 2 s delay costs no wall
//! time, and scheduling — hence every result — is a function of the seed alone.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use campus::host::Built;
use campus::retry::Policy;
use campus::Model;
use campus::Service;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::log::SimLog;
use crate::net::{LinkModel, SimNet};
use crate::queue::SimQueue;
use crate::rng::SimRng;

thread_local! {
    /// When the world running on this thread began (its tasks all run on this thread).
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// How long the clients of a lost broker node are without a broker in the simulation: the
/// model of a failover (reconnecting to another node, the quorum queues electing new leaders).
/// Measured on the real RabbitMQ cluster (`campus-sim cluster --real-brokers`, node 1
/// SIGKILLed): the services reconnected to node 2 within 20 ms, and publishes were refused for
/// about 0.6 s while the quorum queues elected new leaders.
pub const NODE_FAILOVER: std::time::Duration = std::time::Duration::from_millis(600);

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
    /// The loops (consumers, relays) of each instance of each host that has some, aborted when
    /// it goes down, with the switch that would ask them to stop.
    work: Mutex<BTreeMap<(Service, usize), (tokio::sync::watch::Sender<bool>, Vec<JoinHandle<()>>)>>,
}

impl World {
    /// A world for `model` in `scope`, every stream drawn from `seed`.
    pub fn new(seed: u64, model: Model, scope: Scope) -> World {
        let link = LinkModel::default();
        let net = Arc::new(SimNet::new(stream(seed, model, &scope, Stream::Net), link));
        World {
            seed,
            model,
            scope,
            link,
            net,
            queue: Mutex::new(None),
            away: Arc::new(Mutex::new(Away::default())),
            log: Mutex::new(None),
            work: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The random stream for `purpose` (see [`stream`]).
    pub fn stream(&self, purpose: Stream) -> SimRng {
        stream(self.seed, self.model, &self.scope, purpose)
    }

    /// Runs `future` to completion in this world's virtual time.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(future)
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
        Policy { reconnect, seed: Some(self.stream(Stream::Backoff).next_u64()) }
    }

    /// The broker goes down (`up` false) or comes back: the one place a broker outage is
    /// applied, to the world's queue and log alike.
    pub fn set_broker(&self, up: bool) {
        tracing::debug!(up, at_ms = now_ms(), "broker");
        let mut away = self.away.lock().expect("away lock");
        away.broker_down = !up;
        self.brokers().apply(&away);
    }

    /// The world's brokers as they exist now.
    fn brokers(&self) -> Brokers {
        Brokers { queue: self.queue.lock().expect("queue lock").clone(), log: self.log.lock().expect("log lock").clone() }
    }

    /// A broker node the services are connected to dies (a node of a cluster; the others keep
    /// the replicas): every connection to it closes, so for its clients the broker is gone until
    /// they have failed over, `failover` later; then it serves again, holding everything it had
    /// confirmed (a quorum queue's majority, a partition's in-sync replicas).
    pub fn lose_node(&self, failover: std::time::Duration) {
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

    /// `peer` answers with `app`.
    pub fn host(&self, peer: Service, app: Router) {
        self.net.host(peer, app);
    }

    /// `peer` answers with the service's app and runs each of its loops as a task of the world.
    pub fn start(&self, peer: Service, service: Built) {
        self.start_instance(peer, 0, service);
    }

    /// Instance `instance` of `peer` runs the service's loops beside the others (competing
    /// consumers of the same queues, sharing their store); calls to `peer` reach its app.
    pub fn start_instance(&self, peer: Service, instance: usize, service: Built) {
        self.net.host(peer, service.app);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = service.loops.into_iter().map(|each| {
            let (name, work) = (each.name, each.run(stopped.clone()));
            tokio::spawn(async move {
                if let Err(e) = work.await {
                    tracing::error!(task = name, error = %e, "task failed");
                }
            })
        });
        let tasks = tasks.collect();
        for old in self.work.lock().expect("work lock").insert((peer, instance), (stop, tasks)).into_iter().flat_map(|(_, tasks)| tasks) {
            old.abort();
        }
    }

    /// Instance `instance` of `peer` crashes: its loops are aborted where they stand (its
    /// unacknowledged deliveries go back to their queue); the other instances go on.
    pub async fn crash_instance(&self, peer: Service, instance: usize) {
        let tasks = self.work.lock().expect("work lock").remove(&(peer, instance));
        for task in tasks.into_iter().flat_map(|(_, tasks)| tasks) {
            task.abort();
            let _ = task.await;
        }
    }

    /// `peer` crashes: its work is aborted where it stands (unacknowledged deliveries go back to
    /// their queue) and calls to it are refused, as a closed port refuses.
    pub async fn take_down(&self, peer: Service) {
        let instances: Vec<usize> = self.work.lock().expect("work lock").keys().filter(|(p, _)| *p == peer).map(|(_, k)| *k).collect();
        for instance in instances {
            self.crash_instance(peer, instance).await;
        }
        self.net.take_down(peer);
    }

    /// Whether `peer` runs (hosted, and not taken down).
    pub fn is_up(&self, peer: Service) -> bool {
        self.net.is_up(peer)
    }

    /// Stops every host (routers hold services that hold the network: this breaks the cycle).
    pub fn clear(&self) {
        for task in std::mem::take(&mut *self.work.lock().expect("work lock")).into_values().flat_map(|(_, tasks)| tasks) {
            task.abort();
        }
        self.net.clear();
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
    };
    match (scope, purpose) {
        (Scope::Explore, _) => seed.fork(&format!("explore/{name}")).fork(label),
        (Scope::Bench { round }, _) => seed.fork(&format!("bench/{name}")).fork(&round.to_string()).fork(label),
        (Scope::Experiment(experiment), Stream::Net | Stream::Queue | Stream::Backoff) => seed.fork(name).fork(experiment).fork(label),
        (Scope::Experiment(experiment), Stream::Log) => seed.fork(&format!("{name}/log")).fork(experiment),
        // Part C's events are the same in every experiment (replay and sim-vs-real compare
        // them), and so are Part A's orders; Part B's differ per experiment.
        (Scope::Experiment(_), Stream::Workload | Stream::EventTime) if model == Model::StreamingKafka => seed.fork(name).fork(label),
        (Scope::Experiment(_), Stream::Workload) if model == Model::SyncRest => seed.fork(&format!("{name}/workload")),
        (Scope::Experiment(experiment), Stream::Workload | Stream::EventTime) => seed.fork(&format!("{name}/workload")).fork(experiment),
    }
}

/// Runs `future` to completion in virtual time, on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime always builds");
    runtime.block_on(async {
        STARTED.with(|s| s.set(Some(Instant::now())));
        future.await
    })
}

/// Milliseconds of virtual time since the world on this thread began (0 outside one): the
/// timestamps of traces.
pub fn now_ms() -> u64 {
    STARTED.with(|s| s.get()).map_or(0, |t| t.elapsed().as_millis() as u64)
}
