//! Part A's outputs: `sync_rest_requests.csv`, `sync_rest_summary.csv`, the latency table and
//! the report section, whose reasoning is computed from the measured numbers.

use std::path::Path;
use std::time::Duration;

use super::aftermath::{LeftBehindRow, LEFT_BEHIND_CSV};
use super::rows::{Summary, SummaryRow, REQUESTS_CSV, SUMMARY_CSV};
use super::Config;
use crate::reporting::csv::{self};
use crate::reporting::{markdown_table, text_table, update_report};
use crate::simulator::net::LinkModel;
use crate::violation::Violation;
use crate::Mode;

/// The latency table as printed on the terminal (and in the report): one decimal.
fn shown(summaries: &[Summary]) -> (Vec<String>, Vec<Vec<String>>) {
    (csv::header::<SummaryRow<1>>(), summaries.iter().map(|s| csv::cells(&s.row::<1>())).collect())
}

pub fn table(summaries: &[Summary]) -> String {
    let (header, rows) = shown(summaries);
    text_table(&header, &rows)
}

/// Writes the `sync-rest/<mode>` section of `report.md`.
pub fn write_report(
    out: &Path,
    config: &Config,
    mode: Mode,
    summaries: &[Summary],
    left_behind: &[LeftBehindRow],
    violations: &[Violation],
) -> anyhow::Result<()> {
    let mut text = format!("## Part A — synchronous REST and gRPC ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · {} clients in a closed loop ({} orders a second arriving regardless, {}, in `open-loop` and `open-delay`) · Inventory delay {} ms · Order's timeout {} ms \
         (`timeout`, `timeout-after-reserve`) or {} ms (the others) · stock {} per item · files: \
         [`{REQUESTS_CSV}`]({REQUESTS_CSV}), [`{SUMMARY_CSV}`]({SUMMARY_CSV}), [`{LEFT_BEHIND_CSV}`]({LEFT_BEHIND_CSV}), [`{load}`]({load})\n\n",
        config.seed,
        config.concurrency,
        config.rate,
        config.arrivals.name(),
        config.delay.as_millis(),
        config.timeout.as_millis(),
        config.patient_timeout.as_millis(),
        config.stock,
        load = crate::load::rows::file(campus::Model::SyncRest),
    ));
    match mode {
        Mode::Sim => {
            let link = LinkModel::default();
            text.push_str(&format!(
                "Virtual time: each one-way network hop takes {}–{} ms (a model of a campus network hop, \
                 drawn from the seed); delays and timeouts are exact. Latencies are therefore modelled, \
                 their differences between experiments are the point.\n\n",
                link.min.as_millis(),
                link.max.as_millis()
            ));
        }
        Mode::Real => text.push_str(
            "Real time: three `campus-sim serve` processes per experiment and protocol on loopback ports, the \
             load generator in a fourth; over REST pooled keep-alive HTTP/1.1 clients, over gRPC one HTTP/2 \
             connection per callee multiplexing every call. Latencies are wall-clock and vary from run to run; \
             compare experiments within one run.\n\n",
        ),
    }
    let (header, rows) = shown(summaries);
    text.push_str(&markdown_table(&header, &rows));
    // The reasoning is the first protocol's (REST's when it ran); the side-by-side section
    // says how the other differs.
    let first = summaries.first().map(|s| s.protocol).unwrap_or_default();
    let of_first: Vec<Summary> = summaries.iter().filter(|s| s.protocol == first).cloned().collect();
    text.push_str(&format!("\n### What the numbers say ({first})\n\n"));
    for finding in findings(config, &of_first) {
        text.push_str(&format!("- {finding}\n"));
    }
    text.push_str(&super::protocols::side_by_side(config, mode, summaries, left_behind));
    text.push_str(&left_behind_section(left_behind));
    text.push_str(&super::figures::draw(out, mode)?);
    text.push_str("\n### Checks\n\n");
    if violations.is_empty() {
        text.push_str(
            "All passed: every request answered with its experiment's status, every 504 within its \
             timeout plus slack, the delay visible in the `delay` median.\n",
        );
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("sync-rest/{mode}"), &text)
}

