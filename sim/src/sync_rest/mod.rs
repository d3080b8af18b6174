//! Part A, synchronous REST: the experiments, run in the simulation or over real sockets and
//! processes by the same load generator.
//!
//! | experiment     | Inventory suffers        | Order's call timeout | expected answer      |
//! |----------------|--------------------------|----------------------|----------------------|
//! | `baseline`     | nothing                  | patient (5 s)        | 201                  |
//! | `delay`        | 2 s delay                | patient (5 s)        | 201, ≈ 2 s + baseline|
//! | `timeout`      | 2 s delay                | 1 s                  | 504 at ≈ 1 s         |
//! | `failure-down` | down (connection refused)| patient (5 s)        | 503, fast            |
//! | `failure-5xx`  | answers 500              | patient (5 s)        | 503, fast            |
//!
//! `--experiment failure` runs both failure cases. The load is closed-loop: `concurrency`
//! clients, each sending its next order as soon as the previous one is answered.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use campus::api;
use campus::domain::OrderRequest;
use campus::services::inventory::Inventory;
use campus::services::notification::Notifier;
use campus::services::order::{OrderIds, SyncOrderService};
use campus::transport::http::HttpRequestReply;
use campus::transport::{Peer, RequestReply};
use tokio::time::Instant;

use crate::fault::{self, FaultPlan};
use crate::net::{LinkModel, SimNet};
use crate::real::ServiceProcess;
use crate::serve::Model;
use crate::rng::SimRng;
use crate::{workload, world, Mode};

pub mod output;

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// N requests, nothing wrong.
    Baseline,
    /// Inventory delayed 2 s, Order patient: latency ≈ 2 s + baseline.
    Delay,
    /// Inventory delayed 2 s, Order's timeout below it: 504 at the bound.
    Timeout,
    /// Inventory down, then answering 500: fast 503.
    Failure,
    /// All of the above, in that order.
    All,
}

/// Everything an experiment run depends on. [`Config::default`] is the assignment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub experiment: Experiment,
    /// Requests of `baseline` and of each `failure` case.
    pub requests: usize,
    /// Requests of `delay` and `timeout`, where each takes ≥ 1 s of (real or virtual) time.
    pub slow_requests: usize,
    /// Clients sending at once.
    pub concurrency: usize,
    /// Inventory's injected delay in `delay` and `timeout`.
    pub delay: Duration,
    /// Order's timeout on each downstream call in `timeout` (below `delay`).
    pub timeout: Duration,
    /// Order's timeout on each downstream call in every other experiment (above `delay`).
    pub patient_timeout: Duration,
    /// Units of each menu item Inventory starts with.
    pub stock: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: crate::DEFAULT_SEED,
            experiment: Experiment::All,
            requests: 1000,
            slow_requests: 100,
            concurrency: 10,
            delay: Duration::from_millis(2000),
            timeout: Duration::from_millis(1000),
            patient_timeout: Duration::from_millis(5000),
            stock: 5000,
        }
    }
}

/// A setting that would make an experiment meaningless.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--requests, --slow-requests and --concurrency must be at least 1")]
    Zero,
    #[error("--timeout-ms ({timeout} ms) must be below --delay-ms ({delay} ms), or the timeout experiment never times out")]
    TimeoutNotBelowDelay { timeout: u128, delay: u128 },
    #[error("--patient-timeout-ms ({patient} ms) must be above --delay-ms ({delay} ms), or the delay experiment times out")]
    PatientNotAboveDelay { patient: u128, delay: u128 },
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.requests == 0 || self.slow_requests == 0 || self.concurrency == 0 {
            return Err(ConfigError::Zero);
        }
        if self.timeout >= self.delay {
            return Err(ConfigError::TimeoutNotBelowDelay { timeout: self.timeout.as_millis(), delay: self.delay.as_millis() });
        }
        if self.patient_timeout <= self.delay {
            return Err(ConfigError::PatientNotAboveDelay {
                patient: self.patient_timeout.as_millis(),
                delay: self.delay.as_millis(),
            });
        }
        Ok(())
    }

    /// The cases `experiment` selects, in the order they run.
    pub fn cases(&self) -> Vec<Case> {
        let patient = self.patient_timeout;
        let all = [
            Case::new("baseline", FaultPlan::healthy(), patient, self.requests, StatusCode::CREATED),
            Case::new("delay", FaultPlan::delayed(self.delay), patient, self.slow_requests, StatusCode::CREATED),
            Case::new("timeout", FaultPlan::delayed(self.delay), self.timeout, self.slow_requests, StatusCode::GATEWAY_TIMEOUT),
            Case::new("failure-down", FaultPlan::down(), patient, self.requests, StatusCode::SERVICE_UNAVAILABLE),
            Case::new(
                "failure-5xx",
                FaultPlan::erroring(StatusCode::INTERNAL_SERVER_ERROR),
                patient,
                self.requests,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        let wanted = |name: &str| match self.experiment {
            Experiment::All => true,
            Experiment::Baseline => name == "baseline",
            Experiment::Delay => name == "delay",
            Experiment::Timeout => name == "timeout",
            Experiment::Failure => name.starts_with("failure"),
        };
        all.into_iter().filter(|c| wanted(c.experiment)).collect()
    }

    fn orders(&self, n: usize) -> Vec<OrderRequest> {
        workload::orders(&mut SimRng::new(self.seed).fork("sync-rest/workload"), n)
    }
}

/// One experiment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub experiment: &'static str,
    /// What Inventory suffers.
    pub fault: FaultPlan,
    /// Order's timeout on each downstream call.
    pub call_timeout: Duration,
    pub requests: usize,
    /// The status every request should get.
    pub expected: StatusCode,
}

