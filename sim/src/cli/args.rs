//! The arguments of the commands that run experiments and benchmarks, and the configs they
//! become.

use std::time::Duration;

use clap::Parser;

use crate::{async_rabbitmq, bench, cluster, explore, streaming_kafka, sync_rest};

/// A count flag from `min` to `max`: checked before anything starts, and bounded so that no
/// value makes the run allocate more than this machine has.
fn count(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=max)
}

/// `campus-sim bench …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct BenchArgs {
    /// Measure only this model's real transport (needs --real-brokers). Without it: the
    /// simulation's speed, plus every model's real transport with --real-brokers.
    #[arg(long, value_enum)]
    pub model: Option<campus::Model>,
    /// Measured rounds per case, after one warm-up round (medians and spread are reported).
    #[arg(long, default_value_t = 3, value_parser = count(1, 100))]
    pub repeats: usize,
    /// async-rabbitmq: unacknowledged deliveries per consumer, for our services and for the
    /// raw floor alike — the most one window of a consumer's handling takes. Comma-separated,
    /// each is measured in turn (a deployment of its own): the default is the curve over 1, 10
    /// (the workflow's default) and 50.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 50], value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub prefetch: Vec<u16>,
    /// The RabbitMQ used with --real-brokers.
    #[arg(long, env = "AMQP_URL", default_value = campus::transport::amqp::DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// Malformed records (not JSON, wrong schema, unknown version) appended among the events
    /// in the poison experiment.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub poison: u64,
    /// The Kafka used with --real-brokers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = campus::transport::kafka::DEFAULT_BOOTSTRAP_SERVERS)]
    pub bootstrap_servers: String,
    /// Instead of the timings: send this many orders through each model's services (real
    /// processes; needs --real-brokers) in ten steps, and write each process's resident memory
    /// and its peak after each step to memory.csv.
    #[arg(long, value_name = "ORDERS", value_parser = clap::value_parser!(u64).range(1000..=10_000_000))]
    pub memory: Option<u64>,
    /// Also time Part C end to end over real Kafka (needs --real-brokers): the producer,
    /// Inventory and Analytics as processes, 10,000, 100,000 and 1,000,000 events each appended,
    /// decided and counted (about 10 minutes per repeat).
    #[arg(long)]
    pub end_to_end: bool,
    /// Instead of the timings: latency against offered load (needs --real-brokers). Orders
    /// arrive at 50, 100, 200, … a second whatever the answers, 5 s at each rate, on each
    /// model's real deployment (Part A also with Inventory 2 s slow), until something gives: a
    /// completion p99 above its bound, or an order not accepted. Writes bench_rates.csv and a
    /// figure.
    #[arg(long, conflicts_with_all = ["memory", "end_to_end"])]
    pub rates: bool,
}

impl BenchArgs {
    pub fn config(&self, seed: u64) -> bench::Config {
        bench::Config {
            seed,
            model: self.model,
            repeats: self.repeats,
            prefetch: self.prefetch.clone(),
            amqp_url: self.amqp_url.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            memory: self.memory,
            end_to_end: self.end_to_end,
            rates: self.rates,
        }
    }
}

/// `explore --real-brokers`: wall ms per virtual ms, and real runs to shrink a failure with.
pub const DEFAULT_TIME_SCALE: u32 = 5;
pub const DEFAULT_SHRINK_BUDGET: u32 = 20;

