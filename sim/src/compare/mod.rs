//! The three models side by side: `report.md`'s first section and its figure
//! (`compare_outage_<mode>.svg`), for each mode whose rows are in `out/`. The same workflow and
//! the same fault — Inventory away — across Parts A, B and C, every number derived from the
//! parts' own CSV rows, so the section agrees with them whichever part ran last:
//!
//! - accept and completion latency under the same open loop (20 orders a second arriving
//!   regardless), p50 and p99 from each order's intended start, read from the per-order load
//!   rows ([`load`]): Part A's `open-loop` (the answer is the outcome), Parts B's and C's
//!   `outage` (accept over the whole run; completion in normal operation over the orders meant
//!   to arrive up to 1 s before Inventory went away);
//! - Inventory away: refused (A's `failure-down`), or accepted and decided later (B's and C's
//!   `outage`: how many, how long the backlog took to drain, the longest wait, read off the
//!   cumulative curves of accepted and decided orders at the samples' 250 ms grain);
//! - duplicates; throughput under each part's graded load (A: 10 clients in a closed loop; B and
//!   C: 20 orders a second arriving regardless, and the rate of the drain after the outage, a
//!   lower bound at the samples' grain); the delivery guarantee each design gives, with its
//!   evidence; and "choose it when …", each cell quoting the rows above it.

mod load;

use std::path::Path;

use crate::reporting::backlog::{Backlog, Point};
use crate::reporting::csv::{self, Row};
use crate::reporting::plot::{window_span, write, Chart, Series};
use crate::reporting::{markdown_table, update_report};
use crate::{async_rabbitmq, streaming_kafka, sync_rest, Mode};
use load::Loads;

/// The section's key in `report.md` (it comes first).
pub const KEY: &str = "compare";

/// Rows of `file` in `out/` measured in `mode`; none if the file is missing or was written by
/// a version with other columns (its part has not run since).
fn rows<R: Row>(out: &Path, file: &str, mode: Mode) -> Vec<R> {
    let path = out.join(file);
    if !path.exists() {
        return Vec::new();
    }
    csv::read::<R>(&path).map(|rows| rows.into_iter().filter(|r| r.mode() == mode).collect()).unwrap_or_default()
}

/// Part B's outage samples: Order's accepted, reserved and failed.
fn queue_points(out: &Path, mode: Mode) -> Vec<Point> {
    rows::<async_rabbitmq::rows::BacklogRow>(out, async_rabbitmq::rows::BACKLOG_CSV, mode)
        .iter()
        .map(|r| Point { t_s: r.t_s.0, up: r.inventory_up == 1, accepted: r.accepted, decided: r.reserved + r.failed })
        .collect()
}

