//! Part A as the specifications drive it: the graded run's deployment (`campus_sim::sync_rest`)
//! on a fresh simulated world, Inventory holding 10 of each item, Order's timeout 1 s — and the
//! calls and looks a specification needs, in the API's words.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use campus::faults::FaultPlan;
use campus::{Model, Protocol, Service};
use campus_sim::client::get_json;
use campus_sim::hosts::Hosts;
use campus_sim::simulator::world::{Scope, World};
use campus_sim::sync_rest::{Deployment, Settings};
use serde_json::Value;
use tokio::time::Instant;

/// Order's timeout on each call.
pub const TIMEOUT: Duration = Duration::from_millis(1000);
/// Units of each item Inventory starts with.
pub const STOCK: u32 = 10;

/// A world for one specification (its seed fixed: the specifications are deterministic).
pub fn world() -> World {
    World::new(1, Model::SyncRest, Scope::Experiment("spec"))
}

pub struct Campus<'w> {
    pub world: &'w World,
    pub deployment: Deployment<'w>,
}

/// An answer: its status, its JSON body, and how long it took.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub latency: Duration,
}

impl<'w> Campus<'w> {
    /// The three services on `world`, Inventory suffering `fault`, Order calling it over REST.
    pub async fn start(world: &'w World, fault: FaultPlan) -> anyhow::Result<Campus<'w>> {
        Self::start_over(world, fault, Protocol::Rest).await
    }

    /// The three services on `world`, Inventory suffering `fault`, Order calling it over `protocol`.
    pub async fn start_over(world: &'w World, fault: FaultPlan, protocol: Protocol) -> anyhow::Result<Campus<'w>> {
        Self::start_with(world, fault, Settings::new(STOCK, TIMEOUT).over(protocol)).await
    }

    /// The three services on `world` as `settings` say, Inventory suffering `fault`.
    pub async fn start_with(world: &'w World, fault: FaultPlan, settings: Settings) -> anyhow::Result<Campus<'w>> {
        Ok(Campus { world, deployment: Deployment::start(Hosts::Sim(world), &settings, &fault).await? })
    }

    /// `POST /order` with `body` as `content_type`, over the network as a client sends it.
    pub async fn post_order(&self, content_type: &str, body: impl Into<Bytes>) -> anyhow::Result<Reply> {
        let request = http::Request::post("/order").header(http::header::CONTENT_TYPE, content_type).body(body.into())?;
        let sent = Instant::now();
        let reply = self.deployment.client().call(Service::Order, request).await?;
        let body = serde_json::from_slice(reply.body())?;
        Ok(Reply { status: reply.status(), body, latency: sent.elapsed() })
    }

    /// `POST /order` with a JSON body.
    pub async fn order_json(&self, value: Value) -> anyhow::Result<Reply> {
        self.post_order("application/json", serde_json::to_vec(&value)?).await
    }

    /// Units of `sku` Inventory has left.
    pub async fn stock(&self, sku: &str) -> anyhow::Result<u32> {
        Ok(self.deployment.stock().await?[sku])
    }

    /// Whether Inventory's stock is as it started.
    pub async fn untouched(&self) -> anyhow::Result<bool> {
        Ok(self.deployment.stock().await?.values().all(|&n| n == STOCK))
    }

    /// Notification's confirmations (`GET /sent`): the order ids, and how many were sent in all.
    pub async fn sent(&self) -> anyhow::Result<(Vec<String>, u64)> {
        let request = http::Request::get("/sent").body(Bytes::new())?;
        let reply = self.deployment.observer().call(Service::Notification, request).await?;
        let total = reply.headers()["x-campus-sent"].to_str()?.parse()?;
        let shown: Vec<Value> = serde_json::from_slice(reply.body())?;
        Ok((shown.iter().filter_map(|c| c["order_id"].as_str().map(str::to_owned)).collect(), total))
    }

    /// Calls made to `service` over the network (the lab's own looks not counted).
    pub fn calls_to(&self, service: Service) -> u64 {
        self.world.net().calls_to(service)
    }

    /// `GET path` on `service`, over the network.
    pub async fn get(&self, service: Service, path: &str) -> anyhow::Result<Value> {
        get_json(self.deployment.client().as_ref(), service, path).await
    }
}
