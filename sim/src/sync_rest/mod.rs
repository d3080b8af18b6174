//! Part A, synchronous REST: the experiments, run in the simulation or over real sockets and
//! processes by the same load generator.
//!
//! | experiment     | Inventory suffers        | Order's call timeout | expected answer      |
//! |----------------|--------------------------|----------------------|----------------------|
//! | `baseline`     | nothing                  | patient (5 s)        | 201                  |
//! | `open-loop`    | nothing                  | patient (5 s)        | 201, 20 orders/s arriving regardless (Parts B and C's load) |
//! | `delay`        | 2 s delay                | patient (5 s)        | 201, ≈ 2 s + baseline|
//! | `open-delay`   | 2 s delay                | patient (5 s)        | 201 at ≈ 2 s, 20 orders/s arriving regardless: rate × delay in flight |
//! | `timeout`      | 2 s delay before deciding| 1 s                  | 504 at ≈ 1 s         |
//! | `timeout-after-reserve` | reserves, then answers 2 s late | 1 s     | 504 at ≈ 1 s, stock taken |
//! | `failure-down` | down (connection refused)| patient (5 s)        | 503, fast            |
//! | `failure-5xx`  | answers 500              | patient (5 s)        | 503, fast            |
//!
//! `--experiment timeout` runs both timeout cases and `--experiment failure` both failure
//! cases; `--experiment delay` runs `delay` and `open-delay`. The load is closed-loop —
//! `concurrency` clients, each sending its next order as soon as the previous one is answered
//! — except in `open-loop` and `open-delay`, where orders arrive at `rate` a second whatever
//! the answers (steady or Poisson, `--arrivals`), the load of Parts B and C (each latency
//! measured from the order's intended send time, so a sender that falls behind cannot hide the
//! wait; see [`crate::load`]). A closed loop hides a slow dependency: its clients just send
//! less. `open-delay` shows what it does to students who keep arriving — requests pile up in
//! Order, rate × delay of them in flight. After each
//! case's load, [`aftermath`] measures what its failed answers left behind at Inventory and what
//! a retry of each 504 under its own order id does.

pub mod aftermath;
pub mod deployment;
pub mod figures;
pub mod invariants;
pub mod load;
pub mod output;
pub mod protocols;
pub mod rows;

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use campus::domain::OrderRequest;
use campus::{Model, Protocol};

pub use deployment::{Deployment, Settings};
pub use load::{drive, Answer, Door};

use crate::hosts::{Hosts, Place};
use crate::simulator::world::{self, Scope, Stream, World};
use crate::traces::Traced;
use crate::{workload, Mode};
use campus::faults::FaultPlan;

/// Which experiments to run (`--experiment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// N requests, nothing wrong.
    Baseline,
    /// Nothing wrong, orders arriving at --rate a second whatever the answers (Parts B and
    /// C's load).
    OpenLoop,
    /// Inventory delayed 2 s, Order patient: latency ≈ 2 s + baseline; under the closed loop
    /// (`delay`) and under orders arriving at --rate whatever the answers (`open-delay`).
    Delay,
    /// Order's timeout below Inventory's 2 s: 504 at the bound, with Inventory slow before
    /// deciding (nothing reserved) and slow after reserving (stock taken behind the 504).
    Timeout,
    /// Inventory down, then answering 500: fast 503.
    Failure,
    /// All of the above, in that order.
    All,
}

/// One case of Part A, as the CSVs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Baseline,
    OpenLoop,
    Delay,
    OpenDelay,
    Timeout,
    TimeoutAfterReserve,
    FailureDown,
    Failure5xx,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::Baseline,
        Scenario::OpenLoop,
        Scenario::Delay,
        Scenario::OpenDelay,
        Scenario::Timeout,
        Scenario::TimeoutAfterReserve,
        Scenario::FailureDown,
        Scenario::Failure5xx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::OpenLoop => "open-loop",
            Scenario::Delay => "delay",
            Scenario::OpenDelay => "open-delay",
            Scenario::Timeout => "timeout",
            Scenario::TimeoutAfterReserve => "timeout-after-reserve",
            Scenario::FailureDown => "failure-down",
            Scenario::Failure5xx => "failure-5xx",
        }
    }

    /// Whether its orders arrive on a schedule, whatever the answers.
    pub fn is_open(self) -> bool {
        matches!(self, Scenario::OpenLoop | Scenario::OpenDelay)
    }

    /// Whether `--experiment` selects this case.
    fn selected_by(self, experiment: Experiment) -> bool {
        match (experiment, self) {
            (Experiment::All, _)
            | (Experiment::Baseline, Scenario::Baseline)
            | (Experiment::OpenLoop, Scenario::OpenLoop)
            | (Experiment::Delay, Scenario::Delay | Scenario::OpenDelay)
            | (Experiment::Timeout, Scenario::Timeout | Scenario::TimeoutAfterReserve)
            | (Experiment::Failure, Scenario::FailureDown | Scenario::Failure5xx) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
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
    /// Clients sending at once (every case but `open-loop`).
    pub concurrency: usize,
    /// Orders arriving per second in `open-loop` and `open-delay`.
    pub rate: u32,
    /// How they arrive: steadily, or as a Poisson process from the seed.
    pub arrivals: crate::load::Shape,
    /// Orders sent in `open-loop` and `open-delay`.
    pub open_requests: usize,
    /// Inventory's injected delay in `delay` and `timeout`.
    pub delay: Duration,
    /// Order's timeout on each downstream call in `timeout` (below `delay`).
    pub timeout: Duration,
    /// Order's timeout on each downstream call in every other experiment (above `delay`).
    pub patient_timeout: Duration,
    /// Units of each menu item Inventory starts with.
    pub stock: u32,
    /// The protocols every case runs over, in turn (`--protocol`).
    pub protocols: Vec<Protocol>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: crate::DEFAULT_SEED,
            experiment: Experiment::All,
            requests: 1000,
            slow_requests: 100,
            rate: 20,
            arrivals: crate::load::Shape::Steady,
            open_requests: 200,
            concurrency: 10,
            delay: Duration::from_millis(2000),
            timeout: Duration::from_millis(1000),
            patient_timeout: Duration::from_millis(5000),
            stock: 5000,
            protocols: Protocol::ALL.to_vec(),
        }
    }
}

