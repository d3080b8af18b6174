//! `campus-sim bench`: what each model costs here, next to the floor of the same transport on
//! the same machine, measured in the same run.
//!
//! | model | ours | floor | target |
//! |---|---|---|---|
//! | sync-rest | `POST /order` (Order → Inventory → Notification, 3 HTTP hops) | the bare chain: a relay process calling two bare hops in turn, same client | p50 ≤ 1.3 × the chain; rps ≥ 0.75 × the chain |
//! | sync-rest | the same | `POST` to an axum handler that does nothing, same client | p50 ≤ 1.3 × three bare hops; rps ≥ 0.3 × bare rps |
//! | async-rabbitmq | orders/s from `POST /order` to the notification recorded, over the real RabbitMQ | raw lapin: an order's three messages through three quorum queues, each relayed with a confirm before its ack | ≥ 0.7 × the three-queue floor |
//! | async-rabbitmq | the same | raw lapin: publish with confirms to a quorum queue and consume with acks | ≥ 0.5 × raw |
//! | streaming-kafka | records/s appended by our producer; read by our consumer | Kafka's `ProducerPerformance` / `ConsumerPerformance`, same record size, acks, partitions | produce ≥ 0.8 ×, consume ≥ 1.0 × Kafka's tools |
//! | sim | simulated orders per wall second; wall time of the 60 s outage and of 10k events | — | ≤ 1 s each |
//! | sim | `explore`: schedules per wall second, each model | — | ≥ 5,000 |
//!
//! Each case is measured after a warm-up, `--repeats` times, ours and the floor alternating;
//! the table shows medians and the spread (min–max). Timings are noisy on a shared machine:
//! compare the ratios of one run, not absolute numbers across runs.

pub mod end_to_end;
pub mod kafka;
pub mod memory;
pub mod rabbit;
pub mod rates;
pub mod rest;
pub mod sim;

use std::path::Path;

use anyhow::Context;

use campus::Model;

use crate::reporting::{markdown_table, text_table, update_report};

/// What a benchmark run measures, and against which brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The seed of the orders and events the benchmarks send.
    pub seed: u64,
    /// One model's real transport only; `None`: the simulation's speed, and with real
    /// transports every model.
    pub model: Option<Model>,
    /// Measured rounds per case, after one warm-up round.
    pub repeats: usize,
    /// async-rabbitmq: unacknowledged deliveries per consumer, ours and the floor's; each is
    /// measured in turn (the curve).
    pub prefetch: Vec<u16>,
    pub amqp_url: String,
    pub bootstrap_servers: String,
    /// `--memory N`: instead of the timings, each service's memory after `N` orders.
    pub memory: Option<u64>,
    /// `--end-to-end`: Part C's services timed end to end over real Kafka at
    /// [`end_to_end::SIZES`] events, beside the perf tools' comparison.
    pub end_to_end: bool,
    /// `--rates`: instead of the timings, latency against offered load ([`rates`]).
    pub rates: bool,
}

/// A target a ratio must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(t) => ratio <= t,
            Target::AtLeast(t) => ratio >= t,
        }
    }
    fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {t}"),
            Target::AtLeast(t) => format!("≥ {t}"),
        }
    }
}

/// Repeated measurements of one quantity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    pub fn spread(&self) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if self.0.is_empty() {
            String::new()
        } else {
            format!("{}–{}", fmt(min), fmt(max))
        }
    }
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        String::new()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One line of `bench.csv`.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: &'static str,
    pub case: String,
    pub metric: &'static str,
    pub ours: Samples,
    /// The floor, already scaled as the target compares it (e.g. three bare hops).
    pub floor: Option<Samples>,
    pub target: Option<Target>,
    /// What the floor is, in words.
    pub floor_is: &'static str,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        let floor = self.floor.as_ref()?.median();
        (floor > 0.0).then(|| self.ours.median() / floor)
    }
    pub fn met(&self) -> Option<bool> {
        Some(self.target?.met(self.ratio()?))
    }
}

