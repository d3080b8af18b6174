//! `campus-sim --real-brokers bench --rates`: latency against offered load, each model on its
//! real deployment. Orders arrive at a steady rate whatever the answers (the lab's open loop,
//! [`crate::load`]) for [`STEP`] at each rate of [`RATES`] in turn, on one deployment per case;
//! the p99 of accept and of completion is measured from each order's intended start. The
//! ladder stops at the first rate where something gives: a completion p99 above the case's
//! bound, or an order not accepted (Part A's slow case with Order's in-flight limit goes one
//! rate further, to set beside the same case without the limit).
//!
//! | case | accept | completion | bound on completion p99 |
//! |---|---|---|---|
//! | sync-rest | 201 | the same answer | 1 s |
//! | sync-rest, Inventory 2 s slow | 201 | the same answer | delay + 1 s |
//! | sync-rest, Inventory 2 s slow, no limit | the same, Order's `--max-in-flight 0` | | delay + 1 s |
//! | async-rabbitmq | 202 | Notification's confirmation | 1 s |
//! | streaming-kafka | the producer's 202 | Analytics counting the outcome | 1 s |

use std::path::Path;
use std::time::Duration;

use campus::faults::FaultPlan;
use campus::{Model, Protocol};
use serde::{Deserialize, Serialize};

use crate::hosts::{Hosts, Place};
use crate::load::{Percentiles, Timed};
use crate::reporting::csv::{self, Fixed, Row};
use crate::simulator::world::{self, Scope, Stream};
use crate::{async_rabbitmq, streaming_kafka, sync_rest, workload, Mode};

/// Orders a second, doubling.
pub const RATES: [u32; 10] = [50, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600];
/// How long orders arrive at each rate.
pub const STEP: Duration = Duration::from_secs(5);
/// Part A's injected delay in the slow case.
pub const DELAY: Duration = Duration::from_secs(2);
pub const RATES_CSV: &str = "bench_rates.csv";

/// One rate of one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    pub case: String,
    pub mode: Mode,
    pub rate: u32,
    pub orders: usize,
    pub accepted: usize,
    pub completed: usize,
    pub accept_p50_ms: Option<Fixed<1>>,
    pub accept_p99_ms: Option<Fixed<1>>,
    pub completion_p50_ms: Option<Fixed<1>>,
    pub completion_p99_ms: Option<Fixed<1>>,
    pub completion_max_ms: Option<Fixed<1>>,
    /// Empty while it holds; what gave at this rate.
    pub gave: String,
}

impl Row for RateRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

impl RateRow {
    /// `refused`: how the orders not accepted were answered, when the case can tell.
    fn of(case: &str, rate: u32, orders: &[Timed], refused: &str, bound: Duration) -> Self {
        let (accept, completion) = crate::load::timeline::percentiles(orders);
        let ms = |p: Option<Percentiles>, f: fn(&Percentiles) -> Duration| p.map(|p| Fixed(f(&p).as_secs_f64() * 1e3));
        let accepted = orders.iter().filter(|o| o.accept.is_some()).count();
        let completed = orders.iter().filter(|o| o.completion.is_some()).count();
        let gave = if accepted < orders.len() {
            format!("{} of {} orders not accepted{refused}", orders.len() - accepted, orders.len())
        } else if completed < accepted {
            format!("{} accepted orders not completed", accepted - completed)
        } else if completion.is_some_and(|p| p.p99 > bound) {
            format!("completion p99 above {} ms", bound.as_millis())
        } else {
            String::new()
        };
        RateRow {
            case: case.to_owned(),
            mode: Mode::Real,
            rate,
            orders: orders.len(),
            accepted,
            completed,
            accept_p50_ms: ms(accept, |p| p.p50),
            accept_p99_ms: ms(accept, |p| p.p99),
            completion_p50_ms: ms(completion, |p| p.p50),
            completion_p99_ms: ms(completion, |p| p.p99),
            completion_max_ms: ms(completion, |p| p.max),
            gave,
        }
    }
}

/// The orders of one step, from the seed.
fn orders(seed: u64, model: Model, rate: u32) -> Vec<campus::domain::OrderRequest> {
    let n = (f64::from(rate) * STEP.as_secs_f64()) as usize;
    workload::orders(&mut world::stream(seed, model, &Scope::Bench { round: u64::from(rate) }, Stream::Workload), n)
}

fn steady(rate: u32, n: usize) -> Vec<Duration> {
    crate::load::Shape::Steady.offsets(rate, n, &mut crate::simulator::rng::SimRng::new(0))
}

