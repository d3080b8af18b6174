//! Running one service as its own process: what `campus-sim serve <service>` does, what real
//! mode starts as children and what compose runs as containers (configured by the `CAMPUS_*`
//! environment variables).
//!
//! Once listening, the process prints `READY <service> http://<addr>` on stdout (a harness
//! waits for that line), then serves until SIGINT or SIGTERM and finishes in-flight requests.
//! A Part B service never stops because its broker went away: it starts even while the broker
//! is down, and its consumers and relay reconnect (backoff with jitter) for as long as it
//! takes; `/health` says meanwhile what it can do (see `crate::api::Probe`). Only a loop that
//! ends for good (it cannot, short of a bug) stops the process with an error: a service that
//! no longer consumes must not look healthy.
//!
//! Part C's services (`--model streaming-kafka`: `producer`, `inventory`, `analytics`) connect
//! to Kafka before they announce READY (retrying while it is away), create the namespace's
//! topics if they are missing, and run their loops until a signal; Analytics writes its
//! metrics to `--metrics-file` every second and once more when it stops.

use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::model::{Model, Service};
use crate::retry::{Backoff, Policy};
use crate::services::analytics::Analytics;
use crate::services::inventory::Inventory;
use crate::services::order::{AsyncOrderService, OrderIds};
use crate::services::EventClock;
use crate::store::{InventoryStore, NotificationStore, OrderStore, Postgres, StoreError};
use crate::transport::amqp::{AmqpQueue, DEFAULT_AMQP_URL};
use crate::transport::http::{serve, HttpRequestReply};
use crate::transport::kafka::{KafkaLog, DEFAULT_BOOTSTRAP_SERVERS};
use crate::transport::log::{EventLog, LogError};
use crate::transport::queue::{MessageQueue, QueueError, Topology};

/// `serve …`: which service, in which model, and what it needs to run.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum, env = "CAMPUS_SERVICE")]
    pub service: Service,
    /// The communication model: sync-rest and async-rabbitmq run order, inventory and
    /// notification; streaming-kafka runs producer, inventory and analytics.
    #[arg(long, value_enum, default_value = "sync-rest")]
    pub model: Model,
    /// Address to listen on. Keep the loopback default unless you mean to expose the service
    /// (compose sets 0.0.0.0 inside its private network).
    #[arg(long, env = "CAMPUS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (printed in the READY line). [default: 8001 order,
    /// 8002 inventory, 8003 notification, 8004 producer, 8005 analytics]
    #[arg(long, env = "CAMPUS_PORT")]
    pub port: Option<u16>,
    /// (order) Where Inventory listens.
    #[arg(long, env = "CAMPUS_INVENTORY_URL", default_value = "http://127.0.0.1:8002")]
    pub inventory_url: String,
    /// (order) Where Notification listens.
    #[arg(long, env = "CAMPUS_NOTIFICATION_URL", default_value = "http://127.0.0.1:8003")]
    pub notification_url: String,
    /// (order) Timeout of each call to Inventory and Notification, in ms. A call to Inventory
    /// that takes longer is answered 504.
    #[arg(long, env = "CAMPUS_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// (inventory) Units of each menu item in stock at start.
    #[arg(long, env = "CAMPUS_STOCK", default_value_t = 5000)]
    pub stock: u32,
    /// Items to add to the menu (burrito, coffee, pho, pizza-slice, salad, sandwich),
    /// comma-separated, e.g. `burger,fries`: for scripts written against other implementations
    /// of the assignment. Give every service of a deployment the same list (an Inventory that
    /// does not know an item refuses its orders as malformed).
    #[arg(long, env = "CAMPUS_MENU", value_delimiter = ',', value_name = "ITEMS")]
    pub menu: Vec<String>,
    /// (async-rabbitmq) The RabbitMQ to use.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// (async-rabbitmq, streaming-kafka) Prefix of every exchange, queue and topic name, so
    /// that runs sharing a broker do not see each other's messages.
    #[arg(long, env = "CAMPUS_NAMESPACE", default_value = "campus")]
    pub namespace: String,
    /// (async-rabbitmq) Where the service keeps its SQLite store (`<service>.sqlite`), when
    /// --store is not given.
    #[arg(long, env = "CAMPUS_DATA_DIR", default_value = "campus-data")]
    pub data_dir: PathBuf,
    /// (async-rabbitmq) A PostgreSQL database to keep the service's state in
    /// (`postgres://user:password@127.0.0.1:5432/db`), shared by every instance given the same
    /// database and --namespace (a schema named after it): run several Inventories on one.
    /// Without it each process keeps a SQLite file in --data-dir of its own.
    #[arg(long, env = "CAMPUS_STORE", value_parser = postgres_url)]
    pub store: Option<String>,
    /// (async-rabbitmq) Unacknowledged deliveries a consumer may hold.
    #[arg(long, env = "CAMPUS_PREFETCH", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// (streaming-kafka) The Kafka to use (host:port, comma-separated).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = DEFAULT_BOOTSTRAP_SERVERS)]
    pub kafka_bootstrap: String,
    /// (streaming-kafka: inventory, analytics) Records per poll.
    #[arg(long, env = "CAMPUS_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// (streaming-kafka: analytics) Handle at most this many records per second (to show lag).
    #[arg(long, env = "CAMPUS_THROTTLE_PER_S", value_parser = clap::value_parser!(u32).range(1..))]
    pub throttle_per_s: Option<u32>,
    /// (streaming-kafka: analytics) Write the metrics (JSON, as `GET /metrics`) here every
    /// second and when stopping.
    #[arg(long, env = "CAMPUS_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// (streaming-kafka) Partitions of each topic, when this service is the first to create
    /// the namespace's topics (topics that exist keep theirs).
    #[arg(long, env = "CAMPUS_PARTITIONS", default_value_t = crate::transport::log::PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub partitions: u32,
    /// (streaming-kafka: inventory) Run as the instance of this name, one of several
    /// Inventories in one consumer group: it decides only the partitions the group assigns it,
    /// each in offset order with a stock of its own (--stock units of each item per
    /// partition). Without it, one Inventory decides every partition in event-time order from
    /// one stock — run only one such.
    #[arg(long, env = "CAMPUS_INSTANCE", value_parser = instance_name)]
    pub instance: Option<String>,
}

