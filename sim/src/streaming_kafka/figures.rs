//! Part C's figures, drawn from the typed rows of its CSV files:
//! `streaming_kafka_lag_<mode>.svg` (Analytics' lag per topic over time under throttling) and
//! `streaming_kafka_replay_<mode>.svg` (orders per minute of event time, before and after the
//! replay).

use std::collections::BTreeMap;
use std::path::Path;

use super::rows::{LagRow, OutageRow, ReplayRow, RestartRow, SummaryRow, LAG_CSV, OUTAGE_CSV, REPLAY_CSV, RESTART_CSV, SUMMARY_CSV};
use crate::reporting::csv;
use crate::reporting::plot::{figures, window_span, write, Chart, Series};
use crate::Mode;

/// Draws Part C's figures for `mode`; returns the report's Figures subsection.
pub fn draw(out: &Path, mode: Mode) -> anyhow::Result<String> {
    Ok(figures(vec![
        (lag(out, mode)?, "Analytics' consumer lag under throttling"),
        (replay(out, mode)?, "Orders and failure rate per minute of event time, before and after the replay"),
        (
            restart(out, mode)?,
            "The broker restart: each group's lag (the broker's down window shaded, as recorded; the lines break where the \
             broker could not be asked)",
        ),
        (
            outage(out, mode)?,
            "Inventory down for a minute: events appended, each group's lag and the orders waiting for their outcome \
             (Inventory's down window shaded, as recorded)",
        ),
    ]))
}

