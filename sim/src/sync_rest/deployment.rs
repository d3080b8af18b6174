//! Where Part A's services run for one case: as routers on the world's in-memory network, or
//! as three `campus-sim serve … --model sync-rest` processes on loopback. Both are wired by
//! `campus::sync_rest`; Inventory suffers the case's fault, applied by
//! [`crate::fault`] in either mode (`down`: not hosted / its process SIGKILLed).

use std::path::Path;
use std::sync::Arc;

use campus::services::order::OrderIds;
use campus::sync_rest as wiring;
use campus::transport::http::HttpRequestReply;
use campus::transport::RequestReply;
use campus::Model;
use campus::Service;

use super::{Case, Config};
use crate::fault;
use crate::net::SimNet;
use crate::real::ServiceProcess;
use crate::world::World;
use crate::Mode;

/// Part A's three services, running.
pub struct Deployment {
    client: Arc<dyn RequestReply>,
    parts: Parts,
}

enum Parts {
    Sim(Arc<SimNet>),
    /// Dropping them kills the processes.
    Real(#[allow(dead_code)] Vec<ServiceProcess>),
}

impl Deployment {
    /// The three services as hosts of `world`.
    pub fn sim(world: &World, config: &Config, case: &Case) -> Self {
        let net = world.net().clone();
        world.host(Service::Order, wiring::order(OrderIds::seeded(config.seed), net.clone(), case.call_timeout));
        world.host(Service::Notification, wiring::notification(wiring::notification_state()));
        if case.fault.down {
            net.take_down(Service::Inventory);
        } else {
            world.host(Service::Inventory, fault::apply(wiring::inventory(wiring::inventory_state(config.stock)), &case.fault));
        }
        Deployment { client: net.clone(), parts: Parts::Sim(net) }
    }

    /// Three `exe serve` processes on free loopback ports.
    pub async fn real(exe: &Path, config: &Config, case: &Case) -> anyhow::Result<Self> {
        tracing::info!(experiment = %case.scenario, fault = %case.fault, "starting services");
        let notification = ServiceProcess::spawn(exe, "notification", Model::SyncRest, &["--port", "0"]).await?;
        let mut inventory_args = vec!["--port".to_owned(), "0".to_owned(), "--stock".to_owned(), config.stock.to_string()];
        inventory_args.extend(case.fault.serve_flags());
        let mut inventory = ServiceProcess::spawn(exe, "inventory", Model::SyncRest, &inventory_args).await?;
        let timeout_ms = case.call_timeout.as_millis().to_string();
        let order = ServiceProcess::spawn(
            exe,
            "order",
            Model::SyncRest,
            &["--port", "0", "--inventory-url", inventory.url(), "--notification-url", notification.url(), "--timeout-ms", &timeout_ms],
        )
        .await?;
        if case.fault.down {
            inventory.kill().await?;
        }
        let client = Arc::new(HttpRequestReply::new([(Service::Order, order.url().to_owned())]));
        Ok(Deployment { client, parts: Parts::Real(vec![order, inventory, notification]) })
    }

    pub fn mode(&self) -> Mode {
        match self.parts {
            Parts::Sim(_) => Mode::Sim,
            Parts::Real(_) => Mode::Real,
        }
    }

    /// The client the load generator posts orders with.
    pub fn client(&self) -> Arc<dyn RequestReply> {
        self.client.clone()
    }

    /// Stops every service.
    pub async fn teardown(self) {
        match self.parts {
            Parts::Sim(net) => net.clear(),
            Parts::Real(processes) => drop(processes),
        }
    }
}
