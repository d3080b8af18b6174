//! Where Part B's services run: as hosts of the simulated world over `SimQueue` and `SimNet`,
//! or as `campus-sim serve … --model async-rabbitmq` processes over a real RabbitMQ. Both are
//! wired by `campus::async_rabbitmq`. The experiments see only this type; the faults it
//! applies are Inventory stopped (the world takes the host down / the process is SIGKILLed; its
//! store survives, as a disk would), one Inventory instance of several crashed, the broker
//! stopped, and one node of a clustered broker lost.
//!
//! Its [`Shape`] says how many Inventory instances compete for the queue and where the
//! services keep their state: a SQLite file each (the default), or one PostgreSQL database
//! the instances share (real mode, `--store`). The simulation's instances share one store too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use campus::async_rabbitmq as wiring;
use campus::retry::Policy;
use campus::services::order::{AsyncOrderService, OrderIds};
use campus::services::EventClock;
use campus::store::{InventoryStore, NotificationStore, OrderStore};
use campus::transport::amqp::AmqpQueue;
use campus::transport::http::HttpRequestReply;
use campus::transport::queue::{MessageQueue, Topology};
use campus::transport::RequestReply;
use campus::Model;
use campus::Service;

use super::Config;
use crate::real::{Broker, BrokerHost, BrokerOutage, ServiceProcess};
use crate::world::World;
use crate::Mode;

/// How Part B's services are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Inventory instances consuming its queue side by side (competing consumers).
    pub inventories: usize,
    /// Real mode: the PostgreSQL URL every service keeps its state in (the instances share
    /// it); `None`: a SQLite file per service.
    pub store: Option<String>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape { inventories: 1, store: None }
    }
}

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
    instances: usize,
    /// Instances running now, by number.
    running: std::collections::BTreeSet<usize>,
    /// How long clients of a lost broker node are without a broker (see [`super::Config`]).
    failover: std::time::Duration,
}

struct RealParts {
    exe: PathBuf,
    amqp: Arc<AmqpQueue>,
    /// Where RabbitMQ runs (how it is paused and resumed).
    brokers: BrokerHost,
    common: Vec<String>,
    stock: u32,
    data_dir: PathBuf,
    /// The shared store, when there is one (its schema is dropped at teardown).
    pg: Option<campus::store::Postgres>,
    instances: usize,
    order: ServiceProcess,
    notification: ServiceProcess,
    /// Inventory's instances running now, by number.
    inventories: std::collections::BTreeMap<usize, ServiceProcess>,
    /// RabbitMQ while the lab has it stopped (restored on drop, whatever happens).
    outage: Option<BrokerOutage>,
}

impl<'w> Deployment<'w> {
    /// Every service a host of `world` (virtual time), over a fresh `SimQueue`.
    pub async fn sim(world: &'w World, config: &Config) -> anyhow::Result<Self> {
        Self::sim_shaped(world, config, &Shape::default()).await
    }

    /// As [`Self::sim`], with `shape.inventories` Inventory instances sharing one store.
    pub async fn sim_shaped(world: &'w World, config: &Config, shape: &Shape) -> anyhow::Result<Self> {
        let mq: Arc<dyn MessageQueue> = world.queue();
        let prefetch = config.prefetch;
        let policy = world.policy(true);
        let order_store = Arc::new(OrderStore::open(None)?);
        let order =
            Arc::new(AsyncOrderService::new(OrderIds::seeded(config.seed), order_store, EventClock::Since(tokio::time::Instant::now())));
        world.start(Service::Order, wiring::order(order, mq.clone(), prefetch, policy));
        let notification_store = Arc::new(NotificationStore::open(None)?);
        world.start(Service::Notification, wiring::notification(notification_store, mq.clone(), prefetch, policy));
        let inventory_store = Arc::new(InventoryStore::open(None, config.stock)?);
        let parts = SimParts {
            world,
            inventory_store,
            prefetch,
            policy,
            instances: shape.inventories.max(1),
            running: Default::default(),
            failover: config.node_failover,
        };
        let mut d = Deployment { mq, http: world.net().clone(), kind: Kind::Sim(parts) };
        d.start_inventory().await?;
        Ok(d)
    }

