//! Part C end to end over real Kafka (`campus-sim --real-brokers bench --end-to-end`): the
//! producer, Inventory and Analytics as processes, as the experiments run them; `N` events
//! handed to the producer in batches of 500, timed from the first append until Analytics has
//! counted every outcome — each event appended, decided by Inventory in a transaction, and
//! counted. At each of [`SIZES`], in one table, so the time's growth with the events shows:
//! constant events/s is linear growth. Stock is large enough that every order is reserved
//! (the common case's work). A run that counts other than one outcome per event fails.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::{Row, Samples};
use crate::client::settled;
use campus::Model;

use crate::hosts::{Hosts, Place};
use crate::streaming_kafka;

/// The sizes timed, in events.
pub const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Units of each item: no order runs out.
const STOCK: u32 = 1_000_000_000;
/// How long one size may take to be counted.
const WITHIN: Duration = Duration::from_secs(1800);

pub fn sizes_text() -> String {
    let sizes: Vec<String> = SIZES.iter().map(usize::to_string).collect();
    format!("{} events", sizes.join(", "))
}

/// Seconds from the first append to the last outcome counted, and to the last append.
async fn once(exe: &Path, n: usize, bootstrap: &str, seed: u64, round: usize) -> anyhow::Result<(f64, f64)> {
    let config = streaming_kafka::Config { seed, events: n, stock: STOCK, ..streaming_kafka::Config::default() };
    let events = config.events();
    let place = Place { bootstrap: bootstrap.into(), ..Place::default() };
    let hosts = Hosts::real(exe, Model::StreamingKafka, &format!("e2e-{n}-{round}"), place).await?;
    let d = streaming_kafka::Deployment::start(hosts, &config).await?;
    let result = async {
        d.start_inventory().await?;
        d.start_analytics(None).await?;
        let started = Instant::now();
        for batch in events.chunks(500) {
            d.produce(batch).await?;
        }
        let produced = started.elapsed().as_secs_f64();
        let what = format!("streaming-kafka end to end: {n} outcomes counted");
        settled(&what, WITHIN, || async { Ok(d.metrics().await.map_or(0, |m| m.outcomes_seen) >= n) }).await?;
        let counted = started.elapsed().as_secs_f64();
        let m = d.metrics().await?;
        anyhow::ensure!(
            (m.orders_seen, m.outcomes_seen) == (n, n),
            "{n} events, but Analytics counted {} orders and {} outcomes",
            m.orders_seen,
            m.outcomes_seen
        );
        Ok((counted, produced))
    }
    .await;
    d.teardown().await;
    result
}

pub async fn run(exe: &Path, repeats: usize, bootstrap: &str, seed: u64) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for n in SIZES {
        let (mut wall, mut rate, mut produced) = (Samples::default(), Samples::default(), Samples::default());
        for round in 0..repeats {
            let (counted, appended) = once(exe, n, bootstrap, seed, round).await?;
            crate::progress::step(&format!(
                "streaming-kafka end to end: {n} events counted in {counted:.1} s (all appended after {appended:.1} s)"
            ));
            wall.0.push(counted);
            rate.0.push(n as f64 / counted);
            produced.0.push(appended);
        }
        let case = format!("end to end, {n} events: appended → decided → counted");
        let row =
            |metric, ours| Row { model: "streaming-kafka", case: case.clone(), metric, ours, floor: None, target: None, floor_is: "" };
        rows.extend([row("wall_s", wall), row("appended_s", produced), row("events_per_s", rate)]);
    }
    Ok(rows)
}
