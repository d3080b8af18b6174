//! Where Part B's services run: as tasks of the simulation over `SimQueue` and `SimNet`, or
//! as `campus-sim serve … --model async-rabbitmq` processes over a real RabbitMQ. The
//! experiments see only this type; stopping Inventory is the one fault it applies (the task is
//! aborted / the process SIGKILLed; its store survives, as a disk would).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use campus::api;
use campus::services::messaging;
use campus::services::order::{AsyncOrderService, OrderIds};
use campus::services::EventClock;
use campus::store::{InventoryStore, NotificationStore, OrderStore};
use campus::transport::amqp::AmqpQueue;
use campus::transport::http::HttpRequestReply;
use campus::transport::queue::{MessageQueue, Topology};
use campus::transport::{Peer, RequestReply};
use tokio::task::JoinHandle;

use super::Config;
use crate::net::{LinkModel, SimNet};
use crate::queue::SimQueue;
use crate::real::ServiceProcess;
use crate::rng::SimRng;
use crate::serve::Model;
use crate::Mode;

pub struct Deployment {
    mq: Arc<dyn MessageQueue>,
    http: Arc<dyn RequestReply>,
    kind: Kind,
}

enum Kind {
    Sim(SimParts),
    Real(Box<RealParts>),
}

struct SimParts {
    net: Arc<SimNet>,
    inventory_store: Arc<InventoryStore>,
    inventory: Option<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
    prefetch: u16,
}

struct RealParts {
    exe: PathBuf,
    amqp: Arc<AmqpQueue>,
    common: Vec<String>,
    stock: u32,
    data_dir: PathBuf,
    order: ServiceProcess,
    notification: ServiceProcess,
    inventory: Option<ServiceProcess>,
}

fn logged(name: &'static str, work: impl std::future::Future<Output = Result<(), impl std::fmt::Display>> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::error!(task = name, error = %e, "task failed");
        }
    })
}

impl Deployment {
    /// Every service a task of the current (virtual-time) runtime.
    pub async fn sim(config: &Config, rng: SimRng) -> anyhow::Result<Self> {
        let net = Arc::new(SimNet::new(rng.fork("net"), LinkModel::default()));
        let mq: Arc<dyn MessageQueue> = Arc::new(SimQueue::new(rng.fork("queue"), LinkModel::default()));
        let prefetch = config.prefetch;

        let order_store = Arc::new(OrderStore::open(None)?);
        let order = Arc::new(AsyncOrderService::new(
            OrderIds::seeded(config.seed),
            order_store.clone(),
            EventClock::Since(tokio::time::Instant::now()),
        ));
        net.host(Peer::Order, api::order::async_app(order.clone()));
        let relay = {
            let mq = mq.clone();
            logged("relay", async move { order.run_relay(mq).await })
        };
        let status = logged("order-status", messaging::run_order_status(mq.clone(), order_store, prefetch));

        let notification_store = Arc::new(NotificationStore::open(None)?);
        net.host(Peer::Notification, api::notification::admin_app(notification_store.clone()));
        let notification = logged("notification", messaging::run_notification(mq.clone(), notification_store, prefetch));

        let inventory_store = Arc::new(InventoryStore::open(None, config.stock)?);
        let mut d = Deployment {
            mq,
            http: net.clone(),
            kind: Kind::Sim(SimParts { net, inventory_store, inventory: None, others: vec![relay, status, notification], prefetch }),
        };
        d.start_inventory().await?;
        Ok(d)
    }