/// `campus-sim explore …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct ExploreArgs {
    /// Whose property: sync-rest, async-rabbitmq or streaming-kafka (all three when not given,
    /// or those a --break applies to).
    #[arg(long, value_enum)]
    pub model: Option<campus::Model>,
    /// Schedules to generate per model (--seed decides which).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub cases: u32,
    /// Switch one safeguard off (lab only): dedup (Inventory forgets processed orders;
    /// async-rabbitmq), auto-ack (ack on receipt; async-rabbitmq), commit-first (offsets
    /// committed before the work; streaming-kafka), no-transaction (Inventory's outcomes,
    /// changelog and offsets written separately; streaming-kafka), no-timeout (Order waits for
    /// Inventory forever; sync-rest), no-reconnect (loops give up when the broker, or a store,
    /// goes away), no-stall-watch (a consumer whose fetches went silent is kept;
    /// streaming-kafka). The exploration then succeeds when the checker catches it.
    #[arg(long = "break", value_enum)]
    pub broken: Option<explore::Break>,
    /// Run just this schedule (the JSON a failed exploration prints) and show its trace (with
    /// --real-brokers: in the simulation and on the real deployment, both traces).
    #[arg(long, requires = "model")]
    pub replay: Option<String>,
    /// With --real-brokers: wall milliseconds each virtual millisecond of a schedule takes on
    /// the real deployment. At 1, a 100 ms broker outage would be over before RabbitMQ had
    /// finished stopping (seconds) and a crashed service would be back before a process can
    /// start (~0.1 s); at 5 the schedule's 20 ms between orders is 100 ms.
    #[arg(long, default_value_t = DEFAULT_TIME_SCALE, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub time_scale: u32,
    /// With --real-brokers: real runs the first real failure may take to shrink (0: not
    /// shrunk). The simulation's shrinker goes first and costs one real run to confirm; if
    /// the real run does not fail on its answer, proptest shrinks again with real runs.
    #[arg(long, default_value_t = DEFAULT_SHRINK_BUDGET, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub shrink_budget: u32,
    /// The RabbitMQ used with --real-brokers (async-rabbitmq).
    #[arg(long, env = "AMQP_URL", default_value = campus::transport::amqp::DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// The Kafka used with --real-brokers (streaming-kafka).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = campus::transport::kafka::DEFAULT_BOOTSTRAP_SERVERS)]
    pub bootstrap_servers: String,
    /// With --real-brokers: play on the clusters that `scripts/brokers.sh up --cluster` starts —
    /// async-rabbitmq on the 3-node RabbitMQ cluster and PostgreSQL (Inventory instances share
    /// the database, which a schedule may restart), streaming-kafka on the 3-broker Kafka
    /// cluster: a schedule's node loss SIGKILLs node (broker) 1, started again after the case;
    /// its whole-broker outage or hang is not played (dropped in both runs).
    #[arg(long)]
    pub cluster: bool,
    /// The RabbitMQ cluster used with --cluster: its nodes' AMQP URLs, the one lost first.
    #[arg(long, env = "CAMPUS_CLUSTER_AMQP_URL", default_value = cluster::DEFAULT_CLUSTER_AMQP_URL)]
    pub cluster_amqp_url: String,
    /// The PostgreSQL used with --cluster (a schema per case).
    #[arg(long, env = "CAMPUS_CLUSTER_STORE", default_value = campus::store::postgres::DEFAULT_POSTGRES_URL)]
    pub cluster_store: String,
    /// The Kafka cluster used with --cluster (streaming-kafka): its brokers (host:port,
    /// comma-separated; broker 1, the one lost, first).
    #[arg(long, env = "CAMPUS_CLUSTER_BOOTSTRAP_SERVERS", default_value = cluster::DEFAULT_CLUSTER_BOOTSTRAP)]
    pub cluster_bootstrap_servers: String,
}