/// A setting that would make an experiment meaningless.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--requests, --slow-requests and --concurrency must be at least 1, and --protocol name one protocol or more")]
    Zero,
    #[error("--timeout-ms ({timeout} ms) must be below --delay-ms ({delay} ms), or the timeout experiment never times out")]
    TimeoutNotBelowDelay { timeout: u128, delay: u128 },
    #[error("--patient-timeout-ms ({patient} ms) must be above --delay-ms ({delay} ms), or the delay experiment times out")]
    PatientNotAboveDelay { patient: u128, delay: u128 },
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.requests == 0 || self.slow_requests == 0 || self.concurrency == 0 || self.protocols.is_empty() {
            return Err(ConfigError::Zero);
        }
        if self.timeout >= self.delay {
            return Err(ConfigError::TimeoutNotBelowDelay { timeout: self.timeout.as_millis(), delay: self.delay.as_millis() });
        }
        if self.patient_timeout <= self.delay {
            return Err(ConfigError::PatientNotAboveDelay { patient: self.patient_timeout.as_millis(), delay: self.delay.as_millis() });
        }
        Ok(())
    }

    /// The cases `experiment` selects, in the order they run.
    pub fn cases(&self) -> Vec<Case> {
        let patient = self.patient_timeout;
        let all = [
            Case::new(Scenario::Baseline, FaultPlan::healthy(), patient, self.requests, StatusCode::CREATED),
            Case::new(Scenario::OpenLoop, FaultPlan::healthy(), patient, self.open_requests, StatusCode::CREATED),
            Case::new(Scenario::Delay, FaultPlan::delayed(self.delay), patient, self.slow_requests, StatusCode::CREATED),
            Case::new(Scenario::OpenDelay, FaultPlan::delayed(self.delay), patient, self.open_requests, StatusCode::CREATED),
            Case::new(Scenario::Timeout, FaultPlan::delayed(self.delay), self.timeout, self.slow_requests, StatusCode::GATEWAY_TIMEOUT),
            Case::new(
                Scenario::TimeoutAfterReserve,
                FaultPlan::slow_reply(self.delay),
                self.timeout,
                self.slow_requests,
                StatusCode::GATEWAY_TIMEOUT,
            ),
            Case::new(Scenario::FailureDown, FaultPlan::down(), patient, self.requests, StatusCode::SERVICE_UNAVAILABLE),
            Case::new(
                Scenario::Failure5xx,
                FaultPlan::erroring(StatusCode::INTERNAL_SERVER_ERROR),
                patient,
                self.requests,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        all.into_iter().filter(|c| c.scenario.selected_by(self.experiment)).collect()
    }

    /// How a case's orders arrive: open-loop cases on a schedule drawn from the seed (the same
    /// in both modes), the others from `concurrency` clients.
    fn arrivals(&self, case: &Case) -> load::Arrivals {
        match case.scenario {
            Scenario::OpenLoop | Scenario::OpenDelay => {
                let mut rng = world::stream(self.seed, Model::SyncRest, &Scope::Experiment(case.scenario.name()), Stream::Arrivals);
                load::Arrivals::Open { offsets: self.arrivals.offsets(self.rate, case.requests, &mut rng) }
            }
            _ => load::Arrivals::Closed { clients: self.concurrency },
        }
    }

    /// The orders of a case: the same in every case and both modes (drawn from the seed).
    fn orders(&self, case: &Case) -> Vec<OrderRequest> {
        let mut rng = world::stream(self.seed, Model::SyncRest, &Scope::Experiment(case.scenario.name()), Stream::Workload);
        workload::orders(&mut rng, case.requests)
    }
}

/// One experiment's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub scenario: Scenario,
    /// What Inventory suffers.
    pub fault: FaultPlan,
    /// Order's timeout on each downstream call.
    pub call_timeout: Duration,
    pub requests: usize,
    /// The status every request should get.
    pub expected: StatusCode,
}