/// Steps `step` through [`RATES`] until a rate gives (and `past` rates more), printing each.
async fn ladder<F, Fut>(case: &str, bound: Duration, past: usize, mut step: F) -> anyhow::Result<Vec<RateRow>>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Vec<Timed>, String)>>,
{
    let mut rows = Vec::new();
    let mut more = None;
    for rate in RATES {
        let (orders, refused) = step(rate).await?;
        let row = RateRow::of(case, rate, &orders, &refused, bound);
        let show = |v: Option<Fixed<1>>| v.map_or("—".to_owned(), |v| format!("{:.1}", v.0));
        println!(
            "  {case} at {rate}/s: accept p99 {} ms, completion p99 {} ms{}",
            show(row.accept_p99_ms),
            show(row.completion_p99_ms),
            if row.gave.is_empty() { String::new() } else { format!(" — gave: {}", row.gave) }
        );
        if !row.gave.is_empty() && more.is_none() {
            more = Some(past);
        }
        rows.push(row);
        match more.as_mut() {
            Some(0) => break,
            Some(n) => *n -= 1,
            None => {}
        }
    }
    Ok(rows)
}

/// Part A's cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    Healthy,
    /// Inventory 2 s slow, Order limiting the orders it holds (its default).
    Slow,
    /// Inventory 2 s slow, no limit.
    SlowUnlimited,
}

/// Part A over REST.
async fn sync_rest(exe: &Path, seed: u64, case: Rest) -> anyhow::Result<Vec<RateRow>> {
    let slow = DELAY + Duration::from_secs(1);
    let (name, fault, bound, limit) = match case {
        Rest::Healthy => ("sync-rest", FaultPlan::healthy(), Duration::from_secs(1), None),
        Rest::Slow => ("sync-rest, Inventory 2 s slow", FaultPlan::delayed(DELAY), slow, None),
        Rest::SlowUnlimited => ("sync-rest, Inventory 2 s slow, no limit", FaultPlan::delayed(DELAY), slow, Some(0)),
    };
    let hosts = Hosts::real(exe, Model::SyncRest, "bench-rates", Place::default()).await?;
    let settings = sync_rest::Settings {
        max_in_flight: limit,
        ..sync_rest::Settings::new(u32::MAX / 4, Duration::from_secs(30)).over(Protocol::Rest)
    };
    let d = sync_rest::Deployment::start(hosts, &settings, &fault).await?;
    let door = d.door();
    // The limited case goes one rate past where it first sheds, to set beside the unlimited
    // one where that one gives.
    let past = usize::from(case == Rest::Slow);
    let rows = ladder(name, bound, past, |rate| {
        let (door, orders) = (door.clone(), orders(seed, Model::SyncRest, rate));
        async move {
            let arrivals = sync_rest::load::Arrivals::Open { offsets: steady(rate, orders.len()) };
            let (answers, _) = sync_rest::load::drive_shown(door, orders, arrivals, Duration::from_secs(60), None).await;
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            answers.iter().filter(|a| a.status != 201).for_each(|a| *statuses.entry(a.status).or_default() += 1);
            let refused = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(" ");
            let unanswered = if statuses.contains_key(&0) { "; 0: no answer" } else { "" };
            Ok((sync_rest::load::timed(&answers), format!(" ({refused}{unanswered})")))
        }
    })
    .await;
    d.teardown().await;
    rows
}