/// One sample of a timeline with something away: (t_s, up, events appended where drawn,
/// Inventory's lag, Analytics' lag, orders waiting for their outcome where known). `None` is an
/// empty cell: nothing could be measured, and the line breaks there.
type Second = (f64, bool, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

/// Events appended and each consumer group's lag over time, the broker's down window shaded;
/// the lags have no points while the broker could not be asked.
pub fn restart(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let path = out.join(RESTART_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows = csv::read::<RestartRow>(&path)?.into_iter().filter(|r| r.mode == mode);
    // The events appended (thousands) would set the scale and flatten the lags (about a hundred)
    // the figure is about: they are left to the table.
    let seconds: Vec<Second> = rows.map(|r| (r.t_s.0, r.broker_up == 1, None, r.inventory_lag, r.analytics_lag, None)).collect();
    let shaded = shaded(out, mode, "broker-restart", "broker down", &seconds)?;
    timeline(
        out,
        format!("streaming_kafka_broker_restart_{mode}.svg"),
        format!("Part C ({mode}): the broker killed mid-stream and started again"),
        shaded,
        seconds,
    )
}

/// The same for Inventory's outage: Inventory's lag is the orders waiting for a decision.
pub fn outage(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let path = out.join(OUTAGE_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows = csv::read::<OutageRow>(&path)?.into_iter().filter(|r| r.mode == mode);
    let seconds: Vec<Second> = rows
        .map(|r| {
            (
                r.t_s.0,
                r.inventory_up == 1,
                Some(r.produced),
                r.inventory_lag,
                r.analytics_lag,
                r.decided.map(|d| r.produced.saturating_sub(d)),
            )
        })
        .collect();
    let shaded = shaded(out, mode, "outage", "Inventory down", &seconds)?;
    timeline(
        out,
        format!("streaming_kafka_outage_{mode}.svg"),
        format!("Part C ({mode}): Inventory down, the producer going on"),
        shaded,
        seconds,
    )
}

/// The window `experiment` recorded in `streaming_kafka_summary.csv` for `mode`, shaded with
/// `label`; read off the samples when the summary has none.
fn shaded(out: &Path, mode: Mode, experiment: &str, label: &str, seconds: &[Second]) -> anyhow::Result<Vec<(f64, f64, String)>> {
    let path = out.join(SUMMARY_CSV);
    let rows = if path.exists() { csv::read::<SummaryRow>(&path)? } else { Vec::new() };
    let recorded =
        rows.iter().find(|r| r.mode == mode && r.experiment == experiment).and_then(|r| Some((r.down_from_s?.0, r.down_until_s?.0)));
    Ok(window_span(recorded, seconds.iter().map(|r| (r.0, !r.1)), label))
}

fn timeline(
    out: &Path,
    file: String,
    title: String,
    shaded: Vec<(f64, f64, String)>,
    seconds: Vec<Second>,
) -> anyhow::Result<Option<String>> {
    // A column with no value at all is not drawn; one with some is drawn with its gaps.
    let series = |name: &str, column: fn(&Second) -> Option<u64>| {
        Series::with_gaps(name, seconds.iter().map(|r| (r.0, column(r).map(|v| v as f64))))
    };
    let chart = Chart {
        title,
        x_label: "time since the producer started (s)".into(),
        y_label: "events / records".into(),
        x_log: false,
        series: vec![
            series("events appended (acknowledged)", |r| r.2),
            series("Inventory's lag (records)", |r| r.3),
            series("Analytics' lag (both topics)", |r| r.4),
            series("orders waiting for their outcome", |r| r.5),
        ]
        .into_iter()
        .filter(|s| s.points.iter().any(|(_, y)| !y.is_nan()))
        .collect(),
        shaded,
        ..Chart::default()
    };
    write(out, file, &chart)
}

/// The Analytics group's lag per topic (summed over partitions) over time.
pub fn lag(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let mut per_topic: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for row in csv::read::<LagRow>(&out.join(LAG_CSV))?.into_iter().filter(|r| r.mode == mode) {
        let t = (row.t_s.0 * 1000.0).round() as u64;
        *per_topic.entry(row.topic).or_default().entry(t).or_default() += row.lag as f64;
    }
    let total: BTreeMap<u64, f64> = per_topic.values().flat_map(|m| m.iter()).fold(BTreeMap::new(), |mut acc, (t, v)| {
        *acc.entry(*t).or_default() += v;
        acc
    });
    let to_points = |m: &BTreeMap<u64, f64>| m.iter().map(|(t, v)| (*t as f64 / 1000.0, *v)).collect::<Vec<_>>();
    let mut series = vec![Series::line("total lag (both topics)", to_points(&total))];
    series.extend(per_topic.iter().map(|(topic, m)| Series { dashed: true, ..Series::line(topic.clone(), to_points(m)) }));
    let chart = Chart {
        title: format!("Part C ({mode}): Analytics consumer lag under throttling"),
        x_label: "time since the producer started (s)".into(),
        y_label: "records not yet consumed".into(),
        x_log: false,
        series,
        ..Chart::default()
    };
    write(out, format!("streaming_kafka_lag_{mode}.svg"), &chart)
}

/// Orders per minute of event time before and after the replay.
pub fn replay(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    // Orders per minute, and the failure rate per minute (in %), before and after.
    let (mut before, mut after, mut rate_before, mut rate_after) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in csv::read::<ReplayRow>(&out.join(REPLAY_CSV))?.into_iter().filter(|r| r.mode == mode) {
        let per_minute =
            |prefix: &str| row.metric.strip_prefix(prefix).and_then(|m| m.strip_suffix(']')).and_then(|m| m.parse::<f64>().ok());
        let (minute, scale, sides) = if let Some(minute) = per_minute("orders[") {
            (minute, 1.0, [&mut before, &mut after])
        } else if let Some(minute) = per_minute("failure_rate[") {
            (minute, 100.0, [&mut rate_before, &mut rate_after])
        } else {
            continue;
        };
        // An empty cell: the metric did not exist on that side (no point there); anything else
        // must be a number.
        for (cell, points) in [&row.before, &row.after].into_iter().zip(sides) {
            if !cell.is_empty() {
                let value = cell.parse::<f64>().map_err(|_| anyhow::anyhow!("{REPLAY_CSV}: {} has the value {cell:?}", row.metric))?;
                points.push((minute, value * scale));
            }
        }
    }
    for points in [&mut before, &mut after, &mut rate_before, &mut rate_after] {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let chart = Chart {
        title: format!("Part C ({mode}): orders and failure rate per minute, before and after the replay"),
        x_label: "minute of event time".into(),
        y_label: "orders / failure rate (%)".into(),
        x_log: false,
        series: vec![
            Series::line("orders, before the replay", before),
            Series { markers: true, ..Series::line("orders, after", after) },
            Series { dashed: true, ..Series::line("failure rate % (stock out), before", rate_before) },
            Series { markers: true, dashed: true, ..Series::line("failure rate %, after", rate_after) },
        ],
        ..Chart::default()
    };
    write(out, format!("streaming_kafka_replay_{mode}.svg"), &chart)
}