/// An instance name: it becomes part of a Kafka transactional id.
fn instance_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 letters, digits, '-' or '_'".into())
    }
}

/// The environment variables [`ServeArgs`] reads. A harness that starts services removes them
/// from the children's environment, so a variable exported for a compose-style run cannot skew
/// an experiment.
pub const SERVE_ENV: [&str; 19] = [
    "CAMPUS_SERVICE",
    "CAMPUS_HOST",
    "CAMPUS_PORT",
    "CAMPUS_INVENTORY_URL",
    "CAMPUS_NOTIFICATION_URL",
    "CAMPUS_TIMEOUT_MS",
    "CAMPUS_STOCK",
    "CAMPUS_MENU",
    "AMQP_URL",
    "CAMPUS_NAMESPACE",
    "CAMPUS_DATA_DIR",
    "CAMPUS_STORE",
    "CAMPUS_PREFETCH",
    "KAFKA_BOOTSTRAP_SERVERS",
    "CAMPUS_BATCH",
    "CAMPUS_THROTTLE_PER_S",
    "CAMPUS_METRICS_FILE",
    "CAMPUS_PARTITIONS",
    "CAMPUS_INSTANCE",
];

/// Why a service process stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{model} has no {service} service; its services are {}", Service::of(*model).iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
    NoSuchService { model: Model, service: Service },
    #[error("binding {addr} for {service}: {source}")]
    Bind { service: Service, addr: SocketAddr, source: std::io::Error },
    #[error("creating the data directory {}: {source}", dir.display())]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("{service}'s store: {source}")]
    Store { service: Service, source: StoreError },
    #[error("{service}'s consumer stopped (the broker closed the connection?)")]
    WorkEnded { service: Service },
    #[error("{service}'s consumer failed: {source}")]
    WorkFailed { service: Service, source: QueueError },
    #[error("{service}'s log: {source}")]
    Log { service: Service, source: LogError },
    #[error("writing the metrics file {}: {source}", path.display())]
    MetricsFile { path: PathBuf, source: std::io::Error },
    #[error("--menu: {0}")]
    Menu(crate::domain::ValidationError),
    #[error("serving {service}: {source}")]
    Io { service: Service, source: std::io::Error },
}

