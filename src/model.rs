//! The closed sets every command shares: the communication [`Model`]s, the [`Service`]s a
//! process can run and the [`Protocol`]s Part A's services speak.

use std::fmt;

/// A communication model: one of the assignment's three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Model {
    /// Part A: HTTP request/reply between the services.
    SyncRest,
    /// Part B: RabbitMQ between the services; each keeps its own SQLite store.
    AsyncRabbitmq,
    /// Part C: a Kafka log with consumer groups.
    StreamingKafka,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::SyncRest, Model::AsyncRabbitmq, Model::StreamingKafka];

    pub fn name(self) -> &'static str {
        match self {
            Model::SyncRest => "sync-rest",
            Model::AsyncRabbitmq => "async-rabbitmq",
            Model::StreamingKafka => "streaming-kafka",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// How Part A's services are called: Order by its clients, Inventory and Notification by Order.
/// Every Part A service answers both on its one port; this chooses which one a caller speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// JSON over HTTP/1.1, a connection per call in flight (kept alive and reused).
    #[default]
    Rest,
    /// Protocol buffers over HTTP/2 (`campus.v1`), every call multiplexed on one connection,
    /// the caller's deadline sent with the call (`grpc-timeout`).
    Grpc,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Rest, Protocol::Grpc];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A service that runs as a process of its own (`serve`), with its default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Service {
    /// `POST /order` (port 8001).
    Order,
    /// `POST /reserve`, `GET /stock` (port 8002).
    Inventory,
    /// `POST /send`, `GET /sent` (port 8003).
    Notification,
    /// streaming-kafka: `POST /order`, `POST /orders` appended to `order-events` (port 8004).
    Producer,
    /// streaming-kafka: consumes both topics, `GET /analytics` (port 8005).
    Analytics,
}

impl Service {
    pub fn default_port(self) -> u16 {
        match self {
            Service::Order => 8001,
            Service::Inventory => 8002,
            Service::Notification => 8003,
            Service::Producer => 8004,
            Service::Analytics => 8005,
        }
    }

    /// The services of `model`, each run as a process of its own.
    pub fn of(model: Model) -> &'static [Service] {
        match model {
            Model::SyncRest | Model::AsyncRabbitmq => &[Service::Order, Service::Inventory, Service::Notification],
            Model::StreamingKafka => &[Service::Producer, Service::Inventory, Service::Analytics],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Inventory => "inventory",
            Service::Notification => "notification",
            Service::Producer => "producer",
            Service::Analytics => "analytics",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}