impl Case {
    fn new(experiment: &'static str, fault: FaultPlan, call_timeout: Duration, requests: usize, expected: StatusCode) -> Self {
        Case { experiment, fault, call_timeout, requests, expected }
    }

    /// How long the load generator waits for an answer before recording "no answer"
    /// (status 0): both downstream calls at their timeout, plus slack. Order must never get
    /// near it; the checker reports any request that did.
    pub fn client_guard(&self) -> Duration {
        self.call_timeout * 2 + Duration::from_secs(5)
    }
}

/// One request as the load generator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub index: usize,
    /// The order id from the reply body; empty when the reply has none (e.g. invalid input).
    pub order_id: String,
    /// The HTTP status; 0 when no answer came (connection failed, or `client_guard` passed).
    pub status: u16,
    pub latency: Duration,
}

/// A finished case: its setting, every answer (by index) and how long the whole load took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRun {
    pub case: Case,
    pub mode: Mode,
    pub answers: Vec<Answer>,
    pub elapsed: Duration,
}

/// Sends `orders` to Order's `POST /order` from `concurrency` clients; returns the answers
/// in request order and the time the whole load took. The same code drives the simulation
/// and real sockets: only `client` differs.
pub async fn drive(
    client: Arc<dyn RequestReply>,
    orders: Vec<OrderRequest>,
    concurrency: usize,
    guard: Duration,
) -> (Vec<Answer>, Duration) {
    let orders = Arc::new(orders);
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(orders.len())));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(orders.len()) {
        let (client, orders, next, answers) = (client.clone(), orders.clone(), next.clone(), answers.clone());
        clients.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(order) = orders.get(index) else { break };
                let sent = Instant::now();
                let reply = tokio::time::timeout(guard, client.post_json(Peer::Order, "/order", order)).await;
                let latency = sent.elapsed();
                let (status, order_id) = match reply {
                    Ok(Ok(reply)) => (reply.status().as_u16(), order_id_of(reply.body())),
                    Ok(Err(e)) => {
                        tracing::warn!(index, error = %e, "no answer from order");
                        (0, String::new())
                    }
                    Err(_) => {
                        tracing::warn!(index, guard_ms = guard.as_millis() as u64, "order did not answer within the guard");
                        (0, String::new())
                    }
                };
                answers.lock().expect("answers lock").push(Answer { index, order_id, status, latency });
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.expect("a load-generator client panicked");
    }
    let elapsed = started.elapsed();
    let mut answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    answers.sort_by_key(|a| a.index);
    (answers, elapsed)
}

fn order_id_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("order_id").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Runs the selected cases in the simulation: every service a task of one current-thread
/// runtime on a paused clock, calls through [`SimNet`]. Each case gets a fresh world.
pub fn run_sim(config: &Config) -> Vec<CaseRun> {
    config.cases().into_iter().map(|case| run_sim_case(config, case)).collect()
}

fn run_sim_case(config: &Config, case: Case) -> CaseRun {
    let orders = config.orders(case.requests);
    world::block_on(async {
        let rng = SimRng::new(config.seed).fork("sync-rest").fork(case.experiment);
        let net = Arc::new(SimNet::new(rng.fork("net"), LinkModel::default()));
        let inventory = Arc::new(Mutex::new(Inventory::with_stock(config.stock)));
        let notifier = Arc::new(Mutex::new(Notifier::default()));
        let order = SyncOrderService::new(OrderIds::seeded(config.seed), net.clone(), case.call_timeout);

        net.host(Peer::Order, api::order::sync_app(Arc::new(order)));
        net.host(Peer::Notification, api::notification::app(notifier));
        if case.fault.down {
            net.take_down(Peer::Inventory);
        } else {
            net.host(Peer::Inventory, fault::apply(api::inventory::app(inventory), &case.fault));
        }

        let (answers, elapsed) = drive(net.clone(), orders, config.concurrency, case.client_guard()).await;
        net.clear();
        CaseRun { case, mode: Mode::Sim, answers, elapsed }
    })
}

/// Runs the selected cases over real sockets: for each case, three `campus-sim serve`
/// processes (`exe`) on free loopback ports; `down` is a SIGKILLed inventory process.
pub async fn run_real(config: &Config, exe: &Path) -> anyhow::Result<Vec<CaseRun>> {
    let mut runs = Vec::new();
    for case in config.cases() {
        runs.push(run_real_case(config, case, exe).await?);
    }
    Ok(runs)
}

async fn run_real_case(config: &Config, case: Case, exe: &Path) -> anyhow::Result<CaseRun> {
    tracing::info!(experiment = case.experiment, fault = %case.fault, "starting services");
    let notification = ServiceProcess::spawn(exe, "notification", Model::SyncRest, &["--port", "0"]).await?;
    let mut inventory_args = vec!["--port".to_owned(), "0".to_owned(), "--stock".to_owned(), config.stock.to_string()];
    inventory_args.extend(serve_fault_flags(&case.fault));
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
    let client = Arc::new(HttpRequestReply::new([(Peer::Order, order.url().to_owned())]));
    let (answers, elapsed) = drive(client, config.orders(case.requests), config.concurrency, case.client_guard()).await;
    Ok(CaseRun { case, mode: Mode::Real, answers, elapsed })
}

/// The `campus-sim serve inventory` flags that inject `plan` (all but `down`).
pub fn serve_fault_flags(plan: &FaultPlan) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(delay) = plan.delay {
        flags.extend(["--delay-ms".to_owned(), delay.as_millis().to_string()]);
    }
    if let Some(status) = plan.error {
        flags.extend(["--error-status".to_owned(), status.as_u16().to_string()]);
    }
    if plan.hang {
        flags.push("--hang".to_owned());
    }
    flags
}