/// Runs the selected cases and writes `bench.csv`, the table, and the report's bench section.
pub fn run(out: &Path, real: bool, config: &Config) -> anyhow::Result<Vec<Row>> {
    let (repeats, seed) = (config.repeats, config.seed);
    let mut rows = Vec::new();
    let wants = |m: Model| config.model.is_none_or(|wanted| wanted == m);
    anyhow::ensure!(real || !config.end_to_end, "--end-to-end runs Part C's services over real Kafka: add --real-brokers");
    if config.rates {
        anyhow::ensure!(real, "--rates runs each model's real deployment: add --real-brokers");
        let exe = std::env::current_exe().context("locating the campus-sim executable")?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let text = runtime.block_on(rates::run(out, &exe, seed, &config.amqp_url, &config.bootstrap_servers, wants))?;
        let _writing = crate::reporting::writing(out)?;
        update_report(out, "bench-rates", &format!("## Benchmarks: latency against offered load\n{text}"))?;
        return Ok(Vec::new());
    }
    if let Some(n) = config.memory {
        anyhow::ensure!(real, "--memory runs the services as real processes: add --real-brokers");
        memory::run(out, n, wants, config)?;
        return Ok(Vec::new());
    }
    if config.model.is_none() {
        println!("bench sim: the simulation's speed (no broker needed)");
        rows.extend(sim::run(repeats, seed)?);
    }
    if real {
        let exe = std::env::current_exe().context("locating the campus-sim executable")?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        if wants(Model::SyncRest) {
            println!("bench sync-rest: order round trip vs a bare hop, over loopback");
            rows.extend(runtime.block_on(rest::run(&exe, repeats, seed))?);
        }
        if wants(Model::AsyncRabbitmq) {
            println!(
                "bench async-rabbitmq: orders end to end vs raw lapin, on the RabbitMQ at {}",
                campus::transport::amqp::redacted(&config.amqp_url)
            );
            for &prefetch in &config.prefetch {
                rows.extend(runtime.block_on(rabbit::run(&exe, repeats, &config.amqp_url, prefetch, seed))?);
            }
        }
        if wants(Model::StreamingKafka) {
            println!("bench streaming-kafka: our producer and consumer vs Kafka's perf tools, on {}", config.bootstrap_servers);
            rows.extend(runtime.block_on(kafka::run(repeats, &config.bootstrap_servers, seed))?);
            if config.end_to_end {
                println!(
                    "bench streaming-kafka end to end: the producer, Inventory and Analytics as processes, {}",
                    end_to_end::sizes_text()
                );
                rows.extend(runtime.block_on(end_to_end::run(&exe, repeats, &config.bootstrap_servers, seed))?);
            }
        }
    } else if let Some(model) = config.model {
        anyhow::bail!("--model {model} measures real transports: add --real-brokers (without --model, bench measures the simulation)");
    }
    write(out, &rows, repeats, real)?;
    Ok(rows)
}

const HEADER: [&str; 12] =
    ["model", "case", "metric", "ours", "floor", "ratio", "target", "met", "ours_spread", "floor_spread", "repeats", "floor_is"];

fn cells(r: &Row, repeats: usize) -> Vec<String> {
    vec![
        r.model.to_owned(),
        r.case.clone(),
        r.metric.to_owned(),
        fmt(r.ours.median()),
        r.floor.as_ref().map_or(String::new(), |f| fmt(f.median())),
        r.ratio().map_or(String::new(), |x| ratio_text(x, r.target)),
        r.target.map_or(String::new(), Target::text),
        r.met().map_or(String::new(), |m| if m { "yes".into() } else { "NO".into() }),
        r.ours.spread(),
        r.floor.as_ref().map_or(String::new(), Samples::spread),
        repeats.to_string(),
        r.floor_is.to_owned(),
    ]
}

/// A ratio with two decimals, or more where two would round it across its target: 0.2998
/// against "≥ 0.3" is shown as 0.2998, not as a 0.30 marked NO.
fn ratio_text(ratio: f64, target: Option<Target>) -> String {
    let mut decimals = 2;
    let mut text = format!("{ratio:.decimals$}");
    while let Some(t) = target {
        if decimals >= 6 || text.parse::<f64>().map_or(true, |shown| t.met(shown) == t.met(ratio)) {
            break;
        }
        decimals += 1;
        text = format!("{ratio:.decimals$}");
    }
    text
}

fn write(out: &Path, rows: &[Row], repeats: usize, real: bool) -> anyhow::Result<()> {
    let _writing = crate::reporting::writing(out)?;
    let path = out.join("bench.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(HEADER)?;
    let table: Vec<Vec<String>> = rows.iter().map(|r| cells(r, repeats)).collect();
    for row in &table {
        w.write_record(row)?;
    }
    w.flush()?;
    let short: Vec<Vec<String>> = table.iter().map(|r| r[..10].to_vec()).collect();
    println!("\n{}", text_table(&HEADER[..10], &short));
    let mut text = String::from("## Benchmarks: our code next to the transport's floor\n\n");
    text.push_str(&format!(
        "Machine: {} · {} repeats after a warm-up, medians with the spread (min–max) · {} · file: [`bench.csv`](bench.csv)\n\n",
        crate::reporting::machine(),
        repeats,
        if real { "real transports on loopback" } else { "simulation only" }
    ));
    text.push_str(&markdown_table(&HEADER[..10], &short));
    let missed: Vec<String> =
        rows.iter().filter(|r| r.met() == Some(false)).map(|r| format!("{} {} {}", r.model, r.case, r.metric)).collect();
    text.push_str(&if missed.is_empty() {
        "\nEvery target measured here was met.\n".to_owned()
    } else {
        format!("\nTargets missed: {}. See docs/benchmarks.md for what the profile showed.\n", missed.join("; "))
    });
    update_report(out, "bench", &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_just_short_of_its_target_is_not_shown_as_reaching_it() {
        assert_eq!(ratio_text(0.29977, Some(Target::AtLeast(0.3))), "0.2998");
        assert_eq!(ratio_text(1.3004, Some(Target::AtMost(1.3))), "1.3004");
    }

    #[test]
    fn a_ratio_clear_of_its_target_keeps_two_decimals() {
        assert_eq!(ratio_text(0.27, Some(Target::AtLeast(0.3))), "0.27");
        assert_eq!(ratio_text(0.2998, None), "0.30");
    }
}
