//! Part B's topology, written once, on whichever hosts: Order, Notification, and Inventory as
//! one instance or several (competing consumers of its queue, sharing its store), each with
//! the run's prefetch; Inventory stocked with the run's stock when its store is new. In the
//! simulation they are the world's hosts over its `SimQueue`, their stores kept in memory; for
//! real, `campus-sim serve … --model async-rabbitmq` processes over a real RabbitMQ in a
//! namespace of the run's own, a SQLite file each or one PostgreSQL database they share.
//!
//! The experiments see only this type: they place orders through Order, read the services'
//! accounts, stop every Inventory instance (its store survives, as a disk would), crash one of
//! several, and take the broker or the node the services use away and back.

use std::sync::Arc;

use campus::config::ServiceConfig;
use campus::transport::queue::MessageQueue;
use campus::transport::RequestReply;
use campus::{Model, Service};

use super::Config;
use crate::hosts::{Away, Hosts};
use crate::Mode;

/// Part B's three services, running.
pub struct Deployment<'w> {
    hosts: Hosts<'w>,
    /// Inventory's instances when all run.
    instances: usize,
    prefetch: u16,
    stock: u32,
}

impl<'w> Deployment<'w> {
    /// Starts Order, Notification and `instances` Inventory instances on `hosts`.
    pub async fn start(hosts: Hosts<'w>, config: &Config, instances: usize) -> anyhow::Result<Self> {
        let d = Deployment { hosts, instances: instances.max(1), prefetch: config.prefetch, stock: config.stock };
        d.hosts.start(&d.config(Service::Order), 0).await?;
        d.hosts.start(&d.config(Service::Notification), 0).await?;
        d.start_inventory().await?;
        Ok(d)
    }

    /// `service`'s configuration in this deployment.
    fn config(&self, service: Service) -> ServiceConfig {
        ServiceConfig { prefetch: self.prefetch, stock: self.stock, ..ServiceConfig::new(Model::AsyncRabbitmq, service) }
    }

    pub fn mode(&self) -> Mode {
        self.hosts.mode()
    }

    /// The harness's own connection to the broker.
    pub fn mq(&self) -> Arc<dyn MessageQueue> {
        self.hosts.queue()
    }

    /// HTTP to the services (Order's API, the others' accounting endpoints), as any client.
    pub fn http(&self) -> Arc<dyn RequestReply> {
        self.hosts.client()
    }

    /// The lab's own look at the services (in the simulation, at no cost in virtual time).
    pub fn observer(&self) -> Arc<dyn RequestReply> {
        self.hosts.observer()
    }

    /// The client the load generator uses.
    pub fn order_client(&self) -> Arc<dyn RequestReply> {
        self.hosts.client()
    }

    /// Each running service process's name and pid (none in the simulation).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.hosts.pids()
    }

    /// The next instances that crashed by themselves (real only: see [`Hosts::aborted`]).
    pub async fn aborted(&self) -> Vec<(Service, usize)> {
        self.hosts.aborted().await
    }

    /// The services' stores, read by the lab after the fact.
    pub fn storage(&self) -> campus::store::Storage {
        self.hosts.storage()
    }

    /// Whether instance `instance` of `service` runs.
    pub fn is_running(&self, service: Service, instance: usize) -> bool {
        self.hosts.running(service).contains(&instance)
    }

    /// Whether any Inventory instance runs.
    pub fn inventory_up(&self) -> bool {
        self.inventories_running() > 0
    }

    /// Inventory instances running now.
    pub fn inventories_running(&self) -> usize {
        self.hosts.running(Service::Inventory).len()
    }

    /// Every Inventory instance dies: their unacknowledged deliveries return to the queue; the
    /// store stays.
    pub async fn stop_inventory(&self) -> anyhow::Result<()> {
        for instance in self.hosts.running(Service::Inventory) {
            self.hosts.kill(Service::Inventory, instance).await?;
        }
        Ok(())
    }

    /// Instance `instance` of Inventory dies: what it held unacknowledged is redelivered to the
    /// others.
    pub async fn crash_inventory(&self, instance: usize) -> anyhow::Result<()> {
        self.kill(Service::Inventory, instance).await
    }

    /// Instance `instance` of `service` dies where it stands (its store stays).
    pub async fn kill(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        self.hosts.kill(service, instance).await
    }

    /// Instance `instance` of `service` starts (again), on its store.
    pub async fn start_instance(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        self.hosts.start(&self.config(service), instance).await
    }

    /// Every Inventory instance not running (re)starts, on the existing store.
    pub async fn start_inventory(&self) -> anyhow::Result<()> {
        let running = self.hosts.running(Service::Inventory);
        for instance in (0..self.instances).filter(|k| !running.contains(k)) {
            self.start_instance(Service::Inventory, instance).await?;
        }
        Ok(())
    }

    /// The broker goes away (real: `rabbitmqctl stop_app`).
    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Broker).await
    }

    /// The broker comes back (real: `rabbitmqctl start_app`, then until it serves).
    pub async fn start_broker(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Broker).await
    }

    /// The broker hangs: its connections stay open and nothing answers (real: its VM
    /// SIGSTOPped).
    pub async fn hang_broker(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Hang).await
    }

    /// The hung broker answers again (real: SIGCONT, then until it serves).
    pub async fn thaw_broker(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Hang).await
    }

    /// The database the services' stores share goes down (real: PostgreSQL stopped, on the
    /// cluster).
    pub async fn stop_database(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Database).await
    }

    /// The database is back (real: PostgreSQL started, then until it serves).
    pub async fn start_database(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Database).await
    }

    /// The broker node the services are connected to dies (real: cluster node 1 SIGKILLed, the
    /// first node of `AMQP_URL`).
    pub async fn lose_node(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Node).await
    }

    /// The lost node starts again and rejoins its cluster.
    pub async fn restore_node(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Node).await
    }

    /// Stops everything and removes what the run created; the services' spans, if traced.
    pub async fn teardown(self) -> Vec<campus::telemetry::trace::Request> {
        self.hosts.teardown().await
    }
}