/// Runs the service `args` names until a signal (or until its work ends, which is an error).
/// `layer` wraps the service's router before it is served: the lab injects its faults there;
/// production passes it the router unchanged.
pub async fn run(args: ServeArgs, layer: impl FnOnce(Router) -> Router) -> Result<(), ServeError> {
    if !Service::of(args.model).contains(&args.service) {
        return Err(ServeError::NoSuchService { model: args.model, service: args.service });
    }
    // An empty CAMPUS_MENU (a compose file passing the variable through unset) adds nothing.
    let extra: Vec<String> = args.menu.iter().filter(|item| !item.is_empty()).cloned().collect();
    if !extra.is_empty() {
        crate::domain::widen_menu(&extra).map_err(ServeError::Menu)?;
        tracing::info!(items = %extra.join(","), "menu widened");
    }
    match args.model {
        Model::SyncRest => {
            let app = sync_rest(&args);
            listen(&args, layer(app), std::future::pending()).await
        }
        Model::AsyncRabbitmq => {
            let service = async_rabbitmq(&args).await?;
            let name = args.service;
            let mut loops = tokio::task::JoinSet::new();
            for (_, work) in service.work {
                loops.spawn(work);
            }
            // The first loop to end ends the service.
            let work = async move {
                match loops.join_next().await {
                    Some(Ok(Err(source))) => Err(ServeError::WorkFailed { service: name, source }),
                    _ => Err(ServeError::WorkEnded { service: name }),
                }
            };
            listen(&args, layer(service.app), work).await
        }
        Model::StreamingKafka => streaming_kafka(&args, layer).await,
    }
}

/// A Part C service: connects (waiting for Kafka), then serves its face and runs its loop.
async fn streaming_kafka(args: &ServeArgs, layer: impl FnOnce(Router) -> Router) -> Result<(), ServeError> {
    use crate::streaming_kafka as wiring;
    use crate::streaming_kafka::consumers::{InventoryConfig, Writes, ANALYTICS_GROUP};
    let service = args.service;
    let policy = Policy::production();
    let mut backoff = policy.backoff("kafka");
    let kafka = policy
        .until_ok(&mut backoff, "connecting to Kafka", LogError::is_transient, || {
            Box::pin(KafkaLog::connect_with(&args.kafka_bootstrap, &args.namespace, args.partitions))
        })
        .await
        .map_err(|source| ServeError::Log { service, source })?;
    // A scaled-out Inventory: a dead member's open transaction holds its partitions back
    // until the broker aborts it.
    let kafka = match (&args.service, &args.instance) {
        (Service::Inventory, Some(_)) => kafka.with_transaction_timeout(crate::streaming_kafka::partitioned::MEMBER_TRANSACTION_TIMEOUT),
        _ => kafka,
    };
    let log: Arc<dyn EventLog> = Arc::new(kafka);
    let batch = args.batch as usize;
    let (app, consumer, metrics) = match service {
        Service::Producer => {
            let (producer, idle) = wiring::producer(log, EventClock::Wall, policy);
            (crate::streaming_kafka::api::producer_app(producer, OrderIds::Random), idle, None)
        }
        Service::Inventory => {
            let config = InventoryConfig { stock: args.stock, batch, writes: Writes::Transactional };
            match &args.instance {
                Some(instance) => {
                    let view = crate::streaming_kafka::partitioned::ShardsView::default();
                    let consumer = wiring::partitioned_inventory(log, view.clone(), config, instance, policy);
                    (crate::streaming_kafka::api::partitioned_inventory_app(view, args.stock), consumer, None)
                }
                None => {
                    let view = Arc::new(std::sync::Mutex::new(Inventory::with_stock(args.stock)));
                    (
                        crate::streaming_kafka::api::inventory_app(view.clone(), args.stock),
                        wiring::inventory(log, view, config, policy),
                        None,
                    )
                }
            }
        }
        _ => {
            let state = Arc::new(std::sync::Mutex::new(Analytics::default()));
            let consumer = wiring::analytics(log, ANALYTICS_GROUP, state.clone(), batch, args.throttle_per_s, policy);
            (crate::streaming_kafka::api::analytics_app(state.clone()), consumer, Some(state))
        }
    };
    let file = args.metrics_file.clone();
    let write_metrics = move || -> Result<(), ServeError> {
        if let (Some(path), Some(state)) = (&file, &metrics) {
            let report = crate::streaming_kafka::api::MetricsReport::of(&state.lock().expect("analytics lock"));
            let json = serde_json::to_vec_pretty(&report).expect("metrics serialize");
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, json)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|source| ServeError::MetricsFile { path: path.clone(), source })?;
        }
        Ok(())
    };
    let mut consumer = consumer;
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ended = consumer.finished() => {
                    return match ended {
                        Ok(Err(source)) => Err(ServeError::Log { service, source }),
                        _ => Err(ServeError::WorkEnded { service }),
                    };
                }
                _ = tick.tick() => write_metrics()?,
            }
        }
    };
    let served = listen(args, layer(app), work).await;
    // A signal: the loop finishes its batch and leaves its group (a replay can reset it now).
    if served.is_ok() {
        if let Err(e) = consumer.stop().await {
            tracing::warn!(error = %e, "{service}'s loop did not stop cleanly");
        }
    }
    write_metrics()?;
    served
}

