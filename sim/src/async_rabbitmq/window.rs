//! The shape Part B's fault-window experiments share (`outage`, `broker-restart`, `node-loss`): orders
//! at a steady rate for lead + window + lead; the fault switched on after the lead and off
//! after the window; a sample every 250 ms (each kept for the CSV); the drain measured
//! from the end of the fault until what waits is back to its level before it; done when the
//! load is over, the fault is off and every order has settled.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use super::observe::{place_orders, Placed};
use super::{Config, Deployment, Scenario};

/// What is taken away for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Inventory's process (SIGKILL; a new one on the same store afterwards).
    Inventory,
    /// RabbitMQ itself.
    Broker,
    /// The node of a RabbitMQ cluster the services are connected to (SIGKILL; started again
    /// and rejoined after the window).
    Node,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Inventory => "Inventory",
            Fault::Broker => "RabbitMQ",
            Fault::Node => "RabbitMQ node 1",
        }
    }

    async fn begin(self, d: &mut Deployment<'_>) -> anyhow::Result<()> {
        match self {
            Fault::Inventory => d.stop_inventory().await,
            Fault::Broker => d.stop_broker().await,
            Fault::Node => d.lose_node().await,
        }
    }

    async fn end(self, d: &mut Deployment<'_>) -> anyhow::Result<()> {
        match self {
            Fault::Inventory => d.start_inventory().await,
            Fault::Broker => d.start_broker().await,
            Fault::Node => d.restore_node().await,
        }
    }
}

/// One observation of a fault-window experiment.
pub(super) trait WindowSample: Clone + std::fmt::Debug + Sized {
    /// Observes the deployment now (`fault_on`: whether the fault is in force).
    async fn take(d: &Deployment<'_>, t0: Instant, fault_on: bool) -> anyhow::Result<Self>;
    fn t_ms(&self) -> u64;
    /// Orders waiting to be handled, as far as they can be counted now.
    fn waiting(&self) -> u64;
    /// Back to normal after the fault, given the most that waited before it.
    fn drained(&self, before: u64) -> bool;
    /// Every order accepted so far decided at Order and, if reserved, notified; nothing waits.
    fn settled(&self) -> bool;
    /// The counts for the live progress line.
    fn status(&self) -> String;
}

/// What a fault-window experiment observed.
pub(super) struct Window<S> {
    pub placed: Placed,
    pub samples: Vec<S>,
    /// The most orders waiting at any sample (every 250 ms).
    pub peak: u64,
    pub down_ms: u64,
    pub up_ms: u64,
    pub drained_ms: Option<u64>,
}

impl<S> Window<S> {
    pub fn drain(&self) -> Option<Duration> {
        self.drained_ms.map(|t| Duration::from_millis(t.saturating_sub(self.up_ms)))
    }
}

/// Runs `scenario`'s load with `fault` in force for `length` after `config.lead`.
pub(super) async fn under_load<S: WindowSample>(
    config: &Config,
    d: &mut Deployment<'_>,
    scenario: Scenario,
    fault: Fault,
    length: Duration,
) -> anyhow::Result<Window<S>> {
    let name = scenario.name();
    let total = config.lead + length + config.lead;
    let n = (total.as_secs_f64() * f64::from(config.rate)).round() as usize;
    let t0 = Instant::now();
    let load = tokio::spawn(place_orders(d.order_client(), config.load(scenario, n, config.rate), d.mode()));
    let (down_at, up_at) = (config.lead, config.lead + length);
    let (mut down_ms, mut up_ms, mut drained_ms) = (None, None, None);
    let (mut samples, mut peak, mut before) = (Vec::new(), 0, 1);
    let mut tick = tokio::time::interval_at(t0, Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut live = crate::progress::Progress::new(name);
    let deadline = total + config.settle_within;
    let placed = loop {
        tick.tick().await;
        let now = t0.elapsed();
        if down_ms.is_none() && now >= down_at {
            fault.begin(d).await?;
            down_ms = Some(t0.elapsed().as_millis() as u64);
            crate::progress::step(&format!("{name}: {} down at {:.1} s", fault.name(), now.as_secs_f64()));
        }
        if down_ms.is_some() && up_ms.is_none() && now >= up_at {
            fault.end(d).await?;
            up_ms = Some(t0.elapsed().as_millis() as u64);
            crate::progress::step(&format!("{name}: {} back at {:.1} s", fault.name(), now.as_secs_f64()));
        }
        let fault_on = down_ms.is_some() && up_ms.is_none();
        // Whether every order was answered, asked *before* the sample: asked after it, the
        // last order could be accepted in between and the run judged on a sample without it
        // (a real node loss once ended "settled" one verdict early, its order still on the way).
        let placed_all = load.is_finished();
        let s = S::take(d, t0, fault_on).await?;
        if down_ms.is_none() {
            before = before.max(s.waiting());
        }
        peak = peak.max(s.waiting());
        if up_ms.is_some() && drained_ms.is_none() && s.drained(before) {
            drained_ms = Some(s.t_ms());
            crate::progress::step(&format!("{name}: drained at {:.1} s", s.t_ms() as f64 / 1e3));
        }
        let done = placed_all && up_ms.is_some() && s.settled();
        live.update(|| {
            let phase = if up_ms.is_some() {
                "draining".to_owned()
            } else if fault_on {
                format!("{} down", fault.name())
            } else {
                format!("{} up", fault.name())
            };
            format!("t={:>3} s of ≈{} s ({phase}): {}", s.t_ms() / 1000, total.as_secs(), s.status())
        });
        // One sample per instant: a sample taken in the same millisecond as the one before it
        // (at a transition: the fault begun or ended) replaces it.
        match samples.last_mut() {
            Some(last) if S::t_ms(last) == s.t_ms() => *last = s.clone(),
            _ => samples.push(s.clone()),
        }
        if done {
            live.finish(&format!("settled at {:.1} s: every order decided and notified", s.t_ms() as f64 / 1e3));
            break load.await.expect("the load task panicked");
        }
        if now > deadline {
            bail!("{name}: not settled {} s after the last order; last state {s:?}", config.settle_within.as_secs());
        }
    };
    Ok(Window { placed, samples, peak, down_ms: down_ms.expect("the fault began"), up_ms: up_ms.expect("the fault ended"), drained_ms })
}