/// `campus-sim sync-rest …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct SyncRestArgs {
    /// Which experiment(s): baseline, open-loop (orders arriving at --rate a second whatever
    /// the answers, as in Parts B and C), delay (Inventory 2 s slower), timeout (Order gives up
    /// after 1 s: 504, with Inventory slow before deciding and slow after reserving), failure
    /// (Inventory down, then answering 500: 503), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub experiment: sync_rest::Experiment,
    /// Requests sent in `baseline` and in each `failure` case.
    #[arg(long, default_value_t = 1000, value_parser = count(1, 1_000_000))]
    pub requests: usize,
    /// Requests sent in `delay` and `timeout`, where each takes 1–2 s (of virtual time in the
    /// simulation, of real time with --real-brokers).
    #[arg(long, default_value_t = 100, value_parser = count(1, 100_000))]
    pub slow_requests: usize,
    /// Clients sending at once, each sending its next order when the last one is answered
    /// (every experiment but open-loop).
    #[arg(long, default_value_t = 10, value_parser = count(1, 1024))]
    pub concurrency: usize,
    /// Orders arriving per second in open-loop and open-delay, whatever the answers.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// How open-loop orders arrive: steady (one every 1/rate s) or poisson (independent
    /// arrivals at that mean rate, drawn from the seed).
    #[arg(long, value_enum, default_value = "steady")]
    pub arrivals: crate::load::Shape,
    /// Orders sent in open-loop and open-delay.
    #[arg(long, default_value_t = 200, value_parser = count(1, 1_000_000))]
    pub open_requests: usize,
    /// Inventory's injected delay in `delay` and `timeout`, in ms.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub delay_ms: u64,
    /// Order's timeout on its calls in `timeout`, in ms (must be below --delay-ms).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Order's timeout on its calls in the other experiments, in ms (must be above --delay-ms).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub patient_timeout_ms: u64,
    /// Units of each menu item Inventory starts with (enough that `baseline` never runs out).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub stock: u32,
    /// The protocols every experiment runs over, in turn, comma-separated: rest (JSON over
    /// HTTP/1.1), grpc (campus.v1 over HTTP/2, the deadline sent with each call). Both by
    /// default, so that the report shows them side by side; a run replaces its mode's rows.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rest,grpc")]
    pub protocol: Vec<campus::Protocol>,
}

/// `campus-sim async-rabbitmq …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct AsyncRabbitmqArgs {
    /// Which experiment(s): outage (Inventory down while orders keep coming), idempotency
    /// (every OrderPlaced delivered twice), poison (malformed messages among good ones),
    /// broker-restart (RabbitMQ itself down while orders keep coming), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub experiment: async_rabbitmq::Experiment,
    /// Orders per second during the outage experiment.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// How orders arrive: steady (one every 1/rate s) or poisson (independent arrivals at that
    /// mean rate, drawn from the seed).
    #[arg(long, value_enum, default_value = "steady")]
    pub arrivals: crate::load::Shape,
    /// Seconds Inventory stays down in the outage experiment.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub down_for: u64,
    /// Seconds RabbitMQ itself stays down in the broker-restart experiment (real: between
    /// `rabbitmqctl stop_app` and `start_app`, which needs root or sudo).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub broker_down_for: u64,
    /// Seconds orders flow before the outage, and again after Inventory is back.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub lead: u64,
    /// Orders sent in the idempotency and poison experiments.
    #[arg(long, default_value_t = 200, value_parser = count(1, 1_000_000))]
    pub orders: usize,
    /// OrderPlaced messages published a second time in the idempotency experiment.
    #[arg(long, default_value_t = 200, value_parser = count(0, 1_000_000))]
    pub duplicates: usize,
    /// Malformed messages published in the poison experiment.
    #[arg(long, default_value_t = 40, value_parser = count(1, 100_000))]
    pub poison: usize,
    /// Units of each menu item Inventory starts with.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub stock: u32,
    /// Unacknowledged deliveries each consumer may hold.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub prefetch: u16,
    /// Seconds a run may take to settle after its last order before it is declared failed.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub settle_within: u64,
    /// The RabbitMQ used with --real-brokers.
    #[arg(long, env = "AMQP_URL", default_value = campus::transport::amqp::DEFAULT_AMQP_URL)]
    pub amqp_url: String,
}

