//! streaming-kafka: our producer (`KafkaLog::append`, idempotent, acks=all, batches of 500 as in
//! the experiments) and our consumer (`KafkaLog::poll` in batches of 500, committed as Analytics
//! commits: when caught up, else at most every 100 ms)
//! against Kafka's own `org.apache.kafka.tools.ProducerPerformance` and `ConsumerPerformance`,
//! run with the JDK from the jars `scripts/brokers.sh` fetched: the same record size (an encoded
//! `OrderPlaced`), `acks=all` with idempotence, the same 3 partitions.
//!
//! Two differences are kept on purpose and stated in the table: our records are keyed by order
//! id (murmur2 partitioning, as the workflow needs) while ProducerPerformance sends unkeyed
//! records; and ConsumerPerformance's `fetch.nMsg.sec` excludes its group join, so ours is timed
//! from its first record to its last too.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use campus::domain::{Envelope, Event, Order, OrderId, OrderPlaced};
use campus::streaming_kafka::consumers::analytics_commits;
use campus::transport::kafka::KafkaLog;
use campus::transport::log::{EventLog, Outgoing, Position, Topic};
use campus::Model;
use tokio::time::Instant;

use super::{Row, Samples, Target};
use crate::simulator::world::{self, Scope, Stream};
use crate::workload;

/// Records per measured round.
const RECORDS: usize = 100_000;
const BATCH: usize = 500;

/// The Kafka jars `scripts/brokers.sh` fetched (same variables, same defaults).
fn kafka_libs() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("CAMPUS_BROKER_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/campus-sim")))
        .context("neither CAMPUS_BROKER_HOME nor HOME is set")?;
    let version = std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "3.9.1".into());
    let libs = home.join(format!("kafka-{version}")).join("libs");
    if !libs.join(format!("kafka-tools-{version}.jar")).exists() {
        anyhow::bail!("Kafka's tools are not in {}: run `scripts/brokers.sh up kafka` first", libs.display());
    }
    Ok(libs)
}

/// Runs a Kafka tool class and returns its standard output.
async fn kafka_tool(libs: &std::path::Path, class: &str, args: &[String]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("java")
        .args(["-Xms256m", "-Xmx1g", "-cp"])
        .arg(format!("{}/*", libs.display()))
        .arg(class)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {class} (is java 17 on PATH?)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        anyhow::bail!("{class} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

/// `… records sent, 123456.7 records/sec (…)` → 123456.7
fn producer_rate(stdout: &str) -> anyhow::Result<f64> {
    let line = stdout.lines().rev().find(|l| l.contains("records/sec")).context("ProducerPerformance printed no summary")?;
    let before = line.split(" records/sec").next().unwrap_or_default();
    before.rsplit([',', ' ']).next().unwrap_or_default().trim().parse().with_context(|| format!("unexpected summary: {line}"))
}

/// ConsumerPerformance's CSV line → `fetch.nMsg.sec`.
fn consumer_rate(stdout: &str) -> anyhow::Result<f64> {
    let mut lines = stdout.lines().filter(|l| l.contains(','));
    let header: Vec<&str> = lines.next().context("ConsumerPerformance printed nothing")?.split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next().context("ConsumerPerformance printed no result")?.split(',').map(str::trim).collect();
    let column = header.iter().position(|h| *h == "fetch.nMsg.sec").context("no fetch.nMsg.sec column")?;
    values.get(column).context("short result line")?.parse().context("fetch.nMsg.sec is not a number")
}

fn records(n: usize, seed: u64) -> Vec<(String, Bytes)> {
    let orders = workload::orders(&mut world::stream(seed, Model::StreamingKafka, &Scope::Bench { round: 0 }, Stream::Workload), n);
    orders
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let id = OrderId::parse(format!("o-bench-{i:06}")).expect("valid");
            let event = Event::OrderPlaced(OrderPlaced { order: Order::new(id.clone(), request), placed_at_ms: i as u64 });
            (id.to_string(), Bytes::from(Envelope::new(event).encode()))
        })
        .collect()
}