    /// Three `campus-sim serve` processes on loopback, over the RabbitMQ at `amqp_url`, in a
    /// namespace of their own.
    pub async fn real(config: &Config, exe: &Path, amqp_url: &str, experiment: &str) -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let amqp = AmqpQueue::connect(amqp_url, Topology::new(&namespace)).await.with_context(|| {
            format!("RabbitMQ is not reachable at {amqp_url}; start it with `scripts/brokers.sh up rabbitmq` (or set AMQP_URL)")
        })?;
        let amqp = Arc::new(amqp);
        let data_dir = std::env::temp_dir().join(&namespace);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let common: Vec<String> = [
            "--port", "0", "--amqp-url", amqp_url, "--namespace", &namespace, "--prefetch", &config.prefetch.to_string(), "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([data_dir.display().to_string()])
        .collect();
        let notification = ServiceProcess::spawn(exe, "notification", Model::AsyncRabbitmq, &common).await?;
        let order = ServiceProcess::spawn(exe, "order", Model::AsyncRabbitmq, &common).await?;
        let mut d = Deployment {
            mq: amqp.clone(),
            http: Arc::new(HttpRequestReply::new([])),
            kind: Kind::Real(Box::new(RealParts {
                exe: exe.to_owned(),
                amqp,
                common,
                stock: config.stock,
                data_dir,
                order,
                notification,
                inventory: None,
            })),
        };
        d.start_inventory().await?;
        Ok(d)
    }

    pub fn mode(&self) -> Mode {
        match self.kind {
            Kind::Sim(_) => Mode::Sim,
            Kind::Real(_) => Mode::Real,
        }
    }

    /// The harness's own connection to the broker.
    pub fn mq(&self) -> &Arc<dyn MessageQueue> {
        &self.mq
    }

    /// HTTP to the services (Order's API, the others' accounting endpoints).
    pub fn http(&self) -> Arc<dyn RequestReply> {
        self.http.clone()
    }

    /// The client the load generator uses (Order's address never changes).
    pub fn order_client(&self) -> Arc<dyn RequestReply> {
        self.http.clone()
    }

    pub fn inventory_up(&self) -> bool {
        match &self.kind {
            Kind::Sim(s) => s.inventory.is_some(),
            Kind::Real(r) => r.inventory.is_some(),
        }
    }

    /// Inventory dies: its unacknowledged deliveries return to the queue; its store stays.
    pub async fn stop_inventory(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => {
                if let Some(task) = s.inventory.take() {
                    task.abort();
                    let _ = task.await;
                }
                s.net.take_down(Peer::Inventory);
            }
            Kind::Real(r) => {
                if let Some(mut process) = r.inventory.take() {
                    process.kill().await?;
                }
            }
        }
        Ok(())
    }

    /// Inventory (re)starts on its existing store.
    pub async fn start_inventory(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => {
                s.net.host(Peer::Inventory, api::inventory::admin_app(s.inventory_store.clone()));
                s.inventory = Some(logged("inventory", messaging::run_inventory(self.mq.clone(), s.inventory_store.clone(), s.prefetch)));
            }
            Kind::Real(r) => {
                let mut args = r.common.clone();
                args.extend(["--stock".to_owned(), r.stock.to_string()]);
                let inventory = ServiceProcess::spawn(&r.exe, "inventory", Model::AsyncRabbitmq, &args).await?;
                self.http = Arc::new(HttpRequestReply::new([
                    (Peer::Order, r.order.url().to_owned()),
                    (Peer::Inventory, inventory.url().to_owned()),
                    (Peer::Notification, r.notification.url().to_owned()),
                ]));
                r.inventory = Some(inventory);
            }
        }
        Ok(())
    }

    /// Stops everything and removes what the run created (real: processes, the broker
    /// namespace, the data directory).
    pub async fn teardown(self) {
        match self.kind {
            Kind::Sim(s) => {
                for task in s.inventory.into_iter().chain(s.others) {
                    task.abort();
                }
                s.net.clear();
            }
            Kind::Real(r) => {
                let r = *r;
                drop((r.order, r.notification, r.inventory));
                if let Err(e) = r.amqp.delete_topology().await {
                    tracing::warn!(error = %e, "could not delete the run's queues");
                }
                r.amqp.close().await;
                let _ = std::fs::remove_dir_all(&r.data_dir);
            }
        }
    }
}