fn sync_rest(args: &ServeArgs) -> Router {
    match args.service {
        Service::Producer | Service::Analytics => unreachable!("checked against Service::of"),
        Service::Inventory => crate::sync_rest::inventory(crate::sync_rest::inventory_state(args.stock)),
        Service::Notification => crate::sync_rest::notification(crate::sync_rest::notification_state()),
        Service::Order => {
            let peers = HttpRequestReply::new([
                (Service::Inventory, args.inventory_url.clone()),
                (Service::Notification, args.notification_url.clone()),
            ]);
            crate::sync_rest::order(OrderIds::Random, Arc::new(peers), Duration::from_millis(args.timeout_ms))
        }
    }
}

async fn async_rabbitmq(args: &ServeArgs) -> Result<crate::async_rabbitmq::Wired, ServeError> {
    let service = args.service;
    // Connects when it can: a service started while the broker is down starts anyway.
    let mq: Arc<dyn MessageQueue> = Arc::new(AmqpQueue::new(&args.amqp_url, Topology::new(&args.namespace), Backoff::random()));
    let policy = Policy::production();
    let store_error = |source| ServeError::Store { service, source };
    // A shared store is waited for like a broker: the service needs it to do anything at all.
    let pg = match &args.store {
        None => {
            std::fs::create_dir_all(&args.data_dir).map_err(|source| ServeError::DataDir { dir: args.data_dir.clone(), source })?;
            None
        }
        Some(url) => {
            let mut backoff = policy.backoff("postgres");
            let connect = || Postgres::connect(url, &args.namespace);
            Some(policy.until_ok(&mut backoff, "connecting to PostgreSQL", StoreError::is_transient, connect).await.map_err(store_error)?)
        }
    };
    let db = args.data_dir.join(format!("{service}.sqlite"));
    Ok(match service {
        Service::Producer | Service::Analytics => unreachable!("checked against Service::of"),
        Service::Order => {
            let store = match pg {
                Some(pg) => OrderStore::open_postgres(pg).await,
                None => OrderStore::open(Some(&db)),
            };
            let order = Arc::new(AsyncOrderService::new(OrderIds::Random, Arc::new(store.map_err(store_error)?), EventClock::Wall));
            crate::async_rabbitmq::order(order, mq, args.prefetch, policy)
        }
        Service::Inventory => {
            let store = match pg {
                Some(pg) => InventoryStore::open_postgres(pg, args.stock).await,
                None => InventoryStore::open(Some(&db), args.stock),
            };
            crate::async_rabbitmq::inventory(Arc::new(store.map_err(store_error)?), mq, args.prefetch, policy)
        }
        Service::Notification => {
            let store = match pg {
                Some(pg) => NotificationStore::open_postgres(pg).await,
                None => NotificationStore::open(Some(&db)),
            };
            crate::async_rabbitmq::notification(Arc::new(store.map_err(store_error)?), mq, args.prefetch, policy)
        }
    })
}

/// `--store`: a `postgres://` (or `postgresql://`) URL that parses.
fn postgres_url(url: &str) -> Result<String, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "expected postgres://user:password@host:port/database (without --store each service keeps a SQLite file in --data-dir)".into(),
        );
    }
    url.parse::<tokio_postgres::Config>().map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    Ok(url.to_owned())
}

/// Binds, prints the READY line, serves `app` until a signal or until `work` ends.
async fn listen(args: &ServeArgs, app: Router, work: impl Future<Output = Result<(), ServeError>>) -> Result<(), ServeError> {
    let service = args.service;
    let addr = SocketAddr::new(args.host, args.port.unwrap_or(service.default_port()));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback");
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { service, addr, source })?;
    let io = |source| ServeError::Io { service, source };
    let bound = listener.local_addr().map_err(io)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY {service} http://{bound}").map_err(io)?;
        stdout.flush().map_err(io)?;
    }
    tokio::select! {
        served = serve(listener, app, shutdown_signal()) => served.map_err(io),
        worked = work => worked,
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
