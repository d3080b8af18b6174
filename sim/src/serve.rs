//! `campus-sim serve <service>`: one service as its own process, on its own loopback port.
//! Real mode starts these as children; compose runs them as containers (configured by the
//! `CAMPUS_*` environment variables).
//!
//! Once listening, the process prints `READY <service> http://<addr>` on stdout (the harness
//! waits for that line), then serves until SIGINT or SIGTERM and finishes in-flight requests.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::Router;
use campus::api;
use campus::services::inventory::Inventory;
use campus::services::notification::Notifier;
use campus::services::messaging;
use campus::services::order::{AsyncOrderService, OrderIds, SyncOrderService};
use campus::services::EventClock;
use campus::store::{InventoryStore, NotificationStore, OrderStore};
use campus::transport::amqp::{AmqpQueue, DEFAULT_AMQP_URL};
use campus::transport::http::{serve, HttpRequestReply};
use campus::transport::queue::{MessageQueue, Topology};
use campus::transport::Peer;
use std::io::Write;
use tokio::net::TcpListener;

use crate::fault::{self, FaultPlan};

/// The services, and their default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// `POST /order` (port 8001).
    Order,
    /// `POST /reserve`, `GET /stock` (port 8002).
    Inventory,
    /// `POST /send`, `GET /sent` (port 8003).
    Notification,
}

impl Service {
    pub fn default_port(self) -> u16 {
        match self {
            Service::Order => 8001,
            Service::Inventory => 8002,
            Service::Notification => 8003,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Inventory => "inventory",
            Service::Notification => "notification",
        }
    }
}

/// The communication model a served service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// Part A: HTTP request/reply between the services.
    SyncRest,
    /// Part B: RabbitMQ between the services; each keeps a SQLite store in --data-dir and
    /// serves HTTP only for orders (order) and for the lab's accounting (all).
    AsyncRabbitmq,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::SyncRest => "sync-rest",
            Model::AsyncRabbitmq => "async-rabbitmq",
        }
    }
}

/// `campus-sim serve …`
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum, env = "CAMPUS_SERVICE")]
    pub service: Service,
    /// The communication model.
    #[arg(long, value_enum, default_value = "sync-rest")]
    pub model: Model,
    /// Address to listen on. Keep the loopback default unless you mean to expose the service
    /// (compose sets 0.0.0.0 inside its private network).
    #[arg(long, env = "CAMPUS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (printed in the READY line). [default: 8001 order,
    /// 8002 inventory, 8003 notification]
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
    /// (inventory) Fault: hold every request this many ms before handling it (0 = no delay).
    #[arg(long, env = "CAMPUS_DELAY_MS")]
    pub delay_ms: Option<u64>,
    /// (inventory) Fault: answer every request with this status (400–599) instead of handling it.
    #[arg(long, env = "CAMPUS_ERROR_STATUS", value_parser = clap::value_parser!(u16).range(400..=599))]
    pub error_status: Option<u16>,
    /// (inventory) Fault: never answer.
    #[arg(long, env = "CAMPUS_HANG")]
    pub hang: bool,
    /// (async-rabbitmq) The RabbitMQ to use.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// (async-rabbitmq) Prefix of every exchange and queue name, so that runs sharing a broker
    /// do not see each other's messages.
    #[arg(long, env = "CAMPUS_NAMESPACE", default_value = "campus")]
    pub namespace: String,
    /// (async-rabbitmq) Where the service keeps its SQLite store (`<service>.sqlite`).
    #[arg(long, env = "CAMPUS_DATA_DIR", default_value = "campus-data")]
    pub data_dir: PathBuf,
    /// (async-rabbitmq) Unacknowledged deliveries a consumer may hold.
    #[arg(long, env = "CAMPUS_PREFETCH", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
}

