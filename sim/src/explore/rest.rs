//! Part A's property: over either protocol (REST, or gRPC with its codes read by the one table
//! of `campus::api::grpc::status`), under any sequence of Inventory faults (healthy, delayed
//! before deciding, answering late after deciding, erroring, hanging, down), every order is answered
//! within Order's timeout to Inventory (plus the way back) with the status the fault calls for —
//! 201 or 409 as the stock decides, 504 when Inventory is slower than the timeout or hangs, 503
//! when it is down or answers 5xx — and stock changes exactly as Inventory decided: a request
//! held before deciding and given up on takes nothing, one decided and answered too late takes
//! its stock behind the 504.
//!
//! Requests go one after the other, each with its own fault switched on Part A's deployment (the
//! graded run's, on the simulated world), over `SimNet` to the very routers `campus-sim serve`
//! runs. A `down` request kills Inventory; the next request that needs it starts it again, its
//! stock as new, as a restarted process's would be. Delays are 50 ms off any multiple of 100 ms and timeouts are whole
//! multiples of 500 ms, so no delay is within a network hop of its timeout: the expected status is
//! never a coin toss.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;
use campus::domain::{Items, OrderId, OrderRequest, StudentId};
use campus::services::inventory::{Inventory, ReserveOutcome};
use campus::{Model, Protocol};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{items_strategy, items_text, Break, Outcome};
use crate::hosts::Hosts;
use crate::simulator::world::{Scope, World};
use crate::sync_rest::invariants::{self, Answered};
use crate::sync_rest::{Deployment, Settings};
use crate::violation::Violation;
use crate::Mode;
use campus::faults::FaultPlan;

/// What is wrong with Inventory while one request is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InventoryFault {
    Healthy,
    Delay {
        ms: u64,
    },
    /// Decides at once, answers `ms` late.
    SlowReply {
        ms: u64,
    },
    Error {
        status: u16,
    },
    Hang,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub items: Items,
    pub inventory: InventoryFault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Order's timeout on its call to Inventory.
    pub timeout_ms: u64,
    /// Units of each item Inventory starts with.
    pub stock: u32,
    /// What the client speaks to Order and Order to Inventory (a schedule written before gRPC
    /// existed is REST's).
    #[serde(default)]
    pub protocol: Protocol,
    pub requests: Vec<Request>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "over {}: Order's timeout to Inventory {} ms; stock {} of each item", self.protocol, self.timeout_ms, self.stock)?;
        for (i, r) in self.requests.iter().enumerate() {
            let fault = match r.inventory {
                InventoryFault::Healthy => "healthy".to_owned(),
                InventoryFault::Delay { ms } => format!("delayed {ms} ms"),
                InventoryFault::SlowReply { ms } => format!("deciding at once, answering {ms} ms late"),
                InventoryFault::Error { status } => format!("answering {status}"),
                InventoryFault::Hang => "hanging".to_owned(),
                InventoryFault::Down => "down".to_owned(),
            };
            writeln!(f, "  request #{i}: {}, Inventory {fault}", items_text(&r.items))?;
        }
        Ok(())
    }
}

fn fault_strategy() -> impl Strategy<Value = InventoryFault> {
    prop_oneof![
        4 => Just(InventoryFault::Healthy),
        3 => (0u64..30).prop_map(|k| InventoryFault::Delay { ms: k * 100 + 50 }),
        2 => (0u64..30).prop_map(|k| InventoryFault::SlowReply { ms: k * 100 + 50 }),
        1 => prop::sample::select(vec![500u16, 502, 503]).prop_map(|status| InventoryFault::Error { status }),
        1 => Just(InventoryFault::Hang),
        1 => Just(InventoryFault::Down),
    ]
}

impl super::Schedule for Schedule {
    fn strategy() -> BoxedStrategy<Self> {
        // The requests shrink first (proptest shrinks a tuple's parts in order).
        (
            prop::collection::vec((fault_strategy(), items_strategy()).prop_map(|(inventory, items)| Request { items, inventory }), 1..=8),
            prop::sample::select(vec![500u64, 1000, 2000]),
            0u32..=6,
            prop::sample::select(Protocol::ALL.to_vec()),
        )
            .prop_map(|(requests, timeout_ms, stock, protocol)| Schedule { timeout_ms, stock, protocol, requests })
            .boxed()
    }

    fn run_traced(&self, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
        run(self, seed, broken, traced)
    }
}