impl AsyncRabbitmqArgs {
    fn parse_from_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: AsyncRabbitmqArgs,
        }
        Only::parse_from(["async-rabbitmq"]).args
    }

    pub fn config(&self, seed: u64) -> async_rabbitmq::Config {
        async_rabbitmq::Config {
            seed,
            experiment: self.experiment,
            rate: self.rate,
            arrivals: self.arrivals,
            down_for: Duration::from_secs(self.down_for),
            broker_down_for: Duration::from_secs(self.broker_down_for),
            lead: Duration::from_secs(self.lead),
            orders: self.orders,
            duplicates: self.duplicates,
            poison: self.poison,
            stock: self.stock,
            prefetch: self.prefetch,
            settle_within: Duration::from_secs(self.settle_within),
            ..async_rabbitmq::Config::default()
        }
    }
}

/// `campus-sim cluster …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct ClusterArgs {
    /// Which experiment(s): node-loss (the node the services use SIGKILLed under load, started
    /// again later), scale-out (a backlog drained by each --instances count of Inventory, then
    /// by the largest with one instance SIGKILLed halfway; Part C over each --partitions
    /// count), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub experiment: cluster::Experiment,
    /// Only this model's runs: async-rabbitmq or streaming-kafka (each: node-loss and
    /// scale-out). Both when not given.
    #[arg(long, value_enum)]
    pub model: Option<campus::Model>,
    /// Inventory instance counts for scale-out, comma-separated (1 to 16 each).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub instances: Vec<u16>,
    /// Part C: partitions of the topics in scale-out, comma-separated (1 to 64 each); each
    /// count is drained by every --instances count.
    #[arg(long, value_delimiter = ',', default_value = "3,6", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub partitions: Vec<u32>,
    /// Orders in each scale-out backlog (Part B); Part C's backlog is its workload's --events.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub backlog: u64,
    /// Part C: events of the workload (node-loss appends them at 500/s; scale-out drains them).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    pub events: u64,
    /// Orders per second during node-loss.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// Seconds orders flow before the node is lost, and again after it is back.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub lead: u64,
    /// Seconds the lost node stays down before it is started again.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub node_down_for: u64,
    /// Unacknowledged deliveries each consumer may hold.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// The RabbitMQ cluster used with --real-brokers: its nodes' AMQP URLs, comma-separated,
    /// the one the services use first (and node-loss kills) first.
    #[arg(long, env = "CAMPUS_CLUSTER_AMQP_URL", default_value = cluster::DEFAULT_CLUSTER_AMQP_URL)]
    pub amqp_url: String,
    /// The PostgreSQL the services keep their state in with --real-brokers (a schema per run).
    #[arg(long, env = "CAMPUS_CLUSTER_STORE", default_value = campus::store::postgres::DEFAULT_POSTGRES_URL)]
    pub store: String,
    /// The Kafka cluster used with --real-brokers (host:port, comma-separated; the broker
    /// node-loss kills first).
    #[arg(long, env = "CAMPUS_CLUSTER_BOOTSTRAP_SERVERS", default_value = cluster::DEFAULT_CLUSTER_BOOTSTRAP)]
    pub bootstrap_servers: String,
}

impl ClusterArgs {
    pub fn brokers(&self) -> cluster::Brokers {
        cluster::Brokers { amqp_url: self.amqp_url.clone(), store: self.store.clone(), bootstrap: self.bootstrap_servers.clone() }
    }

    pub fn config(&self, seed: u64) -> cluster::Config {
        let defaults = async_rabbitmq::Config::default();
        cluster::Config {
            experiment: self.experiment,
            instances: self.instances.iter().map(|&n| usize::from(n)).collect(),
            partitions: self.partitions.clone(),
            model: self.model,
            streaming: streaming_kafka::Config {
                seed,
                events: self.events as usize,
                node_down_for: Duration::from_secs(self.node_down_for),
                ..streaming_kafka::Config::default()
            },
            messaging: async_rabbitmq::Config {
                seed,
                rate: self.rate,
                lead: Duration::from_secs(self.lead),
                node_down_for: Duration::from_secs(self.node_down_for),
                backlog: self.backlog as usize,
                prefetch: self.prefetch,
                ..defaults
            },
        }
    }
}