/// "What a failed answer leaves behind": Inventory's stock after each case's load, against the
/// orders confirmed, and what retrying each 504 under its order id did.
fn left_behind_section(rows: &[LeftBehindRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n### What a failed answer leaves behind\n\nAfter each case's load the lab cleared Inventory's fault, waited out \
         its longest hold, read its stock, then sent every order answered 504 again under its own order id (the \
         `Idempotency-Key`; Inventory keys its decisions by it) and read the stock once more. `failure-down` has \
         no row: its Inventory was not running.\n\n",
    );
    text.push_str(&markdown_table(&csv::header::<LeftBehindRow>(), &rows.iter().map(csv::cells).collect::<Vec<_>>()));
    text.push('\n');
    for row in rows.iter().filter(|r| r.answered_504 > 0) {
        let kept = if row.units_left_behind > 0 {
            format!(
                "**{}**: {} answers of 504, yet Inventory had taken {} units that no confirmed order accounts for: the \
                 stock was reserved behind each 504, and the student, told the order failed, does not know it. \
                 Retrying each under its order id, {} of {} answered 201 and took {} more units{}.",
                row.experiment,
                row.answered_504,
                row.units_left_behind,
                row.retried_ok,
                row.retried,
                row.units_taken_by_retries,
                if row.units_taken_by_retries == 0 {
                    " — each retry found its first attempt's outcome"
                } else {
                    " — some reserved twice"
                }
            )
        } else {
            format!(
                "**{}**: {} answers of 504 and no stock missing ({} units taken, all by confirmed orders): Order's \
                 giving up closed the call while Inventory still held the request, so it was never handled. Retrying \
                 each under its order id, {} of {} answered 201, taking {} units — now reserved for the first time.",
                row.experiment, row.answered_504, row.units_taken, row.retried_ok, row.retried, row.units_taken_by_retries
            )
        };
        text.push_str(&format!("- {kept}\n"));
    }
    text.push_str(
        "- A 504 means \"Order stopped waiting\", not \"nothing happened\": only a retry under the same key (or a \
         look at Inventory) tells the student which. Without the key, the retry would be a new order and reserve the \
         stock a second time.\n",
    );
    text
}

