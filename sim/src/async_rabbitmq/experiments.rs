//! Part B's experiments, step by step: the load, the observations (Order's and Notification's
//! counters, the queues' depths), the fault, and the wait until everything settled. The same
//! code runs against the simulated world and the real processes; only the [`Deployment`]
//! differs.

use std::time::Duration;

use anyhow::bail;
use campus::domain::{Envelope, Event, Order, OrderPlaced, OrderStatus};
use campus::store::{InventoryStats, NotificationStats, OrderRecord};
use campus::transport::queue::{QueueName, Route};
use campus::Service;
use tokio::time::Instant;

use super::observe::{completed, finish, get_json, place_orders, sample, settled, wait_settled, Placed};
use super::window::{under_load, Fault, Window, WindowSample};
use super::{poison_bodies, Config, Deployment, Detail, Outage, Run, Sample, Scenario};
use crate::traces::Traced;

/// Runs one experiment on a fresh deployment.
pub async fn run_experiment(config: &Config, scenario: Scenario, mut d: Deployment<'_>) -> anyhow::Result<Run> {
    let result = match scenario {
        Scenario::Outage => outage(config, &mut d).await,
        Scenario::Idempotency => idempotency(config, &d).await,
        Scenario::Poison => poison(config, &d).await,
        Scenario::BrokerRestart => super::broker_restart::run(config, &mut d).await,
        Scenario::NodeLoss => super::node_loss::run(config, &mut d).await,
        Scenario::ScaleOut { instances, crash } => super::scale_out::run(config, &mut d, instances, crash).await,
    };
    let spans = d.teardown().await;
    result.map(|run| Run { traced: Traced(spans), ..run })
}

async fn outage(config: &Config, d: &mut Deployment<'_>) -> anyhow::Result<Run> {
    let w: Window<Sample> = under_load(config, d, Scenario::Outage, Fault::Inventory, config.down_for).await?;
    let orders = completed(d, &w.placed).await?;
    let end = finish(d).await?;
    Ok(Run {
        mode: d.mode(),
        accepted: w.placed.accepted.len(),
        refused: w.placed.refused,
        end,
        traced: Default::default(),
        detail: Detail::Outage(Outage {
            peak_backlog: w.peak,
            down_window_ms: (w.down_ms, w.up_ms),
            drain: w.drain(),
            accept_p50: (!w.placed.accept_latencies.is_empty()).then(|| crate::reporting::percentile(&w.placed.accept_latencies, 50.0)),
            samples: w.samples,
            orders,
        }),
    })
}

impl WindowSample for Sample {
    async fn take(d: &Deployment<'_>, t0: Instant, _fault_on: bool) -> anyhow::Result<Self> {
        sample(d, t0).await
    }
    fn t_ms(&self) -> u64 {
        self.t_ms
    }
    fn waiting(&self) -> u64 {
        self.queue_depth
    }
    /// Inventory's queue empty again.
    fn drained(&self, _before: u64) -> bool {
        self.queue_depth == 0
    }
    fn settled(&self) -> bool {
        settled(self, self.accepted)
    }
    fn status(&self) -> String {
        format!("queue depth {}, accepted {}, reserved {}, notified {}", self.queue_depth, self.accepted, self.reserved, self.notified)
    }
}

/// Orders at a brisk rate, then wait until each has its verdict and notification.
async fn place_and_settle(config: &Config, d: &Deployment<'_>, scenario: Scenario, t0: Instant) -> anyhow::Result<Placed> {
    let load = config.load(scenario, config.orders, config.rate.max(100));
    let placed = place_orders(d.order_client(), load, d.mode()).await;
    let n = placed.accepted.len() as u64;
    wait_settled(d, t0, config.settle_within, |s| settled(s, n)).await?;
    Ok(placed)
}

async fn idempotency(config: &Config, d: &Deployment<'_>) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let placed = place_and_settle(config, d, Scenario::Idempotency, t0).await?;
    // Publish the very OrderPlaced of the first `duplicates` orders again, straight to the
    // broker, as a redelivery or a relay crashing after its confirm would.
    let http = d.http();
    let before: NotificationStats = get_json(http.as_ref(), Service::Notification, "/stats").await?;
    let mut reserved_duplicates = 0u64;
    for (order_id, request) in placed.accepted.iter().take(config.duplicates) {
        let record: OrderRecord = get_json(http.as_ref(), Service::Order, &format!("/order/{order_id}")).await?;
        let order = Order::new(order_id.clone(), request.clone());
        let event = Event::OrderPlaced(OrderPlaced { order, placed_at_ms: record.placed_at_ms });
        d.mq().publish(Route::OrderPlaced, Envelope::new(event).encode().into()).await?;
        reserved_duplicates += u64::from(record.status == OrderStatus::Reserved);
    }
    let duplicates = config.duplicates.min(placed.accepted.len());
    crate::progress::step(&format!("idempotency: {duplicates} duplicate OrderPlaced published"));
    // Settled when Inventory answered every duplicate from its store and Notification has
    // received (and ignored) the re-emitted InventoryReserved of each reserved one.
    let deadline = Instant::now() + config.settle_within;
    loop {
        let inventory: InventoryStats = get_json(http.as_ref(), Service::Inventory, "/stats").await?;
        let notification: NotificationStats = get_json(http.as_ref(), Service::Notification, "/stats").await?;
        let order_inbox = d.mq().depth(QueueName::OrderInbox).await?;
        if inventory.repeats >= duplicates as u64 && notification.received >= before.received + reserved_duplicates && order_inbox == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("idempotency: duplicates not absorbed in time ({} of {duplicates} seen by inventory)", inventory.repeats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = finish(d).await?;
    Ok(Run {
        mode: d.mode(),
        accepted: placed.accepted.len(),
        refused: placed.refused,
        end,
        detail: Detail::Idempotency { duplicates },
        traced: Default::default(),
    })
}

async fn poison(config: &Config, d: &Deployment<'_>) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let rate = config.rate.max(100);
    let load = tokio::spawn(place_orders(d.order_client(), config.load(Scenario::Poison, config.orders, rate), d.mode()));
    // Spread the poison over the load, so good messages queue behind bad ones.
    let spacing = Duration::from_secs_f64(config.orders as f64 / f64::from(rate) / config.poison.max(1) as f64);
    for (_, body) in poison_bodies(config.poison) {
        d.mq().publish(Route::OrderPlaced, body.into()).await?;
        tokio::time::sleep(spacing).await;
    }
    let placed = load.await.expect("the load task panicked");
    let (n, poison) = (placed.accepted.len() as u64, config.poison as u64);
    wait_settled(d, t0, config.settle_within, |s| settled(s, n) && s.dead_lettered >= poison).await?;
    let end = finish(d).await?;
    Ok(Run {
        mode: d.mode(),
        accepted: placed.accepted.len(),
        refused: placed.refused,
        end,
        traced: Default::default(),
        detail: Detail::Poison { injected: config.poison },
    })
}
