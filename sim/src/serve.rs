//! `campus-sim serve <service>`: one service as its own process, on its own loopback port.
//! Real mode starts these as children; compose runs them as containers (configured by the
//! `CAMPUS_*` environment variables).
//!
//! Once listening, the process prints `READY <service> http://<addr>` on stdout (the harness
//! waits for that line), then serves until SIGINT or SIGTERM and finishes in-flight requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::Router;
use campus::api;
use campus::services::inventory::Inventory;
use campus::services::notification::Notifier;
use campus::services::order::{OrderIds, SyncOrderService};
use campus::transport::http::{serve, HttpRequestReply};
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
    if !plan.is_healthy() && args.service != Service::Inventory {
        anyhow::bail!("fault flags (--delay-ms, --error-status, --hang) apply to `serve inventory` only");
    }
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
    let addr = SocketAddr::new(args.host, args.port.unwrap_or(args.service.default_port()));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback");
    }
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr} for {}", args.service.name()))?;
    let bound = listener.local_addr()?;
    if !plan.is_healthy() {
        tracing::info!(fault = %plan, "inventory runs with an injected fault");
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY {} http://{bound}", args.service.name())?;
        stdout.flush()?;
    }
    serve(listener, app, shutdown_signal()).await.context("serving")?;
    Ok(())
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
