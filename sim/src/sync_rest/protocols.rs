//! "REST and gRPC side by side": each experiment's answers and latencies over both protocols,
//! and the reasoning on what the protocol changes and what it does not, every number read from
//! the summaries (and the left-behind rows) it sits next to.

use std::time::Duration;

use campus::Protocol;

use super::aftermath::LeftBehindRow;
use super::rows::Summary;
use super::Config;
use crate::reporting::markdown_table;
use crate::Mode;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The experiments run over both protocols, in the order they ran: (REST, gRPC).
pub fn pairs(summaries: &[Summary]) -> Vec<(&Summary, &Summary)> {
    let over = |p: Protocol| summaries.iter().filter(move |s| s.protocol == p);
    over(Protocol::Rest).filter_map(|r| over(Protocol::Grpc).find(|g| g.experiment == r.experiment).map(|g| (r, g))).collect()
}

/// The section, or nothing when not both protocols ran.
pub fn side_by_side(config: &Config, mode: Mode, summaries: &[Summary], left_behind: &[LeftBehindRow]) -> String {
    let pairs = pairs(summaries);
    if pairs.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n### REST and gRPC side by side\n\nThe same experiments, orders and faults over both protocols. A gRPC answer \
         is counted as the REST face would give it, by one table (`campus::api::grpc::status`): `OK` as 201, \
         `FAILED_PRECONDITION` as 409, `DEADLINE_EXCEEDED` as 504, `UNAVAILABLE` as 503.\n\n",
    );
    let header: Vec<String> =
        ["experiment", "rest p50 ms", "grpc p50 ms", "rest p99 ms", "grpc p99 ms", "rest answers", "grpc answers"].map(String::from).into();
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(r, g)| vec![r.experiment.clone(), ms(r.p50), ms(g.p50), ms(r.p99), ms(g.p99), r.statuses_text(), g.statuses_text()])
        .collect();
    text.push_str(&markdown_table(&header, &rows));
    text.push('\n');
    for finding in findings(config, mode, &pairs, left_behind) {
        text.push_str(&format!("- {finding}\n"));
    }
    text
}

/// The sentences under the side-by-side table, each computed from it.
pub fn findings(config: &Config, mode: Mode, pairs: &[(&Summary, &Summary)], left_behind: &[LeftBehindRow]) -> Vec<String> {
    let mut out = Vec::new();
    let differ: Vec<&str> = pairs.iter().filter(|(r, g)| r.statuses != g.statuses).map(|(r, _)| r.experiment.as_str()).collect();
    out.push(if differ.is_empty() {
        format!(
            "**What does not change: the answers.** All {} experiments got the same answers over both protocols. A fault \
             surfaces the same way under another name: Inventory down or failing is `UNAVAILABLE` (503), too slow is \
             `DEADLINE_EXCEEDED` (504). Injected into Inventory, a 500 reads `INTERNAL` there; Order passes it on as \
             `UNAVAILABLE`, because Order itself is not broken and the client may retry under the same order id.",
            pairs.len()
        )
    } else {
        format!("**The answers differ** in {}: see the table; each protocol's rows above say how.", differ.join(", "))
    });
    let find = |name: &str| pairs.iter().find(|(r, _)| r.experiment == name);
    if let Some((r, g)) = find("failure-down") {
        out.push(format!(
            "**What does not change: the coupling.** With Inventory down, {} of {} orders succeeded over REST and {} of {} \
             over gRPC. The protocol changes how a call is carried, not that Order needs Inventory to answer now.",
            r.ok, r.requests, g.ok, g.requests
        ));
    }
    if let Some((r, g)) = find("baseline") {
        let latency = match mode {
            Mode::Sim => format!(
                "baseline p50 {} ms over REST and {} ms over gRPC: the simulation draws the same link latency for a call \
                 whichever protocol carries it, so these are equal by construction and only the semantics are compared here. \
                 The real section measures what each protocol costs.",
                ms(r.p50),
                ms(g.p50)
            ),
            Mode::Real => format!(
                "baseline p50 {} ms over REST and {} ms over gRPC, p99 {} ms and {} ms, {:.0} and {:.0} orders/s with {} \
                 clients, on loopback, where a hop costs little more than the work at each end.",
                ms(r.p50),
                ms(g.p50),
                ms(r.p99),
                ms(g.p99),
                r.throughput_rps,
                g.throughput_rps,
                config.concurrency
            ),
        };
        out.push(format!(
            "**What changes: the wire.** An order's request is {:.1} bytes of JSON over REST and {:.1} bytes of protobuf \
             over gRPC, 5-byte frame included ({:.0}% of the JSON; HTTP headers not counted, and HTTP/2 compresses \
             them). Over REST each call in flight takes a pooled HTTP/1.1 connection of its own; over gRPC every call to \
             a service shares one HTTP/2 connection. Latency: {latency}",
            r.request_bytes,
            g.request_bytes,
            g.request_bytes / r.request_bytes.max(1e-9) * 100.0
        ));
    }
    if let Some((r, g)) = find("timeout") {
        let units = |p: Protocol, name: &str| {
            left_behind.iter().find(|l| l.protocol == p && l.experiment == name).map(|l| l.units_left_behind.to_string())
        };
        let behind = match (units(Protocol::Rest, "timeout-after-reserve"), units(Protocol::Grpc, "timeout-after-reserve")) {
            (Some(r), Some(g)) => format!(
                " The deadline does not undo work already done: with Inventory slow after reserving, {r} units over REST and \
                 {g} over gRPC were left reserved behind the 504s."
            ),
            _ => String::new(),
        };
        out.push(format!(
            "**What changes: where the deadline lives.** In `timeout`, every answer came at Order's {} ms bound over both \
             (max {} ms over REST, {} ms over gRPC). Over gRPC, Order's call carries its bound as `grpc-timeout`, and a \
             client's deadline bounds Order's own calls too. Over REST, only Order knows its timeout. Either way, \
             Order's giving up cancels the call: HTTP/2 resets the stream, HTTP/1.1 drops the connection, and the held \
             request is never handled.{behind}",
            config.timeout.as_millis(),
            ms(r.max),
            ms(g.max)
        ));
    }
    out
}
