//! Part A's figures, drawn from the typed rows of `sync_rest_requests.csv`, one per protocol:
//! `sync_rest_latency_<mode>.svg` (REST) and `sync_rest_latency_grpc_<mode>.svg`, the share of
//! requests answered within x ms per experiment; and `sync_rest_in_flight_<mode>.svg`, the
//! requests in flight at Order during `open-delay`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::rows::{RequestRow, REQUESTS_CSV};
use super::Scenario;
use crate::reporting::csv;
use crate::reporting::plot::{figures, write, Chart, Series};
use crate::Mode;
use campus::Protocol;

/// Draws Part A's figures for `mode`; returns the report's Figures subsection.
pub fn draw(out: &Path, mode: Mode) -> anyhow::Result<String> {
    let caption = |protocol: Protocol| match protocol {
        Protocol::Rest => {
            "Over REST: latency distribution per experiment, the share of requests answered within x ms (`timeout` and \
             `timeout-after-reserve` both give up at Order's timeout, so their lines coincide; the table tells them apart)"
        }
        Protocol::Grpc => "Over gRPC: the same experiments, the same orders and faults (read against the REST figure above)",
    };
    let mut drawn = Vec::new();
    for protocol in Protocol::ALL {
        drawn.push((latency(out, mode, protocol)?, caption(protocol)));
    }
    drawn.push((
        in_flight(out, mode)?,
        "`open-delay`: requests in flight at Order over time (sent at their intended start, not yet answered), every 100 ms, \
         orders arriving at a steady rate whatever the answers while Inventory is slow: they pile up to rate × delay",
    ));
    Ok(figures(drawn))
}

/// Requests in flight at Order during `open-delay`, per protocol, sampled every 100 ms from
/// the rows of `sync_rest_load.csv` (each request from its intended start to its answer).
pub fn in_flight(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let rows = crate::load::rows::read(out, campus::Model::SyncRest)?;
    let mut series = Vec::new();
    for protocol in Protocol::ALL {
        let spans: Vec<(Duration, Duration)> = rows
            .iter()
            .filter(|r| r.mode == mode && r.experiment == "open-delay" && r.over == protocol.name())
            .filter_map(|r| {
                let t = r.timed();
                Some((Duration::from_millis(t.intended_ms), Duration::from_millis(t.intended_ms) + t.accept?))
            })
            .collect();
        let points = crate::load::timeline::in_flight(&spans, Duration::from_millis(100));
        if !points.is_empty() {
            let line = points.into_iter().map(|(t, n)| (t.as_secs_f64(), n as f64)).collect();
            series.push(Series { dashed: protocol == Protocol::Grpc, ..Series::line(format!("over {protocol}"), line) });
        }
    }
    let chart = Chart {
        title: format!("Part A `open-delay` ({mode}): requests in flight at Order, Inventory slow"),
        x_label: "seconds since the first order was meant to arrive".into(),
        y_label: "requests in flight".into(),
        series,
        ..Chart::default()
    };
    write(out, format!("sync_rest_in_flight_{mode}.svg"), &chart)
}

/// The figure's file: REST's keeps the name it always had.
pub fn file_name(mode: Mode, protocol: Protocol) -> String {
    match protocol {
        Protocol::Rest => format!("sync_rest_latency_{mode}.svg"),
        Protocol::Grpc => format!("sync_rest_latency_grpc_{mode}.svg"),
    }
}

/// The share of requests answered within x ms over `protocol`, per experiment (log x); none
/// when nothing ran over it.
pub fn latency(out: &Path, mode: Mode, protocol: Protocol) -> anyhow::Result<Option<String>> {
    let mut latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Per experiment, its statuses: an experiment whose answers were not all 2xx is drawn
    // dashed and its legend says what they were.
    let mut statuses: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for row in csv::read::<RequestRow>(&out.join(REQUESTS_CSV))?.into_iter().filter(|r| r.mode == mode && r.protocol == protocol) {
        *statuses.entry(row.experiment.clone()).or_default().entry(row.status).or_insert(0) += 1;
        latencies.entry(row.experiment).or_default().push(row.latency_ms.0.max(0.1));
    }
    let order = Scenario::ALL.map(Scenario::name);
    let mut names: Vec<String> = latencies.keys().cloned().collect();
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
    let series = names
        .into_iter()
        .map(|name| {
            let mut v = latencies.remove(&name).unwrap_or_default();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            let points = v.iter().enumerate().map(|(i, x)| (*x, (i + 1) as f64 / n * 100.0)).collect();
            let errors: Vec<String> = statuses
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|(s, _)| !(200..300).contains(*s))
                .map(|(s, k)| format!("{k}× {s}"))
                .collect();
            if errors.is_empty() {
                Series::line(format!("{name}: answered 201"), points)
            } else {
                Series { dashed: true, ..Series::line(format!("{name}: errors ({})", errors.join(", ")), points) }
            }
        })
        .collect();
    let (title, call) = match protocol {
        Protocol::Rest => ("REST", "POST /order"),
        Protocol::Grpc => ("gRPC", "PlaceOrder"),
    };
    let chart = Chart {
        title: format!("Part A over {title} ({mode}): order latency per experiment (dashed: answered with errors)"),
        x_label: format!("latency of {call} (ms, log scale)"),
        y_label: "% of requests answered within x".into(),
        x_log: true,
        series,
        y_max: Some(100.0),
        ..Chart::default()
    };
    write(out, file_name(mode, protocol), &chart)
}
