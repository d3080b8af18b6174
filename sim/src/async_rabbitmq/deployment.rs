//! Where Part B's services run: as hosts of the simulated world over `SimQueue` and `SimNet`,
//! or as `campus-sim serve … --model async-rabbitmq` processes over a real RabbitMQ. Both are
//! wired by `campus::deploy::async_rabbitmq`. The experiments see only this type; stopping
//! Inventory is the one fault it applies (the world takes the host down / the process is
//! SIGKILLed; its store survives, as a disk would).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use campus::deploy::async_rabbitmq as wiring;
use campus::retry::Policy;
use campus::services::order::{AsyncOrderService, OrderIds};
use campus::services::EventClock;
use campus::store::{InventoryStore, NotificationStore, OrderStore};
use campus::transport::amqp::AmqpQueue;
use campus::transport::http::HttpRequestReply;
use campus::transport::queue::{MessageQueue, Topology};
use campus::transport::{Peer, RequestReply};
use campus::Model;

use super::Config;
use crate::real::{Broker, BrokerOutage, ServiceProcess};
use crate::world::World;
use crate::Mode;

/// Part B's three services, running.
pub struct Deployment<'w> {
    mq: Arc<dyn MessageQueue>,
    http: Arc<dyn RequestReply>,
    kind: Kind<'w>,
}

enum Kind<'w> {
    Sim(SimParts<'w>),
    Real(Box<RealParts>),
}

struct SimParts<'w> {
    world: &'w World,
    inventory_store: Arc<InventoryStore>,
    prefetch: u16,
    policy: Policy,
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
    /// RabbitMQ while the lab has it stopped (restored on drop, whatever happens).
    outage: Option<BrokerOutage>,
}

impl<'w> Deployment<'w> {
    /// Every service a host of `world` (virtual time), over a fresh `SimQueue`.
    pub async fn sim(world: &'w World, config: &Config) -> anyhow::Result<Self> {
        let mq: Arc<dyn MessageQueue> = world.queue();
        let prefetch = config.prefetch;
        let policy = world.policy(true);
        let order_store = Arc::new(OrderStore::open(None)?);
        let order = Arc::new(AsyncOrderService::new(OrderIds::seeded(config.seed), order_store, EventClock::Since(tokio::time::Instant::now())));
        world.start(Peer::Order, wiring::order(order, mq.clone(), prefetch, policy));
        let notification_store = Arc::new(NotificationStore::open(None)?);
        world.start(Peer::Notification, wiring::notification(notification_store, mq.clone(), prefetch, policy));
        let inventory_store = Arc::new(InventoryStore::open(None, config.stock)?);
        let mut d = Deployment { mq, http: world.net().clone(), kind: Kind::Sim(SimParts { world, inventory_store, prefetch, policy }) };
        d.start_inventory().await?;
        Ok(d)
    }

    /// Three `campus-sim serve` processes on loopback, over the RabbitMQ at `amqp_url`, in a
    /// namespace of their own.
    pub async fn real(config: &Config, exe: &Path, amqp_url: &str, experiment: &str) -> anyhow::Result<Deployment<'static>> {
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
                outage: None,
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
            Kind::Sim(s) => s.world.is_up(Peer::Inventory),
            Kind::Real(r) => r.inventory.is_some(),
        }
    }

    /// Inventory dies: its unacknowledged deliveries return to the queue; its store stays.
    pub async fn stop_inventory(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => s.world.take_down(Peer::Inventory).await,
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
            Kind::Sim(s) => s.world.start(Peer::Inventory, wiring::inventory(s.inventory_store.clone(), self.mq.clone(), s.prefetch, s.policy)),
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

    /// The broker goes away (sim: the world's outage; real: `rabbitmqctl stop_app`).
    pub async fn stop_broker(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => s.world.set_broker(false),
            Kind::Real(r) => r.outage = Some(BrokerOutage::begin(Broker::RabbitMq).await?),
        }
        Ok(())
    }

    /// The broker comes back (real: `rabbitmqctl start_app`, then until it serves).
    pub async fn start_broker(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => s.world.set_broker(true),
            Kind::Real(r) => {
                if let Some(outage) = r.outage.take() {
                    outage.end().await?;
                }
            }
        }
        Ok(())
    }

    /// Stops everything and removes what the run created (real: processes, the broker
    /// namespace, the data directory).
    pub async fn teardown(self) {
        match self.kind {
            Kind::Sim(s) => s.world.clear(),
            Kind::Real(r) => {
                let r = *r;
                if let Some(outage) = r.outage {
                    if let Err(e) = outage.end().await {
                        tracing::error!(error = %e, "could not start RabbitMQ again");
                    }
                }
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