/// Part C's outage samples: events appended, outcomes Analytics counted.
fn log_points(out: &Path, mode: Mode) -> Vec<Point> {
    rows::<streaming_kafka::rows::OutageRow>(out, streaming_kafka::rows::OUTAGE_CSV, mode)
        .iter()
        .filter_map(|r| Some(Point { t_s: r.t_s.0, up: r.inventory_up == 1, accepted: r.produced, decided: r.decided? }))
        .collect()
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn secs(v: f64) -> String {
    if v < 1.0 {
        ms(v * 1e3)
    } else {
        format!("{v:.1} s")
    }
}

/// What the table and the figure of one mode both read, read once: Part A's summary rows and
/// the outage samples of Parts B and C.
struct Read {
    /// Part A's rows over REST, and over gRPC.
    rest: Vec<sync_rest::rows::SummaryRow<3>>,
    grpc: Vec<sync_rest::rows::SummaryRow<3>>,
    queue_points: Vec<Point>,
    log_points: Vec<Point>,
}

impl Read {
    fn of(out: &Path, mode: Mode) -> Read {
        let (rest, grpc) = rows::<sync_rest::rows::SummaryRow<3>>(out, sync_rest::rows::SUMMARY_CSV, mode)
            .into_iter()
            .partition(|r| r.protocol == campus::Protocol::Rest);
        Read { rest, grpc, queue_points: queue_points(out, mode), log_points: log_points(out, mode) }
    }
}

/// The comparison table of one mode, or `None` if no part has rows of it.
fn table(out: &Path, mode: Mode, read: &Read, loads: &Loads) -> Option<String> {
    let rest = &read.rest;
    let queue = rows::<async_rabbitmq::rows::Summary>(out, async_rabbitmq::rows::SUMMARY_CSV, mode);
    let log = rows::<streaming_kafka::rows::SummaryRow>(out, streaming_kafka::rows::SUMMARY_CSV, mode);
    if rest.is_empty() && queue.is_empty() && log.is_empty() {
        return None;
    }
    let not_run = |part: &str| format!("— (run `campus-sim {part}`)");
    let baseline = rest.iter().find(|r| r.experiment == "baseline");
    let down = rest.iter().find(|r| r.experiment == "failure-down");
    let outage_b = queue.iter().find(|r| r.experiment == "outage");
    let idempotency = queue.iter().find(|r| r.experiment == "idempotency");
    let outage_c = log.iter().find(|r| r.experiment == "outage");
    let left_behind = rows::<sync_rest::aftermath::LeftBehindRow>(out, sync_rest::aftermath::LEFT_BEHIND_CSV, mode);
    let retried_after_reserve =
        left_behind.iter().find(|r| r.experiment == "timeout-after-reserve" && r.protocol == campus::Protocol::Rest);
    let replay = rows::<streaming_kafka::rows::ReplayRow>(out, streaming_kafka::rows::REPLAY_CSV, mode);
    let replayed_equal = replay.iter().filter(|r| r.equal).count();
    let (backlog_b, backlog_c) = (Backlog::of(&read.queue_points), Backlog::of(&read.log_points));
    let a = |f: &dyn Fn(&sync_rest::rows::SummaryRow<3>) -> String| baseline.map_or_else(|| not_run("sync-rest"), f);

    let mut rows: Vec<Vec<String>> = Vec::new();
    // Accept and completion from each order's intended start, the same open loop for all
    // three: Part A's `open-loop`, and the orders of B's and C's `outage` meant to arrive up to
    // 1 s before Inventory went down (their whole run for accept: Inventory's absence does not
    // touch it).
    let two =
        |p: Option<crate::load::Percentiles>| p.map(|p| format!("{} · {}", ms(p.p50.as_secs_f64() * 1e3), ms(p.p99.as_secs_f64() * 1e3)));
    let open_a = loads.percentiles(campus::Model::SyncRest, mode, "open-loop", "rest", f64::INFINITY);
    let before = |b: Option<Backlog>| b.map_or(f64::INFINITY, |b| (b.down_s - 1.0) * 1e3);
    let (all_b, all_c) = (
        loads.percentiles(campus::Model::AsyncRabbitmq, mode, "outage", "amqp", f64::INFINITY),
        loads.percentiles(campus::Model::StreamingKafka, mode, "outage", "kafka", f64::INFINITY),
    );
    let (lead_b, lead_c) = (
        loads.percentiles(campus::Model::AsyncRabbitmq, mode, "outage", "amqp", before(backlog_b)),
        loads.percentiles(campus::Model::StreamingKafka, mode, "outage", "kafka", before(backlog_c)),
    );
    let cell = |p: Option<String>, part: &str, what: &str| p.map_or_else(|| not_run(part), |p| format!("{p}{what}"));
    rows.push(vec![
        "accept latency, 20 orders/s arriving regardless (p50 · p99 from the intended start)".into(),
        cell(open_a.and_then(|p| two(p.0)), "sync-rest", " — the answer is the outcome"),
        cell(all_b.and_then(|p| two(p.0)), "async-rabbitmq", " — 202, stored and queued"),
        cell(all_c.and_then(|p| two(p.0)), "streaming-kafka", " — appended to the log"),
    ]);
    rows.push(vec![
        "completion latency, same load, normal operation (p50 · p99)".into(),
        cell(open_a.and_then(|p| two(p.1)), "sync-rest", " (in the answer)"),
        cell(lead_b.and_then(|p| two(p.1)), "async-rabbitmq", " — to Notification's confirmation"),
        cell(lead_c.and_then(|p| two(p.1)), "streaming-kafka", " — to Analytics counting the outcome"),
    ]);
    let away = |b: Option<Backlog>, drain: Option<f64>, refused: Option<usize>, part: &str| {
        b.map_or_else(
            || not_run(part),
            |b| {
                format!(
                    "accepted, decided later: {} orders taken in {:.0} s, {} refused; backlog gone within {} of its return (samples every 250 ms)",
                    b.accepted_while_down,
                    b.up_s - b.down_s,
                    refused.map_or("?".to_owned(), |r| r.to_string()),
                    drain.map_or("—".to_owned(), secs)
                )
            },
        )
    };
    rows.push(vec![
        "Inventory away".into(),
        down.map_or_else(
            || not_run("sync-rest"),
            |r| format!("refused: {} of {} orders failed at once ({}), p99 {}", r.errors, r.requests, r.statuses, ms(r.p99_ms.0)),
        ),
        away(backlog_b, outage_b.and_then(|r| r.drain_s).map(|d| d.0), outage_b.map(|r| r.refused), "async-rabbitmq"),
        away(backlog_c, outage_c.and_then(|r| r.catch_up_s).map(|d| d.0), outage_c.map(|_| 0), "streaming-kafka"),
    ]);
    let wait = |b: Option<Backlog>, part: &str| {
        b.map_or_else(
            || not_run(part),
            |b| {
                format!(
                    "{} orders waiting at most, {:.2} s after the outage began ({} already waiting then + {} taken since; \
                     the {} taken while away count up to the sample of its return); the longest waited ≈ {:.0} s",
                    b.peak_waiting,
                    b.peak_at_s - b.down_s,
                    b.waiting_at_down,
                    b.peak_waiting.saturating_sub(b.waiting_at_down),
                    b.accepted_while_down,
                    b.longest_wait_s
                )
            },
        )
    };
    rows.push(vec![
        "what waiting cost".into(),
        down.map_or_else(|| not_run("sync-rest"), |_| "nothing waits: every order is refused (503) and must be placed again".into()),
        wait(backlog_b, "async-rabbitmq"),
        wait(backlog_c, "streaming-kafka"),
    ]);
    let decided_twice: usize = log.iter().filter_map(|r| r.duplicates).sum();
    let counted: Vec<&str> = log.iter().filter(|r| r.duplicates.is_some()).map(|r| r.experiment.as_str()).collect();
    let runs_counted = counted.len();
    rows.push(vec![
        "duplicates".into(),
        retried_after_reserve.map_or_else(
            || not_run("sync-rest"),
            |r| {
                format!(
                    "nothing redelivers; a client's retry is: {} orders sent again under their key after a 504 \
                     (`timeout-after-reserve`), {} units taken twice — without the key a retry is a new order",
                    r.retried, r.units_taken_by_retries
                )
            },
        ),
        idempotency.map_or_else(
            || not_run("async-rabbitmq"),
            |r| {
                format!(
                    "{} `OrderPlaced` sent twice: {} stock taken twice, {} answered from the store",
                    r.duplicates_injected, r.double_reservations, r.repeats_absorbed
                )
            },
        ),
        if runs_counted == 0 {
            not_run("streaming-kafka")
        } else {
            format!(
                "{decided_twice} orders decided twice over {runs_counted} runs ({}: broker and Inventory killed, records read twice)",
                counted.join(", ")
            )
        },
    ]);
    let offered = |b: Option<Backlog>, drain: Option<f64>, part: &str| {
        b.and_then(|b| Some((b.decided_per_s_before?, b.peak_waiting))).map_or_else(
            || not_run(part),
            |(before, peak)| {
                let drained = drain.filter(|s| *s > 0.0).map_or_else(String::new, |s| {
                    format!(
                        "; after Inventory's return its backlog of {peak} drained within {} (≥ {:.0} orders/s, one Inventory)",
                        secs(s),
                        peak as f64 / s
                    )
                });
                format!("{before:.1} orders/s decided before the outage: all that was offered (open loop, 20 a second){drained}")
            },
        )
    };
    rows.push(vec![
        match mode {
            Mode::Sim => "throughput (virtual time)".into(),
            Mode::Real => "throughput on this machine".into(),
        },
        a(&|r| {
            let open = rest.iter().find(|o| o.experiment == "open-loop").map_or_else(String::new, |o| {
                format!("{:.1} orders/s decided in `open-loop`: all that was offered (open loop, 20 a second); ", o.throughput_rps.0)
            });
            match mode {
                Mode::Sim => format!(
                    "{open}{:.0} orders/s in `baseline`: 10 clients in a closed loop (each waits for its answer), so 10 ÷ the \
                     modelled {} an order takes — the model's arithmetic, not a capacity",
                    r.throughput_rps.0,
                    ms(r.p50_ms.0)
                ),
                Mode::Real => {
                    format!(
                        "{open}{:.0} orders/s in `baseline`: 10 clients in a closed loop (each waits for its answer)",
                        r.throughput_rps.0
                    )
                }
            }
        }),
        offered(backlog_b, outage_b.and_then(|r| r.drain_s).map(|d| d.0), "async-rabbitmq"),
        offered(backlog_c, outage_c.and_then(|r| r.catch_up_s).map(|d| d.0), "streaming-kafka"),
    ]);
    let same: Vec<&str> = read
        .grpc
        .iter()
        .filter(|g| rest.iter().any(|r| r.experiment == g.experiment && r.statuses == g.statuses))
        .map(|g| g.experiment.as_str())
        .collect();
    let only_a = "— (Part A only: here orders travel as messages, not calls)".to_owned();
    rows.push(vec![
        "Part A over gRPC instead of REST".into(),
        match (read.grpc.iter().find(|r| r.experiment == "baseline"), baseline) {
            (Some(g), Some(r)) => format!(
                "the same answers in {} of {} experiments; baseline p50 {} (REST {}), {:.1} bytes per order request (REST {:.1}): the wire changes, the coupling does not",
                same.len(),
                read.grpc.len(),
                ms(g.p50_ms.0),
                ms(r.p50_ms.0),
                g.request_bytes.0,
                r.request_bytes.0
            ),
            _ => "— (run `campus-sim sync-rest --protocol rest,grpc`)".into(),
        },
        only_a.clone(),
        only_a,
    ]);
    rows.push(vec![
        "choose it when … (from the rows above)".into(),
        down.map_or_else(
            || not_run("sync-rest"),
            |r| {
                format!(
                    "the client needs the outcome in the answer and Inventory is up whenever Order is: it answers in {}, \
                     but refused {} of {} orders while Inventory was away",
                    a(&|b| ms(b.p50_ms.0)),
                    r.errors,
                    r.requests
                )
            },
        ),
        backlog_b.map_or_else(
            || not_run("async-rabbitmq"),
            |b| {
                format!(
                    "orders must be taken while Inventory is away and each is handled once, then gone: {} taken while it \
                     was away, all decided after its return",
                    b.accepted_while_down
                )
            },
        ),
        backlog_c.map_or_else(
            || not_run("streaming-kafka"),
            |b| {
                let replayed = if replay.is_empty() {
                    String::new()
                } else {
                    format!("; a replay recomputed {replayed_equal} of {} metrics equal", replay.len())
                };
                format!(
                    "several readers need the same events and their history: {} taken while Inventory was away{replayed}",
                    b.accepted_while_down
                )
            },
        ),
    ]);
    rows.push(vec![
        "delivery guarantee".into(),
        retried_after_reserve.map_or_else(
            || "at most once per request: a timeout (504) leaves the outcome unknown to the student".to_owned(),
            |r| {
                format!(
                    "at most once per request: a 504 leaves the outcome unknown to the student ({} answers of 504 \
                     left {} units taken in `timeout-after-reserve`)",
                    r.answered_504, r.units_left_behind
                )
            },
        ),
        "at least once, made once by Inventory's idempotent store (the order id)".into(),
        "exactly once within Kafka: outcomes and offsets in one transaction, read `read_committed`".into(),
    ]);
    Some(markdown_table(&["", "A — REST (sync)", "B — RabbitMQ (async)", "C — Kafka (stream)"], &rows))
}

/// Orders waiting for their outcome around Inventory's outage, B and C on one time axis (the
/// outage's start at 0). Part A has no line: it keeps no order waiting, it refuses each (the
/// caption says so, from its rows), and a line of zeros would be drawn, not measured.
fn figure(out: &Path, mode: Mode, read: &Read) -> anyhow::Result<Option<String>> {
    let shifted = |points: &[Point]| -> Option<(Vec<(f64, f64)>, f64, f64)> {
        let b = Backlog::of(points)?;
        let line = points.iter().map(|p| (p.t_s - b.down_s, p.accepted.saturating_sub(p.decided) as f64)).collect();
        Some((line, 0.0, b.up_s - b.down_s))
    };
    let mut series = Vec::new();
    let mut window = None;
    if let Some((line, from, to)) = shifted(&read.queue_points) {
        series.push(Series::line("B: accepted, waiting in the queue", line));
        window = Some((from, to));
    }
    if let Some((line, from, to)) = shifted(&read.log_points) {
        series.push(Series { dashed: true, ..Series::line("C: appended, waiting in the log", line) });
        window = window.or(Some((from, to)));
    }
    let Some((from, to)) = window else { return Ok(None) };
    let chart = Chart {
        title: format!("Inventory away ({mode}): orders accepted and still without an outcome"),
        x_label: "seconds since Inventory went down".into(),
        y_label: "orders waiting for their outcome".into(),
        x_log: false,
        series,
        shaded: window_span(Some((from, to)), [], "Inventory down"),
        y_max: None,
    };
    write(out, format!("compare_outage_{mode}.svg"), &chart)
}

/// Accept and completion of every model under one open loop: the table, the figure, how to
/// read them.
fn load_section(out: &Path, mode: Mode, read: &Read, loads: &Loads) -> anyhow::Result<String> {
    let Some(table) = loads.table(mode) else { return Ok(String::new()) };
    let mut text = format!(
        "\n#### Accept and completion under one open-loop load ({mode})\n\n\
         Orders arriving at 20 a second whatever the answers (`--arrivals` steady or poisson), each latency measured \
         from the order's *intended* start — so a sender that falls behind is charged for the wait, not hidden by it \
         (no coordinated omission). **Accept**: the answer to the order (Part A: 201 with the outcome; B: 202; C: the \
         producer's 202 once the log has it). **Completion**: the order's outcome recorded at the workflow's end \
         (A: the same answer; B: Notification's confirmation; C: Analytics counting the outcome), read from the \
         service's own record on the same clock{}. Percentiles from an HdrHistogram (3 significant digits), from the \
         rows of `sync_rest_load.csv`, `async_rabbitmq_load.csv` and `streaming_kafka_load.csv`.\n\n{table}",
        match mode {
            Mode::Sim => " (virtual time, to the millisecond)",
            Mode::Real => " (the machine's wall clock, to the millisecond; accept to the microsecond)",
        }
    );
    let window = Backlog::of(&read.queue_points).or_else(|| Backlog::of(&read.log_points)).map(|b| (b.down_s, b.up_s));
    if let Some(name) = loads.figure(out, mode, window)? {
        let caption = format!(
            "p99 of accept and completion per {} s of arrivals ({mode}): A with Inventory 2 s slow, B and C with Inventory away (shaded)",
            load::WINDOW.as_secs()
        );
        text.push('\n');
        text.push_str(&crate::reporting::plot::figure(&name, &caption));
    }
    text.push_str(
        "\n**Reading accept and completion.** Under the same arrivals, the synchronous chain's accept *is* its completion: when Inventory \
         is slow every student waits for it, and Order holds rate × delay requests open. The queue and the log keep \
         accept flat through Inventory's absence — a few milliseconds — while completion grows with the outage: an order \
         that arrives as Inventory goes away completes only once it is back, about a minute later.\n",
    );
    Ok(text)
}

/// Rewrites the section from the rows in `out/` (each part calls it after writing its own).
pub fn update(out: &Path) -> anyhow::Result<()> {
    let mut text = String::from(
        "## The three models side by side\n\n\
         One workflow — a student orders, Inventory reserves, Notification confirms — built three ways, and the same \
         fault for each: Inventory away (Part A: not running through `failure-down`; Parts B and C: killed for \
         a minute of orders arriving at 20 a second, `outage`). Every cell comes from the CSV rows of the part's last \
         run in that mode; the part's own section below has the detail and the checks.\n",
    );
    let mut any = false;
    let loads = Loads::read(out);
    for mode in [Mode::Sim, Mode::Real] {
        let read = Read::of(out, mode);
        let Some(table) = table(out, mode, &read, &loads) else { continue };
        any = true;
        text.push_str(&format!("\n### {mode}\n\n"));
        text.push_str(match mode {
            Mode::Sim => "Simulation, virtual time: latencies are modelled (1–3 ms a hop), counts exact.\n\n",
            Mode::Real => "Real processes, sockets and brokers on this machine.\n\n",
        });
        text.push_str(&table);
        if let Some(name) = figure(out, mode, &read)? {
            let refused = read.rest.iter().find(|r| r.experiment == "failure-down").map_or_else(String::new, |r| {
                format!(
                    "; Part A has no line — it kept no order waiting: it refused {} of {} while Inventory was away",
                    r.errors, r.requests
                )
            });
            let caption =
                format!("Orders accepted and still without an outcome while Inventory is away ({mode}, its window shaded{refused})");
            text.push('\n');
            text.push_str(&crate::reporting::plot::figure(&name, &caption));
        }
        text.push_str(&load_section(out, mode, &read, &loads)?);
    }
    if !any {
        return Ok(());
    }
    text.push_str(
        "\n**Reading it.** The synchronous chain answers with the outcome, fast, and only while every service is up: \
         without Inventory it can only refuse. The queue and the log decouple accepting from deciding: the order is \
         taken in a few milliseconds, waits while Inventory is away, and is decided once it is back (the drain \
         times above). What they cost is the answer itself — \"accepted\", with the outcome later — and the machinery \
         that makes \"later\" exactly once: an idempotent store behind the queue, transactions in the log.\n",
    );
    update_report(out, KEY, &text)
}