impl Case {
    fn new(scenario: Scenario, fault: FaultPlan, call_timeout: Duration, requests: usize, expected: StatusCode) -> Self {
        Case { scenario, fault, call_timeout, requests, expected }
    }

    /// Whether its services are traced over `protocol`: the traced scenarios, over REST (the
    /// report draws one protocol; see `docs/tracing.md`).
    pub fn traced(&self, protocol: Protocol) -> bool {
        protocol == Protocol::Rest && crate::traces::traced(Model::SyncRest, self.scenario.name())
    }

    /// How long the load generator waits for an answer before recording "no answer"
    /// (status 0): both downstream calls at their timeout, plus slack. Order must never get
    /// near it; the checker reports any request that did.
    pub fn client_guard(&self) -> Duration {
        self.call_timeout * 2 + Duration::from_secs(5)
    }
}

/// A finished case: its setting, every answer (by index), how long the whole load took and
/// what its failed answers left behind at Inventory (none when Inventory was down).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRun {
    pub case: Case,
    pub mode: Mode,
    pub protocol: Protocol,
    /// The mean size of an order's request body on the wire (see [`Door::body_bytes`]).
    pub request_bytes: f64,
    pub answers: Vec<Answer>,
    pub elapsed: Duration,
    pub left_behind: Option<aftermath::LeftBehindRow>,
    /// Its services' spans, if the case is traced ([`crate::traces::traced`], over REST).
    pub traced: Traced,
}

impl CaseRun {
    /// Its orders on one clock (the load's, from its start): Part A's accept is its
    /// completion, Order answering once the whole chain has run; an order not answered 201
    /// has neither.
    pub fn timed(&self) -> Vec<crate::load::Timed> {
        load::timed(&self.answers)
    }
}

/// Runs one case over `protocol` on `hosts`: the deployment, the load, then the teardown.
async fn run_case(config: &Config, case: Case, protocol: Protocol, hosts: Hosts<'_>) -> anyhow::Result<CaseRun> {
    let settings = Settings::new(config.stock, case.call_timeout).over(protocol);
    let deployment = Deployment::start(hosts, &settings, &case.fault).await?;
    let mode = deployment.mode();
    // Real loads take seconds to half a minute: their answers are counted on stderr.
    let label = (mode == Mode::Real).then_some(case.scenario.name());
    let orders = config.orders(&case);
    let arrivals = config.arrivals(&case);
    let door = deployment.door();
    let request_bytes = orders.iter().map(|o| door.body_bytes(o) as f64).sum::<f64>() / orders.len().max(1) as f64;
    let (answers, elapsed) = load::drive_shown(door, orders.clone(), arrivals, case.client_guard(), label).await;
    let hold = case.fault.delay.max(case.fault.reply_delay).unwrap_or_default();
    let left_behind = aftermath::measure(&deployment, case.scenario.name(), config.stock, &orders, &answers, hold).await?;
    let traced = Traced(deployment.teardown().await);
    Ok(CaseRun { case, mode, protocol, request_bytes, answers, elapsed, left_behind, traced })
}

/// Runs the selected cases in the simulation over each protocol, each in a fresh world (the
/// same world for both protocols: the same orders, the same link latencies drawn).
pub fn run_sim(config: &Config) -> anyhow::Result<Vec<CaseRun>> {
    let mut runs = Vec::new();
    for &protocol in &config.protocols {
        for case in config.cases() {
            let world = World::new(config.seed, Model::SyncRest, Scope::Experiment(case.scenario.name()));
            let world = if case.traced(protocol) { world.traced() } else { world };
            runs.push(world.block_on(run_case(config, case, protocol, Hosts::Sim(&world)))?);
        }
    }
    Ok(runs)
}

/// Runs the selected cases over real sockets: for each case, three `campus-sim serve`
/// processes (`exe`) on free loopback ports.
pub async fn run_real(config: &Config, exe: &Path) -> anyhow::Result<Vec<CaseRun>> {
    let mut runs = Vec::new();
    for &protocol in &config.protocols {
        for case in config.cases() {
            crate::progress::step(&format!(
                "{} over {protocol}: starting the three services (Inventory's fault: {})",
                case.scenario.name(),
                case.fault
            ));
            let hosts = Hosts::real(exe, Model::SyncRest, case.scenario.name(), Place::default()).await?;
            let hosts = if case.traced(protocol) { hosts.traced() } else { hosts };
            runs.push(run_case(config, case, protocol, hosts).await?);
        }
    }
    Ok(runs)
}