async fn our_producer(log: &KafkaLog, records: &[(String, Bytes)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in records.chunks(BATCH) {
        log.append(chunk.iter().map(|(key, value)| Outgoing::new(Topic::OrderEvents, key.clone(), value.clone())).collect()).await?;
    }
    Ok(records.len() as f64 / started.elapsed().as_secs_f64())
}

/// Reads `n` records as Analytics does: batches of [`BATCH`], a synchronous commit when
/// [`analytics_commits`] says so, and one after the last record (timed too).
async fn our_consumer(log: &KafkaLog, group: &str, n: usize) -> anyhow::Result<f64> {
    let me = log.join(group, &[Topic::OrderEvents]).await?;
    let (mut seen, mut first) = (0usize, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut next = std::collections::BTreeMap::new();
    let mut last_commit = Instant::now();
    let commit = |next: &std::collections::BTreeMap<u32, u64>| {
        log.commit(me, next.iter().map(|(&partition, &next)| Position { topic: Topic::OrderEvents, partition, next }).collect())
    };
    while seen < n {
        let batch = log.poll(me, BATCH, Duration::from_millis(500)).await?;
        if batch.is_empty() {
            if Instant::now() > deadline {
                anyhow::bail!("our consumer read {seen} of {n} records in 120 s");
            }
            continue;
        }
        first.get_or_insert_with(Instant::now);
        seen += batch.len();
        for r in &batch {
            let e = next.entry(r.partition).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        if analytics_commits(batch.len(), BATCH, last_commit.elapsed()) {
            commit(&next).await?;
            last_commit = Instant::now();
        }
    }
    commit(&next).await?;
    let rate = seen as f64 / first.expect("read at least one batch").elapsed().as_secs_f64();
    log.leave(me).await?;
    Ok(rate)
}

pub async fn run(repeats: usize, bootstrap: &str, seed: u64) -> anyhow::Result<Vec<Row>> {
    let libs = kafka_libs()?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let ours_ns = format!("campus-sim.bench.ours.{stamp}");
    let floor_ns = format!("campus-sim.bench.floor.{stamp}");
    let ours = KafkaLog::connect(bootstrap, &ours_ns).await?;
    let floor = KafkaLog::connect(bootstrap, &floor_ns).await?;
    let floor_topic = Topic::OrderEvents.name(&floor_ns);
    let data = records(RECORDS, seed);
    let size = data.iter().map(|(_, v)| v.len()).sum::<usize>() / data.len();

    let producer_args = |n: usize| -> Vec<String> {
        let mut a: Vec<String> =
            ["--topic", &floor_topic, "--num-records", &n.to_string(), "--record-size", &size.to_string(), "--throughput", "-1"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.extend([
            "--producer-props".into(),
            format!("bootstrap.servers={bootstrap}"),
            "acks=all".into(),
            "enable.idempotence=true".into(),
        ]);
        a
    };
    let consumer_args = |n: usize, group: String| -> Vec<String> {
        ["--bootstrap-server", bootstrap, "--topic", &floor_topic, "--messages", &n.to_string(), "--group", &group, "--timeout", "60000"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let result = async {
        // Warm-up: the JVM, the topics' first segments, our producer's id.
        our_producer(&ours, &data[..RECORDS / 10]).await?;
        kafka_tool(&libs, "org.apache.kafka.tools.ProducerPerformance", &producer_args(RECORDS / 10)).await?;
        let (mut ours_produce, mut floor_produce, mut ours_consume, mut floor_consume) =
            (Samples::default(), Samples::default(), Samples::default(), Samples::default());
        for i in 0..repeats {
            ours_produce.0.push(our_producer(&ours, &data).await?);
            floor_produce
                .0
                .push(producer_rate(&kafka_tool(&libs, "org.apache.kafka.tools.ProducerPerformance", &producer_args(RECORDS)).await?)?);
            ours_consume.0.push(our_consumer(&ours, &format!("bench-ours-{i}"), RECORDS).await?);
            floor_consume.0.push(consumer_rate(
                &kafka_tool(
                    &libs,
                    "org.apache.kafka.tools.ConsumerPerformance",
                    &consumer_args(RECORDS, format!("bench-floor-{stamp}-{i}")),
                )
                .await?,
            )?);
        }
        crate::progress::step(&format!(
            "streaming-kafka: produce {:.0} vs {:.0} records/s, consume {:.0} vs {:.0} records/s",
            ours_produce.median(),
            floor_produce.median(),
            ours_consume.median(),
            floor_consume.median()
        ));
        Ok::<_, anyhow::Error>(vec![
            Row {
                model: "streaming-kafka",
                case: format!("produce {RECORDS} records of {size} B, acks=all, idempotent, 3 partitions"),
                metric: "records_per_s",
                ours: ours_produce,
                floor: Some(floor_produce),
                target: Some(Target::AtLeast(0.8)),
                floor_is: "ProducerPerformance (unkeyed records)",
            },
            Row {
                model: "streaming-kafka",
                case: format!("consume {RECORDS} records in batches of {BATCH}, committed as Analytics does"),
                metric: "records_per_s",
                ours: ours_consume,
                floor: Some(floor_consume),
                target: Some(Target::AtLeast(1.0)),
                floor_is: "ConsumerPerformance fetch.nMsg.sec",
            },
        ])
    }
    .await;
    let _ = ours.delete_topics().await;
    let _ = floor.delete_topics().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_summaries_are_read() {
        let p = "50000 records sent, 12345.6 records/sec (2.94 MB/sec), 1.2 ms avg latency, 300.0 ms max latency.\n100000 records sent, 95238.1 records/sec (18.17 MB/sec), 123.45 ms avg latency, 400.00 ms max latency, 100 ms 50th.";
        assert_eq!(producer_rate(p).unwrap(), 95238.1);
        let c = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n2026-11-24 11:00:00:000, 2026-11-24 11:00:02:000, 19.0, 9.5, 100000, 50000.0, 3000, 1000, 19.0, 100000.0";
        assert_eq!(consumer_rate(c).unwrap(), 100000.0);
    }
}
