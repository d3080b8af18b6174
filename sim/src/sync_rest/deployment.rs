//! Part A's topology, written once, on whichever hosts: Notification; Inventory with the case's
//! stock, suffering the case's fault (`down`: started, then killed before the load, so that
//! Order's calls find nothing listening); Order calling both with the case's timeout, over the
//! case's protocol. In the
//! simulation the services are the world's hosts on its in-memory network; for real, three
//! `campus-sim serve … --model sync-rest` processes on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;

use campus::config::ServiceConfig;
use campus::transport::RequestReply;
use campus::{Model, Protocol, Service};

use super::load::Door;
use crate::client::get_json;
use crate::hosts::Hosts;
use crate::Mode;
use campus::faults::FaultPlan;

/// What a Part A deployment is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Units of each item Inventory starts with.
    pub stock: u32,
    /// Order's timeout on each call to Inventory and Notification.
    pub timeout: std::time::Duration,
    /// Items added to every service's menu (`serve --menu`); none in the lab's own runs.
    pub menu: Vec<String>,
    /// What the lab's client speaks to Order and Order to the others.
    pub protocol: Protocol,
    /// Orders Order holds open at once (`--max-in-flight`, 0: no limit); `None`: the service's
    /// default.
    pub max_in_flight: Option<usize>,
}

impl Settings {
    /// Over REST; [`Settings::over`] for another protocol.
    pub fn new(stock: u32, timeout: std::time::Duration) -> Self {
        Settings { stock, timeout, menu: Vec::new(), protocol: Protocol::Rest, max_in_flight: None }
    }

    pub fn over(self, protocol: Protocol) -> Self {
        Settings { protocol, ..self }
    }
}

/// Part A's three services, running.
pub struct Deployment<'w> {
    hosts: Hosts<'w>,
    settings: Settings,
}

impl<'w> Deployment<'w> {
    /// Starts the three services on `hosts` as `settings` say, Inventory suffering `fault`.
    pub async fn start(hosts: Hosts<'w>, settings: &Settings, fault: &FaultPlan) -> anyhow::Result<Self> {
        let d = Deployment { hosts, settings: settings.clone() };
        d.hosts.start(&d.config(Service::Notification), 0).await?;
        let running = FaultPlan { down: false, ..fault.clone() };
        d.hosts.start_with(&d.config(Service::Inventory), &running, 0).await?;
        let order = ServiceConfig {
            inventory_url: d.hosts.url(Service::Inventory)?,
            notification_url: d.hosts.url(Service::Notification)?,
            ..d.config(Service::Order)
        };
        d.hosts.start(&order, 0).await?;
        if fault.down {
            d.hosts.kill(Service::Inventory, 0).await?;
        }
        Ok(d)
    }

    /// `service`'s configuration in this deployment.
    fn config(&self, service: Service) -> ServiceConfig {
        let defaults = ServiceConfig::new(Model::SyncRest, service);
        ServiceConfig {
            max_in_flight: self.settings.max_in_flight.unwrap_or(defaults.max_in_flight),
            stock: self.settings.stock,
            timeout_ms: self.settings.timeout.as_millis() as u64,
            menu: self.settings.menu.clone(),
            protocol: self.settings.protocol,
            ..defaults
        }
    }

    pub fn mode(&self) -> Mode {
        self.hosts.mode()
    }

    /// The client the lab calls the services with (any face, any path).
    pub fn client(&self) -> Arc<dyn RequestReply> {
        self.hosts.client()
    }

    /// Where the load generator places orders: Order, over the deployment's protocol.
    pub fn door(&self) -> Door {
        Door { client: self.hosts.client(), protocol: self.settings.protocol }
    }

    pub fn protocol(&self) -> Protocol {
        self.settings.protocol
    }

    /// The lab's own look at the services (their accounts).
    pub fn observer(&self) -> Arc<dyn RequestReply> {
        self.hosts.observer()
    }

    /// Inventory suffers `plan` from its next request on.
    pub async fn set_fault(&self, plan: &FaultPlan) -> anyhow::Result<()> {
        self.hosts.set_fault(Service::Inventory, 0, plan).await
    }

    /// Inventory is killed: calls to it find nothing listening; its stock in memory is gone.
    pub async fn kill_inventory(&mut self) -> anyhow::Result<()> {
        self.kill(Service::Inventory).await
    }

    /// `service` is killed: calls to it find nothing listening.
    pub async fn kill(&mut self, service: Service) -> anyhow::Result<()> {
        self.hosts.kill(service, 0).await
    }

    /// Inventory starts again, with the stock it started with the first time, suffering `plan`.
    pub async fn restart_inventory(&mut self, plan: &FaultPlan) -> anyhow::Result<()> {
        self.hosts.start_with(&self.config(Service::Inventory), plan, 0).await
    }

    /// Each running service process's name and pid (none in the simulation).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.hosts.pids()
    }

    /// Whether Inventory runs.
    pub fn inventory_up(&self) -> bool {
        !self.hosts.running(Service::Inventory).is_empty()
    }

    /// Inventory's stock (`GET /stock`).
    pub async fn stock(&self) -> anyhow::Result<BTreeMap<String, u32>> {
        get_json(self.observer().as_ref(), Service::Inventory, "/stock").await
    }

    /// Stops every service; their spans, if traced.
    pub async fn teardown(self) -> Vec<campus::telemetry::trace::Request> {
        self.hosts.teardown().await
    }
}
