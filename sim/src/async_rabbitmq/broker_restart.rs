//! Part B's `broker-restart` experiment: orders at a steady rate while RabbitMQ itself goes
//! away for `--broker-down-for` (simulated: the world's outage; real: `rabbitmqctl stop_app`,
//! then `start_app`). Nothing is restarted by hand: the services reconnect by themselves.
//!
//! What it shows: Order keeps answering 202 (its outbox fills instead of the queue), the
//! consumers resubscribe when the broker is back, the outbox drains through the relay, and every
//! accepted order is decided and notified once — redeliveries absorbed by the dedup.

use std::time::Duration;

use anyhow::bail;
use campus::store::{NotificationStats, OrderStats};
use campus::transport::queue::QueueName;
use campus::transport::Peer;
use tokio::time::Instant;

use super::experiments::{finish, get_json, place_orders};
use super::{BrokerRestart, BrokerSample, Config, Deployment, Detail, Run, Scenario};

/// Order's and Notification's counters (over HTTP: they answer whether or not the broker
/// does) and Inventory's queue depth (over AMQP: `None` while the broker cannot be asked).
async fn sample(d: &Deployment<'_>, t0: Instant, broker_up: bool) -> anyhow::Result<BrokerSample> {
    let orders: OrderStats = get_json(d.http().as_ref(), Peer::Order, "/stats").await?;
    let notification: NotificationStats = get_json(d.http().as_ref(), Peer::Notification, "/stats").await?;
    let queue_depth = d.mq().depth(QueueName::InventoryInbox).await.ok();
    Ok(BrokerSample {
        t_ms: t0.elapsed().as_millis() as u64,
        broker_up,
        accepted: orders.accepted,
        published: orders.published,
        queue_depth,
        reserved: orders.reserved,
        failed: orders.failed,
        notified: notification.notified,
    })
}

/// Every accepted order published, decided at Order and (if reserved) notified; the queue empty.
fn settled(s: &BrokerSample) -> bool {
    s.outbox() == 0 && s.reserved + s.failed == s.accepted && s.notified == s.reserved && s.queue_depth == Some(0)
}

pub async fn run(config: &Config, d: &mut Deployment<'_>) -> anyhow::Result<Run> {
    let total = config.lead + config.broker_down_for + config.lead;
    let n = (total.as_secs_f64() * f64::from(config.rate)).round() as usize;
    let orders = config.orders_for(Scenario::BrokerRestart, n);
    let t0 = Instant::now();
    let load = tokio::spawn(place_orders(d.order_client(), orders, config.rate));
    let (down_at, up_at) = (config.lead, config.lead + config.broker_down_for);
    let (mut down_ms, mut up_ms, mut drained_ms) = (None, None, None);
    // Orders waiting (outbox + queue) before the outage: what "drained" returns to.
    let mut steady = 1;
    let (mut samples, mut peak_outbox, mut peak_backlog) = (Vec::new(), 0, 0);
    let mut tick = tokio::time::interval_at(t0, Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    let mut live = crate::progress::Progress::new("broker-restart");
    let deadline = total + config.settle_within;
    let placed = loop {
        tick.tick().await;
        let now = t0.elapsed();
        if down_ms.is_none() && now >= down_at {
            d.stop_broker().await?;
            down_ms = Some(t0.elapsed().as_millis() as u64);
            crate::progress::step(&format!("broker-restart: RabbitMQ down at {:.1} s", now.as_secs_f64()));
        }
        if down_ms.is_some() && up_ms.is_none() && now >= up_at {
            d.start_broker().await?;
            up_ms = Some(t0.elapsed().as_millis() as u64);
            crate::progress::step(&format!("broker-restart: RabbitMQ back at {:.1} s", t0.elapsed().as_secs_f64()));
        }
        let broker_up = down_ms.is_none() || up_ms.is_some();
        let s = sample(d, t0, broker_up).await?;
        let waiting = s.outbox() + s.queue_depth.unwrap_or(0);
        if down_ms.is_none() {
            steady = steady.max(waiting);
        }
        peak_outbox = peak_outbox.max(s.outbox());
        peak_backlog = peak_backlog.max(waiting);
        if up_ms.is_some() && drained_ms.is_none() && s.queue_depth.is_some() && waiting <= steady {
            drained_ms = Some(s.t_ms);
            crate::progress::step(&format!("broker-restart: outbox and queue drained at {:.1} s", s.t_ms as f64 / 1e3));
        }
        let done = load.is_finished() && up_ms.is_some() && settled(&s);
        live.update(|| {
            let phase = if up_ms.is_some() { "draining" } else if down_ms.is_some() { "RabbitMQ down" } else { "RabbitMQ up" };
            let depth = s.queue_depth.map_or("?".to_owned(), |d| d.to_string());
            format!(
                "t={:>3} s of ≈{} s ({phase}): accepted {}, outbox {}, queue depth {depth}, reserved {}, notified {}",
                s.t_ms / 1000,
                total.as_secs(),
                s.accepted,
                s.outbox(),
                s.reserved,
                s.notified
            )
        });
        if ticks % 4 == 0 || done {
            samples.push(s.clone());
        }
        ticks += 1;
        if done {
            live.finish(&format!("settled at {:.1} s: every order decided and notified", s.t_ms as f64 / 1e3));
            break load.await.expect("the load task panicked");
        }
        if now > deadline {
            bail!("broker-restart: not settled {} s after the last order; last state {s:?}", config.settle_within.as_secs());
        }
    };
    let end = finish(d).await?;
    let (down, up) = (down_ms.expect("the broker was stopped"), up_ms.expect("the broker was started again"));
    Ok(Run {
        mode: d.mode(),
        accepted: placed.accepted.len(),
        refused: placed.refused,
        end,
        detail: Detail::BrokerRestart(BrokerRestart {
            samples,
            down_window_ms: (down, up),
            peak_outbox,
            peak_backlog,
            drain: drained_ms.map(|t| Duration::from_millis(t.saturating_sub(up))),
        }),
    })
}