/// `campus-sim streaming-kafka …`
#[derive(Debug, Clone, clap::Args)]
// A negative count is refused as a value of its flag, not taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct StreamingKafkaArgs {
    /// Which experiment(s): produce (timed), lag (a throttled consumer falls behind and catches
    /// up), replay (reset the analytics group to the beginning and recompute), broker-restart
    /// (the broker killed mid-stream and started again), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub experiment: streaming_kafka::Experiment,
    /// OrderPlaced events produced (their event times span about 90 minutes per 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = count(1, 1_000_000))]
    pub events: usize,
    /// Records per second the analytics consumer may handle in the lag experiment.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub throttle_per_s: u32,
    /// Units of each menu item Inventory starts with (the default runs out near the end).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub stock: u32,
    /// Records per append and per poll.
    #[arg(long, default_value_t = 500, value_parser = count(1, 100_000))]
    pub batch: usize,
    /// Seconds a consumer may take to catch up before the run is declared failed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub settle_within: u64,
    /// Events per second the producer appends in the broker-restart experiment (so that the
    /// broker dies mid-stream).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub produce_rate: u32,
    /// Seconds the broker stays dead in the broker-restart experiment before it is started
    /// again (real: SIGKILL of the Kafka JVM, then `scripts/brokers.sh up kafka`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub broker_down_for: u64,
    /// Malformed records (not JSON, wrong schema, unknown version) appended among the events
    /// in the poison experiment.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub poison: u64,
    /// Events per second during outage (Part B's rate).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub outage_rate: u32,
    /// How outage's orders arrive: steady (one every 1/rate s) or poisson (independent
    /// arrivals at that mean rate, drawn from the seed).
    #[arg(long, value_enum, default_value = "steady")]
    pub arrivals: crate::load::Shape,
    /// Seconds Inventory is down in outage (events flow 10 s before and after).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub down_for: u64,
    /// The Kafka used with --real-brokers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = campus::transport::kafka::DEFAULT_BOOTSTRAP_SERVERS)]
    pub bootstrap_servers: String,
}

impl StreamingKafkaArgs {
    fn parse_from_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: StreamingKafkaArgs,
        }
        Only::parse_from(["streaming-kafka"]).args
    }

    pub fn config(&self, seed: u64) -> streaming_kafka::Config {
        streaming_kafka::Config {
            seed,
            experiment: self.experiment,
            events: self.events,
            throttle_per_s: self.throttle_per_s,
            stock: self.stock,
            batch: self.batch,
            settle_within: Duration::from_secs(self.settle_within),
            produce_rate: self.produce_rate,
            broker_down_for: Duration::from_secs(self.broker_down_for),
            poison: self.poison as usize,
            outage_rate: self.outage_rate,
            arrivals: self.arrivals,
            down_for: Duration::from_secs(self.down_for),
            ..streaming_kafka::Config::default()
        }
    }
}

impl Default for StreamingKafkaArgs {
    fn default() -> Self {
        StreamingKafkaArgs::parse_from_defaults()
    }
}

impl Default for AsyncRabbitmqArgs {
    fn default() -> Self {
        AsyncRabbitmqArgs::parse_from_defaults()
    }
}

impl Default for SyncRestArgs {
    fn default() -> Self {
        SyncRestArgs::parse_from_defaults()
    }
}

impl SyncRestArgs {
    fn parse_from_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: SyncRestArgs,
        }
        Only::parse_from(["sync-rest"]).args
    }

    pub fn config(&self, seed: u64) -> sync_rest::Config {
        sync_rest::Config {
            seed,
            experiment: self.experiment,
            requests: self.requests,
            slow_requests: self.slow_requests,
            concurrency: self.concurrency,
            rate: self.rate,
            arrivals: self.arrivals,
            open_requests: self.open_requests,
            delay: Duration::from_millis(self.delay_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            patient_timeout: Duration::from_millis(self.patient_timeout_ms),
            stock: self.stock,
            protocols: self.protocol.clone(),
        }
    }
}