fn f1(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn count(s: &Summary, status: u16) -> usize {
    s.statuses.get(&status).copied().unwrap_or(0)
}

/// Sentences that explain the table, each computed from it.
pub fn findings(config: &Config, summaries: &[Summary]) -> Vec<String> {
    let find = |name: &str| summaries.iter().find(|s| s.experiment == name);
    let mut out = Vec::new();
    let baseline = find("baseline");
    if let Some(b) = baseline {
        out.push(format!(
            "**baseline**: {} orders, {} answered 201; p50 {} ms, p99 {} ms, {:.0} orders/s. An order is \
             three request/reply exchanges in series (client → Order, Order → Inventory, Order → \
             Notification), so its latency is their sum.",
            b.requests,
            count(b, 201),
            f1(b.p50),
            f1(b.p99),
            b.throughput_rps
        ));
    }
    if let Some(o) = find("open-loop") {
        out.push(format!(
            "**open-loop**: {} orders arriving at {} a second whatever the answers (Parts B's and C's load), {} answered \
             201; p50 {} ms, p99 {} ms, each measured from the order's intended send time; {:.1} orders/s decided — all \
             that was offered, so this says Part A keeps up with the rate, not how much more it could take{}.",
            o.requests,
            config.rate,
            count(o, 201),
            f1(o.p50),
            f1(o.p99),
            o.throughput_rps,
            baseline.map(|b| format!(" (`baseline`'s closed loop drove it at {:.0} orders/s)", b.throughput_rps)).unwrap_or_default()
        ));
    }
    if let Some(d) = find("delay") {
        let mut s = format!("**delay**: with Inventory {} ms slower, p50 is {} ms", config.delay.as_millis(), f1(d.p50));
        if let Some(b) = baseline {
            s.push_str(&format!(
                " = baseline p50 {} ms + {} ms: the caller inherits all of its dependency's delay. \
                 Throughput fell from {:.0} to {:.1} orders/s",
                f1(b.p50),
                f1(d.p50.saturating_sub(b.p50)),
                b.throughput_rps,
                d.throughput_rps
            ));
        } else {
            s.push_str(&format!(": the caller inherits all of its dependency's delay. Throughput is {:.1} orders/s", d.throughput_rps));
        }
        s.push_str(&format!(
            "; with {} clients each blocked ≥ {:.1} s per order it cannot exceed {:.1} orders/s. \
             Every order still succeeded ({} × 201) — slowly.",
            config.concurrency,
            config.delay.as_secs_f64(),
            config.concurrency as f64 / config.delay.as_secs_f64(),
            count(d, 201)
        ));
        out.push(s);
    }
    if let Some(o) = find("open-delay") {
        let held = f64::from(config.rate) * config.delay.as_secs_f64();
        out.push(format!(
            "**open-delay**: the same {} ms delay under {} orders arriving at {} a second whatever the answers: {} answered \
             201, p50 {} ms, p99 {} ms from each order's intended start — and at most {} requests in flight at Order at once \
             (rate × delay = {held:.0}). A closed loop hides this: its clients just send less. Students who keep arriving \
             are all held open by Order until Inventory answers; nothing is refused or queued, so what bounds it is what \
             each open request costs (a connection, a task, memory) — see the figure of requests in flight.",
            config.delay.as_millis(),
            o.requests,
            config.rate,
            count(o, 201),
            f1(o.p50),
            f1(o.p99),
            o.peak_in_flight.unwrap_or(0),
        ));
    }
    for t in ["timeout", "timeout-after-reserve"].into_iter().filter_map(find) {
        let slow = if t.experiment == "timeout" { "before deciding" } else { "after reserving" };
        out.push(format!(
            "**{}** (Inventory {} ms slow {slow}): {} of {} answered 504 (`inventory_timeout`), p50 {} ms, max {} ms against \
             Order's {} ms timeout (max − timeout = {} ms). The timeout bounds how long a student \
             waits instead of {} ms, but every order in the slow window fails: it trades a slow \
             success for a fast failure, it does not make Inventory faster.",
            t.experiment,
            config.delay.as_millis(),
            count(t, 504),
            t.requests,
            f1(t.p50),
            f1(t.max),
            config.timeout.as_millis(),
            f1(t.max.saturating_sub(config.timeout)),
            config.delay.as_millis()
        ));
    }
    if let Some(f) = find("failure-down") {
        out.push(format!(
            "**failure-down**: Inventory not running; {} of {} answered 503 with p99 {} ms{}. A refused \
             connection is known within one hop, so Order fails fast and stays responsive — but no \
             order succeeds: in the synchronous model Order is only as available as Inventory.",
            count(f, 503),
            f.requests,
            f1(f.p99),
            baseline.map(|b| format!(" (baseline p99 {} ms)", f1(b.p99))).unwrap_or_default()
        ));
    }
    if let Some(f) = find("failure-5xx") {
        out.push(format!(
            "**failure-5xx**: Inventory answering 500; {} of {} answered 503 with p99 {} ms. Order maps \
             a failing dependency to 503 (retry later) rather than passing the 500 on as its own bug.",
            count(f, 503),
            f.requests,
            f1(f.p99)
        ));
    }
    if let (Some(b), Some(d), Some(f)) = (baseline, find("delay"), find("failure-down")) {
        out.push(format!(
            "**coupling**: Order's latency is the sum of its dependencies' (+{} ms when Inventory was \
             {} ms slower) and its success rate is bounded by theirs ({} of {} orders succeeded with \
             Inventory down, against {} of {} at baseline). That is temporal coupling: both services \
             must be up and fast at the same moment. A queue (Part B) lets Order accept while \
             Inventory is away, at the price of answering \"accepted\" instead of \"confirmed\".",
            f1(d.p50.saturating_sub(b.p50)),
            config.delay.as_millis(),
            f.ok,
            f.requests,
            b.ok,
            b.requests
        ));
    }
    out
}
