//! One service instance's configuration ([`ServiceConfig`]): what `campus` reads from its flags
//! and `CAMPUS_*` variables, and what the lab gives each service it starts, in the simulation
//! or as a process. A service is built from its configuration and what its host provides
//! (the `host` module), by its model's `build`.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::{Model, Protocol, Service};
use crate::transport::amqp::DEFAULT_AMQP_URL;
use crate::transport::kafka::DEFAULT_BOOTSTRAP_SERVERS;

/// One service instance's configuration: which service, in which model, and what it needs to
/// run. The flags of `campus` (and of the lab's `campus-sim serve`), each with its `CAMPUS_*`
/// variable; the lab builds the same values for the services it starts (`to_args` turns one
/// into the flags of a process).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServiceConfig {
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
    /// (order, sync-rest) How Order calls Inventory and Notification: rest (JSON over HTTP/1.1)
    /// or grpc (campus.v1 over HTTP/2, the deadline sent with each call). Every sync-rest
    /// service answers both on its one port, whatever this says.
    #[arg(long, value_enum, env = "CAMPUS_PROTOCOL", default_value = "rest")]
    pub protocol: Protocol,
    /// (order, sync-rest) Orders Order holds open at once, each waiting on Inventory and
    /// Notification; one more is refused at once, before any work: 503 `overloaded` (gRPC
    /// `UNAVAILABLE`, which a client retries). Each open order holds up to three sockets, so
    /// the default keeps Order inside this machine's 20,000 file descriptors (`ulimit -n`;
    /// where it is smaller, keep this below a third of it); 0: no limit.
    #[arg(long, env = "CAMPUS_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,
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
    /// (streaming-kafka: analytics) Write the metrics (JSON, as `GET /analytics`) here every
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
    /// Append the service's spans here as OTLP JSON, a line a second and when stopping
    /// (see docs/tracing.md). Spans are made when this or OTEL_EXPORTER_OTLP_ENDPOINT (an
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`) is set, and not otherwise.
    #[arg(long, env = "CAMPUS_TRACE_FILE")]
    pub trace_file: Option<PathBuf>,
}

/// An instance name: it becomes part of a Kafka transactional id.
fn instance_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 letters, digits, '-' or '_'".into())
    }
}

/// The environment variables [`ServiceConfig`] reads. A harness that starts services removes them
/// from the children's environment, so a variable exported for a compose-style run cannot skew
/// an experiment.
pub const CONFIG_ENV: [&str; 22] = [
    "CAMPUS_SERVICE",
    "CAMPUS_HOST",
    "CAMPUS_PORT",
    "CAMPUS_INVENTORY_URL",
    "CAMPUS_NOTIFICATION_URL",
    "CAMPUS_TIMEOUT_MS",
    "CAMPUS_PROTOCOL",
    "CAMPUS_MAX_IN_FLIGHT",
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
    "CAMPUS_TRACE_FILE",
];

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

impl ServiceConfig {
    /// `service` of `model` with every other setting at its default — the defaults alone: a
    /// `CAMPUS_*` variable of the lab's own environment does not leak into the services it starts.
    pub fn new(model: Model, service: Service) -> Self {
        // Parsed once (the simulation starts thousands of services a second).
        static DEFAULTS: std::sync::OnceLock<ServiceConfig> = std::sync::OnceLock::new();
        let defaults = DEFAULTS.get_or_init(|| {
            use clap::{CommandFactory, FromArgMatches, Parser};
            #[derive(Parser)]
            struct Only {
                #[command(flatten)]
                config: ServiceConfig,
            }
            let command = Only::command().mut_args(|arg| arg.env(None::<&str>));
            let matches = command.try_get_matches_from(["campus", Service::Order.name()]).expect("the defaults parse");
            Only::from_arg_matches(&matches).expect("the defaults parse").config
        });
        ServiceConfig { model, service, ..defaults.clone() }
    }

    /// The flags that give a process this configuration (every setting, spelled out).
    pub fn to_args(&self) -> Vec<String> {
        let mut args =
            vec![self.service.name().to_owned(), "--model".into(), self.model.name().into(), "--host".into(), self.host.to_string()];
        let mut flag = |name: &str, value: String| args.extend([format!("--{name}"), value]);
        if let Some(port) = self.port {
            flag("port", port.to_string());
        }
        flag("inventory-url", self.inventory_url.clone());
        flag("notification-url", self.notification_url.clone());
        flag("timeout-ms", self.timeout_ms.to_string());
        flag("protocol", self.protocol.name().into());
        flag("max-in-flight", self.max_in_flight.to_string());
        flag("stock", self.stock.to_string());
        if !self.menu.is_empty() {
            flag("menu", self.menu.join(","));
        }
        flag("amqp-url", self.amqp_url.clone());
        flag("namespace", self.namespace.clone());
        flag("data-dir", self.data_dir.display().to_string());
        if let Some(store) = &self.store {
            flag("store", store.clone());
        }
        flag("prefetch", self.prefetch.to_string());
        flag("kafka-bootstrap", self.kafka_bootstrap.clone());
        flag("batch", self.batch.to_string());
        if let Some(rate) = self.throttle_per_s {
            flag("throttle-per-s", rate.to_string());
        }
        if let Some(path) = &self.metrics_file {
            flag("metrics-file", path.display().to_string());
        }
        flag("partitions", self.partitions.to_string());
        if let Some(instance) = &self.instance {
            flag("instance", instance.clone());
        }
        if let Some(path) = &self.trace_file {
            flag("trace-file", path.display().to_string());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_given_as_flags_parses_back_to_itself() {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: ServiceConfig,
        }
        use clap::Parser;
        let config = ServiceConfig {
            port: Some(0),
            protocol: Protocol::Grpc,
            stock: 7,
            menu: vec!["burger".into()],
            store: Some("postgres://u:p@127.0.0.1:5432/db".into()),
            throttle_per_s: Some(9),
            instance: Some("i-1".into()),
            ..ServiceConfig::new(Model::StreamingKafka, Service::Inventory)
        };
        let parsed = Only::try_parse_from(std::iter::once("campus".to_owned()).chain(config.to_args())).unwrap().config;
        assert_eq!(parsed, config);
    }
}