    /// Three `campus-sim serve` processes on loopback, over the RabbitMQ at `amqp_url`, in a
    /// namespace of their own.
    pub async fn real(config: &Config, exe: &Path, amqp_url: &str, experiment: &str) -> anyhow::Result<Deployment<'static>> {
        Self::real_shaped(config, exe, amqp_url, experiment, &Shape::default()).await
    }

    /// As [`Self::real`], laid out as `shape` says.
    pub async fn real_shaped(
        config: &Config,
        exe: &Path,
        amqp_url: &str,
        experiment: &str,
        shape: &Shape,
    ) -> anyhow::Result<Deployment<'static>> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let amqp = AmqpQueue::connect(amqp_url, Topology::new(&namespace)).await.with_context(|| {
            format!(
                "RabbitMQ is not reachable at {}; {} (or set AMQP_URL)",
                campus::transport::amqp::redacted(amqp_url),
                config.brokers.how_to_start("rabbitmq")
            )
        })?;
        let pg = match &shape.store {
            Some(url) => Some(campus::store::Postgres::connect(url, &namespace).await.with_context(|| {
                format!(
                    "PostgreSQL is not reachable at {}; start it with `scripts/brokers.sh up postgres`",
                    campus::transport::amqp::redacted(url)
                )
            })?),
            None => None,
        };
        let amqp = Arc::new(amqp);
        let data_dir = std::env::temp_dir().join(&namespace);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let common: Vec<String> =
            ["--port", "0", "--amqp-url", amqp_url, "--namespace", &namespace, "--prefetch", &config.prefetch.to_string(), "--data-dir"]
                .iter()
                .map(|s| s.to_string())
                .chain([data_dir.display().to_string()])
                .chain(shape.store.iter().flat_map(|url| ["--store".to_owned(), url.clone()]))
                .collect();
        let notification = ServiceProcess::spawn(exe, "notification", Model::AsyncRabbitmq, &common).await?;
        let order = ServiceProcess::spawn(exe, "order", Model::AsyncRabbitmq, &common).await?;
        let mut d = Deployment {
            mq: amqp.clone(),
            http: Arc::new(HttpRequestReply::new([])),
            kind: Kind::Real(Box::new(RealParts {
                exe: exe.to_owned(),
                amqp,
                brokers: config.brokers,
                common,
                stock: config.stock,
                data_dir,
                pg,
                instances: shape.inventories.max(1),
                order,
                notification,
                inventories: Default::default(),
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
    /// Each running service process's name and pid (none in the simulation).
    pub async fn pids(&self) -> Vec<(String, u32)> {
        match &self.kind {
            Kind::Real(r) => {
                [&r.order, &r.notification].into_iter().chain(r.inventories.values()).filter_map(ServiceProcess::pid).collect()
            }
            _ => Vec::new(),
        }
    }

    pub fn order_client(&self) -> Arc<dyn RequestReply> {
        self.http.clone()
    }

    /// Whether any Inventory instance runs.
    pub fn inventory_up(&self) -> bool {
        self.inventories_running() > 0
    }

    /// Inventory instances running now.
    pub fn inventories_running(&self) -> usize {
        match &self.kind {
            Kind::Sim(s) => s.running.len(),
            Kind::Real(r) => r.inventories.len(),
        }
    }

    /// Every Inventory instance dies: their unacknowledged deliveries return to the queue;
    /// the store stays.
    pub async fn stop_inventory(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => {
                s.world.take_down(Service::Inventory).await;
                s.running.clear();
            }
            Kind::Real(r) => {
                for (_, mut process) in std::mem::take(&mut r.inventories) {
                    process.kill().await?;
                }
            }
        }
        Ok(())
    }

    /// Instance `instance` of Inventory dies (SIGKILL; in the simulation its loops are
    /// aborted): what it held unacknowledged is redelivered to the others.
    pub async fn crash_inventory(&mut self, instance: usize) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => {
                s.world.crash_instance(Service::Inventory, instance).await;
                s.running.remove(&instance);
            }
            Kind::Real(r) => {
                if let Some(mut process) = r.inventories.remove(&instance) {
                    process.kill().await?;
                }
            }
        }
        self.route_http();
        Ok(())
    }

    /// Every Inventory instance not running (re)starts, on the existing store.
    pub async fn start_inventory(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => {
                for k in (0..s.instances).filter(|k| !s.running.contains(k)).collect::<Vec<_>>() {
                    s.world.start_instance(
                        Service::Inventory,
                        k,
                        wiring::inventory(s.inventory_store.clone(), self.mq.clone(), s.prefetch, s.policy),
                    );
                    s.running.insert(k);
                }
            }
            Kind::Real(r) => {
                let mut args = r.common.clone();
                args.extend(["--stock".to_owned(), r.stock.to_string()]);
                for k in 0..r.instances {
                    if !r.inventories.contains_key(&k) {
                        r.inventories.insert(k, ServiceProcess::spawn(&r.exe, "inventory", Model::AsyncRabbitmq, &args).await?);
                    }
                }
            }
        }
        self.route_http();
        Ok(())
    }

    /// Real mode: calls to Inventory go to the first instance running (they share the store,
    /// so any answers for all).
    fn route_http(&mut self) {
        if let Kind::Real(r) = &self.kind {
            let mut peers = vec![(Service::Order, r.order.url().to_owned()), (Service::Notification, r.notification.url().to_owned())];
            if let Some(inventory) = r.inventories.values().next() {
                peers.push((Service::Inventory, inventory.url().to_owned()));
            }
            self.http = Arc::new(HttpRequestReply::new(peers));
        }
    }

    /// The broker node the services are connected to dies (sim: the world's node loss; real:
    /// `scripts/brokers.sh kill rabbitmq-node 1`, the first node of `AMQP_URL`). It comes back
    /// with [`Self::start_broker`].
    pub async fn lose_node(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => s.world.lose_node(s.failover),
            Kind::Real(r) => r.outage = Some(BrokerOutage::begin(Broker::RabbitMqNode(1), r.brokers).await?),
        }
        Ok(())
    }

    /// The broker goes away (sim: the world's outage; real: `rabbitmqctl stop_app`).
    pub async fn stop_broker(&mut self) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Sim(s) => s.world.set_broker(false),
            Kind::Real(r) => r.outage = Some(BrokerOutage::begin(Broker::RabbitMq, r.brokers).await?),
        }
        Ok(())
    }

    /// The lost node starts again and rejoins its cluster (real: `scripts/brokers.sh up --cluster
    /// rabbitmq`, until it serves). Its clients failed over already: in the simulation nothing
    /// changes.
    pub async fn restore_node(&mut self) -> anyhow::Result<()> {
        if let Kind::Real(r) = &mut self.kind {
            if let Some(outage) = r.outage.take() {
                outage.end().await?;
            }
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
                drop((r.order, r.notification, r.inventories));
                if let Err(e) = r.amqp.delete_topology().await {
                    tracing::warn!(error = %e, "could not delete the run's queues");
                }
                r.amqp.close().await;
                if let Some(pg) = &r.pg {
                    if let Err(e) = pg.drop_schema().await {
                        tracing::warn!(error = %e, "could not drop the run's schema");
                    }
                }
                let _ = std::fs::remove_dir_all(&r.data_dir);
            }
        }
    }
}