/// What the fault calls for, given the stock `model` has left (which this advances when the
/// reservation happens).
fn expected(request: &Request, timeout: Duration, model: &mut Inventory, index: usize) -> StatusCode {
    let mut reserve = || {
        let id = OrderId::parse(format!("o-model-{index}")).expect("valid");
        match model.reserve(&id, &request.items).outcome {
            ReserveOutcome::Reserved => StatusCode::CREATED,
            ReserveOutcome::Rejected { .. } => StatusCode::CONFLICT,
        }
    };
    match request.inventory {
        InventoryFault::Healthy => reserve(),
        InventoryFault::Delay { ms } | InventoryFault::SlowReply { ms } if Duration::from_millis(ms) < timeout => reserve(),
        InventoryFault::SlowReply { .. } => {
            reserve();
            StatusCode::GATEWAY_TIMEOUT
        }
        InventoryFault::Delay { .. } | InventoryFault::Hang => StatusCode::GATEWAY_TIMEOUT,
        InventoryFault::Error { .. } | InventoryFault::Down => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub fn run(schedule: &Schedule, seed: u64, broken: Option<Break>, traced: bool) -> Outcome {
    let world = World::new(seed, Model::SyncRest, Scope::Explore);
    world.block_on(run_in_world(&world, schedule, broken, traced)).unwrap_or_else(Outcome::failed)
}

/// The fault plan a request's Inventory suffers (all but `down`).
fn plan(fault: InventoryFault) -> FaultPlan {
    match fault {
        InventoryFault::Delay { ms } => FaultPlan::delayed(Duration::from_millis(ms)),
        InventoryFault::SlowReply { ms } => FaultPlan::slow_reply(Duration::from_millis(ms)),
        InventoryFault::Error { status } => FaultPlan::erroring(StatusCode::from_u16(status).expect("a valid status")),
        InventoryFault::Hang => FaultPlan::hanging(),
        InventoryFault::Healthy | InventoryFault::Down => FaultPlan::healthy(),
    }
}

async fn run_in_world(world: &World, schedule: &Schedule, broken: Option<Break>, traced: bool) -> anyhow::Result<Outcome> {
    let timeout = Duration::from_millis(schedule.timeout_ms);
    // Without the timeout, Order waits as long as Inventory takes (an hour stands for forever).
    let order_timeout = if broken == Some(Break::NoTimeout) { Duration::from_secs(3600) } else { timeout };
    // Part A's deployment, as the graded run starts it; each request switches Inventory's fault
    // (a `down` kills it; the next request that needs it starts it again, its stock as new).
    let settings = Settings::new(schedule.stock, order_timeout).over(schedule.protocol);
    let mut d = Deployment::start(Hosts::Sim(world), &settings, &FaultPlan::healthy()).await?;
    let door = d.door();
    let mut model = Inventory::with_stock(schedule.stock);
    let mut answers = Vec::new();
    let mut trace = crate::fault::trace::Trace::new(traced);
    let bound = timeout + invariants::timeout_slack(Mode::Sim);
    // The client waits a while past the bound, to tell "late" from "never".
    let guard = bound * 2 + Duration::from_secs(1);
    for (index, request) in schedule.requests.iter().enumerate() {
        match request.inventory {
            InventoryFault::Down if d.inventory_up() => d.kill_inventory().await?,
            InventoryFault::Down => {}
            fault if d.inventory_up() => d.set_fault(&plan(fault)).await?,
            fault => {
                d.restart_inventory(&plan(fault)).await?;
                model = Inventory::with_stock(schedule.stock);
                trace.push(|| format!("Inventory started again, {} of each item", schedule.stock));
            }
        }
        let body = OrderRequest::new(StudentId::parse("s-0001").expect("valid"), request.items.clone());
        let sent = Instant::now();
        let reply = tokio::time::timeout(guard, door.place(&body, guard)).await;
        let latency = sent.elapsed();
        let status = match reply {
            Ok(Ok((status, _))) => status,
            _ => 0,
        };
        let expected = expected(request, timeout, &mut model, index);
        trace.push(|| {
            format!(
                "request #{index} ({}) → {} after {} ms (expected {})",
                items_text(&request.items),
                if status == 0 { "no answer".to_owned() } else { status.to_string() },
                latency.as_millis(),
                expected.as_u16()
            )
        });
        answers.push(Answered { index, expected: expected.as_u16(), status, latency, bound });
    }
    let mut violations = invariants::check_answers("explore", &answers);
    if d.inventory_up() {
        // Healthy again, so that it answers the lab's look at its stock.
        d.set_fault(&FaultPlan::healthy()).await?;
        let stock = d.stock().await?;
        let modelled: BTreeMap<String, u32> = model.levels().iter().map(|(sku, n)| (sku.to_string(), *n)).collect();
        if stock != modelled {
            violations.push(Violation {
                experiment: "explore".into(),
                message: format!("Inventory's stock {stock:?} is not what the answers add up to, {modelled:?}"),
            });
        }
    }
    let events = world.net().calls() * 2;
    d.teardown().await;
    Ok(Outcome { violations, trace: trace.take(), events, business: Default::default() })
}