impl ServeArgs {
    /// The fault flags as a [`FaultPlan`].
    pub fn fault_plan(&self) -> FaultPlan {
        FaultPlan {
            delay: self.delay_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
            error: self.error_status.map(|s| StatusCode::from_u16(s).expect("range-checked by clap")),
            hang: self.hang,
            down: false,
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let plan = args.fault_plan();
    if !plan.is_healthy() && (args.service != Service::Inventory || args.model != Model::SyncRest) {
        anyhow::bail!("fault flags (--delay-ms, --error-status, --hang) apply to `serve inventory --model sync-rest` only");
    }
    match args.model {
        Model::SyncRest => run_sync_rest(args, plan).await,
        Model::AsyncRabbitmq => run_async_rabbitmq(args).await,
    }
}

/// Binds, prints the READY line, serves `app` until a signal or until `work` (the service's
/// consumers) ends, which is an error: a service whose consumer died must not look healthy.
async fn listen(
    args: &ServeArgs,
    app: Router,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.host, args.port.unwrap_or(args.service.default_port()));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback");
    }
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr} for {}", args.service.name()))?;
    let bound = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY {} http://{bound}", args.service.name())?;
        stdout.flush()?;
    }
    tokio::select! {
        served = serve(listener, app, shutdown_signal()) => served.context("serving"),
        worked = work => match worked {
            Ok(()) => anyhow::bail!("{}'s consumer stopped (the broker closed the connection?)", args.service.name()),
            Err(e) => Err(e.context(format!("{}'s consumer failed", args.service.name()))),
        },
    }
}

async fn run_async_rabbitmq(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db = args.data_dir.join(format!("{}.sqlite", args.service.name()));
    let mq = AmqpQueue::connect(&args.amqp_url, Topology::new(&args.namespace)).await.with_context(|| {
        format!("connecting to RabbitMQ at {} (start one with `scripts/brokers.sh up rabbitmq`)", args.amqp_url)
    })?;
    let mq: Arc<dyn MessageQueue> = Arc::new(mq);
    let prefetch = args.prefetch;
    match args.service {
        Service::Order => {
            let store = Arc::new(OrderStore::open(Some(&db))?);
            let service = Arc::new(AsyncOrderService::new(OrderIds::Random, store.clone(), EventClock::Wall));
            let relay = {
                let (service, mq) = (service.clone(), mq.clone());
                async move { service.run_relay(mq).await }
            };
            let work = async move {
                tokio::try_join!(relay, messaging::run_order_status(mq, store, prefetch))?;
                Ok(())
            };
            listen(&args, api::order::async_app(service), work).await
        }
        Service::Inventory => {
            let store = Arc::new(InventoryStore::open(Some(&db), args.stock)?);
            let work = messaging::run_inventory(mq, store.clone(), prefetch);
            listen(&args, api::inventory::admin_app(store), async move { Ok(work.await?) }).await
        }
        Service::Notification => {
            let store = Arc::new(NotificationStore::open(Some(&db))?);
            let work = messaging::run_notification(mq, store.clone(), prefetch);
            listen(&args, api::notification::admin_app(store), async move { Ok(work.await?) }).await
        }
    }
}

async fn run_sync_rest(args: ServeArgs, plan: FaultPlan) -> anyhow::Result<()> {
    let app: Router = match args.service {
        Service::Inventory => fault::apply(api::inventory::app(Arc::new(Mutex::new(Inventory::with_stock(args.stock)))), &plan),
        Service::Notification => api::notification::app(Arc::new(Mutex::new(Notifier::default()))),
        Service::Order => {
            let peers = HttpRequestReply::new([
                (Peer::Inventory, args.inventory_url.clone()),
                (Peer::Notification, args.notification_url.clone()),
            ]);
            let service = SyncOrderService::new(OrderIds::Random, Arc::new(peers), Duration::from_millis(args.timeout_ms));
            api::order::sync_app(Arc::new(service))
        }
    };
    if !plan.is_healthy() {
        tracing::info!(fault = %plan, "inventory runs with an injected fault");
    }
    listen(&args, app, std::future::pending()).await
}

async fn shutdown_signal() {
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
