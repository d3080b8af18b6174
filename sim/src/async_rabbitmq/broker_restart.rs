//! Part B's `broker-restart` experiment: orders at a steady rate while RabbitMQ itself goes
//! away for `--broker-down-for` (simulated: the world's outage; real: `rabbitmqctl stop_app`,
//! then `start_app`). Nothing is restarted by hand: the services reconnect by themselves.
//!
//! What it shows: Order keeps answering 202 (its outbox fills instead of the queue), the
//! consumers resubscribe when the broker is back, the outbox drains through the relay, and every
//! accepted order is decided and notified once — redeliveries absorbed by the dedup.

use std::time::Duration;

use campus::store::{NotificationStats, OrderStats};
use campus::transport::queue::QueueName;
use campus::Service;
use tokio::time::Instant;

use super::observe::{finish, get_json};
use super::window::{under_load, Fault, Window, WindowSample};
use super::{BrokerRestart, BrokerSample, Config, Deployment, Detail, Run, Scenario};

/// How long the sample waits for Inventory's queue depth. A fresh CI run hung in this
/// experiment for 15 minutes with RabbitMQ paused and the lab asleep, its services still
/// answering over HTTP; the likeliest wait is this AMQP question, sent as the broker closed the
/// connection and never answered. The outage ends from the same loop that samples, so a sample
/// must not wait on the broker it has taken away.
const DEPTH_WITHIN: Duration = Duration::from_secs(2);

/// Order's and Notification's counters (over HTTP: they answer whether or not the broker
/// does) and Inventory's queue depth (over AMQP: `None` while the broker cannot be asked, or
/// does not answer within [`DEPTH_WITHIN`]), read downstream first (see
/// [`super::observe::sample`]).
async fn sample(d: &Deployment<'_>, t0: Instant, broker_up: bool) -> anyhow::Result<BrokerSample> {
    let notification: NotificationStats = get_json(d.http().as_ref(), Service::Notification, "/stats").await?;
    let queue_depth = tokio::time::timeout(DEPTH_WITHIN, d.mq().depth(QueueName::InventoryInbox)).await.ok().and_then(Result::ok);
    let orders: OrderStats = get_json(d.http().as_ref(), Service::Order, "/stats").await?;
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

impl WindowSample for BrokerSample {
    async fn take(d: &Deployment<'_>, t0: Instant, fault_on: bool) -> anyhow::Result<Self> {
        sample(d, t0, !fault_on).await
    }
    fn t_ms(&self) -> u64 {
        self.t_ms
    }
    /// In the outbox, and in Inventory's queue where it can be read.
    fn waiting(&self) -> u64 {
        self.outbox() + self.queue_depth.unwrap_or(0)
    }
    /// The queue readable again, and outbox + queue back to their level before the outage.
    fn drained(&self, before: u64) -> bool {
        self.queue_depth.is_some() && self.waiting() <= before
    }
    /// Every accepted order published, decided at Order and (if reserved) notified; the queue
    /// empty.
    fn settled(&self) -> bool {
        self.outbox() == 0 && self.reserved + self.failed == self.accepted && self.notified == self.reserved && self.queue_depth == Some(0)
    }
    fn status(&self) -> String {
        let depth = self.queue_depth.map_or("?".to_owned(), |d| d.to_string());
        format!(
            "accepted {}, outbox {}, queue depth {depth}, reserved {}, notified {}",
            self.accepted,
            self.outbox(),
            self.reserved,
            self.notified
        )
    }
}

pub async fn run(config: &Config, d: &mut Deployment<'_>) -> anyhow::Result<Run> {
    broker_away(config, d, Scenario::BrokerRestart, Fault::Broker, config.broker_down_for, Detail::BrokerRestart).await
}

/// Orders at a steady rate while `fault` takes the broker, or the node the services use, away
/// for `length`; then until every order settled. The observations are the same whichever it
/// was; `detail` names the experiment.
pub(super) async fn broker_away(
    config: &Config,
    d: &mut Deployment<'_>,
    scenario: Scenario,
    fault: Fault,
    length: std::time::Duration,
    detail: fn(BrokerRestart) -> Detail,
) -> anyhow::Result<Run> {
    let w: Window<BrokerSample> = under_load(config, d, scenario, fault, length).await?;
    let end = finish(d).await?;
    let peak_outbox = w.samples.iter().map(BrokerSample::outbox).max().unwrap_or(0);
    Ok(Run {
        mode: d.mode(),
        accepted: w.placed.accepted.len(),
        refused: w.placed.refused,
        end,
        traced: Default::default(),
        detail: detail(BrokerRestart {
            down_window_ms: (w.down_ms, w.up_ms),
            peak_outbox,
            peak_backlog: w.peak,
            drain: w.drain(),
            samples: w.samples,
        }),
    })
}