/// Waits until `done` holds for the orders `read` returns, at most a minute; returns the last
/// read (orders not completed by then count as not completed).
async fn settle<F, Fut>(mut read: F, done: impl Fn(&[Timed]) -> bool) -> anyhow::Result<Vec<Timed>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Timed>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let orders = read().await?;
        if done(&orders) || tokio::time::Instant::now() > deadline {
            return Ok(orders);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every accepted order has completed.
fn all_completed(orders: &[Timed]) -> bool {
    orders.iter().all(|o| o.accept.is_none() || o.completion.is_some())
}

/// Part B on the real RabbitMQ at `amqp_url`.
async fn async_rabbitmq(exe: &Path, seed: u64, amqp_url: &str) -> anyhow::Result<Vec<RateRow>> {
    let config = async_rabbitmq::Config { stock: u32::MAX / 4, ..async_rabbitmq::Config::default() };
    let place = Place { amqp_url: amqp_url.into(), ..Place::default() };
    let d = async_rabbitmq::Deployment::start(Hosts::real(exe, Model::AsyncRabbitmq, "bench-rates", place).await?, &config, 1).await?;
    let rows = ladder("async-rabbitmq", Duration::from_secs(1), 0, |rate| {
        let orders = orders(seed, Model::AsyncRabbitmq, rate);
        let d = &d;
        async move {
            let load = async_rabbitmq::observe::Load { offsets: steady(rate, orders.len()), orders };
            let placed = async_rabbitmq::observe::place_orders(d.order_client(), load, Mode::Real).await;
            Ok((settle(|| async_rabbitmq::observe::completed(d, &placed), all_completed).await?, String::new()))
        }
    })
    .await;
    d.teardown().await;
    rows
}

/// Part C on the real Kafka at `bootstrap`: one order a request, from the one in-order sender.
async fn streaming_kafka(exe: &Path, seed: u64, bootstrap: &str) -> anyhow::Result<Vec<RateRow>> {
    let total = RATES.iter().map(|r| (f64::from(*r) * STEP.as_secs_f64()) as usize).sum();
    let config = streaming_kafka::Config { seed, events: total, stock: u32::MAX / 4, ..streaming_kafka::Config::default() };
    let events = config.events();
    let place = Place { bootstrap: bootstrap.into(), ..Place::default() };
    let d = streaming_kafka::Deployment::start(Hosts::real(exe, Model::StreamingKafka, "bench-rates", place).await?, &config).await?;
    let started = async {
        d.start_inventory().await?;
        d.start_analytics(None).await
    }
    .await;
    let mut from = 0;
    let rows = match started {
        Ok(()) => {
            ladder("streaming-kafka", Duration::from_secs(1), 0, |rate| {
                let n = (f64::from(rate) * STEP.as_secs_f64()) as usize;
                let (step, d) = (&events[from..from + n], &d);
                from += n;
                async move {
                    let produced = streaming_kafka::tasks::Produced::default();
                    streaming_kafka::tasks::produce(d, step, 1, Some(rate), &produced).await?;
                    Ok((settle(|| streaming_kafka::tasks::completed(d, &produced), all_completed).await?, String::new()))
                }
            })
            .await
        }
        Err(e) => Err(e),
    };
    d.teardown().await;
    rows
}

/// Every case's ladder, on the real deployments; writes `bench_rates.csv` and its figure.
pub async fn run(
    out: &Path,
    exe: &Path,
    seed: u64,
    amqp_url: &str,
    bootstrap: &str,
    wants: impl Fn(Model) -> bool,
) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    if wants(Model::SyncRest) {
        for case in [Rest::Healthy, Rest::Slow, Rest::SlowUnlimited] {
            rows.extend(sync_rest(exe, seed, case).await?);
        }
    }
    if wants(Model::AsyncRabbitmq) {
        rows.extend(async_rabbitmq(exe, seed, amqp_url).await?);
    }
    if wants(Model::StreamingKafka) {
        rows.extend(streaming_kafka(exe, seed, bootstrap).await?);
    }
    let _writing = crate::reporting::writing(out)?;
    csv::merge(&out.join(RATES_CSV), Mode::Real, rows.clone())?;
    section(out, &rows)
}

/// The report's subsection: each case's ladder, what gave and where, and the figure.
fn section(out: &Path, rows: &[RateRow]) -> anyhow::Result<String> {
    let show = |v: Option<Fixed<1>>| v.map_or("—".to_owned(), |v| format!("{:.1}", v.0));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.case.clone(),
                r.rate.to_string(),
                format!("{} / {} / {}", r.orders, r.accepted, r.completed),
                format!("{} · {}", show(r.accept_p50_ms), show(r.accept_p99_ms)),
                format!("{} · {} · {}", show(r.completion_p50_ms), show(r.completion_p99_ms), show(r.completion_max_ms)),
                if r.gave.is_empty() { "held".to_owned() } else { r.gave.clone() },
            ]
        })
        .collect();
    let header = ["case", "orders/s", "orders / accepted / completed", "accept p50 · p99 (ms)", "completion p50 · p99 · max (ms)", ""];
    let mut text = format!(
        "\n### Latency against offered load (real)\n\n\
         `campus-sim --real-brokers bench --rates`: orders arriving at a steady rate whatever the answers, {} s at each \
         rate, doubling from {} a second on one deployment per case, each latency from the order's intended start \
         (HdrHistogram). A case stops at the first rate where something gives. File: [`{RATES_CSV}`]({RATES_CSV}).\n\n{}",
        STEP.as_secs(),
        RATES[0],
        crate::reporting::markdown_table(&header, &table)
    );
    let cases: Vec<&str> = rows.iter().fold(Vec::new(), |mut seen, r| {
        if !seen.contains(&r.case.as_str()) {
            seen.push(&r.case);
        }
        seen
    });
    let series = cases
        .iter()
        .map(|case| {
            let points =
                rows.iter().filter(|r| r.case == *case).filter_map(|r| Some((f64::from(r.rate), r.completion_p99_ms?.0))).collect();
            crate::reporting::plot::Series::line(format!("{case}: completion p99"), points)
        })
        .collect();
    let chart = crate::reporting::plot::Chart {
        title: "Completion p99 against offered load (real, steady arrivals)".into(),
        x_label: "orders arriving per second (log scale)".into(),
        y_label: "completion p99 from the intended start (ms)".into(),
        x_log: true,
        series,
        ..Default::default()
    };
    if let Some(name) = crate::reporting::plot::write(out, "bench_rates.svg".into(), &chart)? {
        text.push('\n');
        text.push_str(&crate::reporting::plot::figure(&name, "Completion p99 per offered rate, each case until something gave"));
    }
    Ok(text)
}
