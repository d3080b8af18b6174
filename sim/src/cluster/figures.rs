//! The cluster's figures, drawn from its typed rows: `cluster_scale_out_<mode>.svg` (Part B:
//! orders per second by Inventory instances, beside the line of perfect scaling),
//! `cluster_scale_out_kafka_<mode>.svg` (Part C: the same by group members, per partition count),
//! `cluster_node_loss_<mode>.svg` (Part B: orders decided per second and orders waiting around
//! the node loss) and `cluster_node_loss_kafka_<mode>.svg` (Part C: events appended and each
//! consumer's lag), the lost node's down window shaded.

use std::path::Path;

use super::rows::{partition_counts, throughput, NodeLossRow, Summary, NODE_LOSS_CSV, SUMMARY_CSV};
use crate::reporting::csv;
use crate::reporting::plot::{figures, window_span, write, Chart, Series};
use crate::Mode;
use campus::Model;

/// Draws the cluster's figures for `mode`; returns the report's Figures subsection.
pub fn draw(out: &Path, mode: Mode) -> anyhow::Result<String> {
    Ok(figures(vec![
        (scale_out(out, mode)?, "Scale-out, Part B: Inventory's throughput by instance count (dashed: perfect scaling from one instance)"),
        (scale_out_kafka(out, mode)?, "Scale-out, Part C: Inventory's throughput by members of its group, over 3 and over 6 partitions"),
        (node_loss(out, mode)?, "Node loss, Part B: orders decided per second and orders waiting (the lost node's down window shaded)"),
        (
            node_loss_kafka(out, mode)?,
            "Node loss, Part C: events appended and what each consumer has yet to read (the lost broker's down window shaded)",
        ),
    ]))
}

fn scale_out(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let path = out.join(SUMMARY_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows: Vec<Summary> = csv::read::<Summary>(&path)?
        .into_iter()
        .filter(|r| {
            r.mode == mode
                && r.model == Model::AsyncRabbitmq.name()
                && r.experiment.starts_with("scale-out")
                && !r.experiment.ends_with("crash")
        })
        .collect();
    let points: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((r.instances as f64, r.orders_per_s? as f64))).collect();
    let ideal = match points.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
        Some(&(n, rate)) => points.iter().map(|&(k, _)| (k, rate * k / n)).collect(),
        None => Vec::new(),
    };
    let chart = Chart {
        title: format!(
            "Part B ({mode}): a backlog drained by 1 to {} Inventory instances",
            points.iter().map(|p| p.0 as usize).max().unwrap_or(1)
        ),
        x_label: "Inventory instances".into(),
        y_label: "orders decided per second".into(),
        x_log: false,
        series: vec![Series::line("measured", points), Series { dashed: true, ..Series::line("perfect scaling", ideal) }],
        ..Chart::default()
    };
    write(out, format!("cluster_scale_out_{mode}.svg"), &chart)
}

/// Part C's scale-out: orders per second by members, one line per partition count.
fn scale_out_kafka(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let path = out.join(SUMMARY_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let rows: Vec<Summary> = csv::read::<Summary>(&path)?.into_iter().filter(|r| r.mode == mode).collect();
    let series: Vec<Series> = partition_counts(&rows)
        .into_iter()
        .map(|p| {
            let points = throughput(&rows, Model::StreamingKafka, Some(p)).into_iter().map(|(n, rate)| (n as f64, rate as f64)).collect();
            Series::line(&format!("{p} partitions"), points)
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let chart = Chart {
        title: format!("Part C ({mode}): a backlog drained by the members of Inventory's group"),
        x_label: "Inventory instances (group members)".into(),
        y_label: "orders decided per second".into(),
        x_log: false,
        series,
        ..Chart::default()
    };
    write(out, format!("cluster_scale_out_kafka_{mode}.svg"), &chart)
}

/// Part B's node loss: orders decided per second, orders waiting, Order's outbox.
fn node_loss(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let samples = node_loss_rows(out, mode, Model::AsyncRabbitmq)?;
    let per_second: Vec<(f64, f64)> = samples
        .windows(2)
        .filter_map(|w| Some((w[1].t_s.0, w[1].decided?.saturating_sub(w[0].decided?) as f64 / (w[1].t_s.0 - w[0].t_s.0).max(1e-3))))
        .collect();
    let chart = Chart {
        title: format!("Part B ({mode}): the RabbitMQ node the services use is lost"),
        x_label: "time since the first order (s)".into(),
        y_label: "orders / orders per second".into(),
        x_log: false,
        series: vec![
            Series::line("orders decided per second", per_second),
            series(&samples, "orders waiting (accepted, not decided)", |r| r.waiting),
            series(&samples, "orders waiting in Order's outbox", |r| r.outbox),
        ],
        shaded: shaded(out, mode, Model::AsyncRabbitmq, &samples, "node 1 down")?,
        ..Chart::default()
    };
    write(out, format!("cluster_node_loss_{mode}.svg"), &chart)
}

/// Part C's node loss: events appended, and what Inventory and Analytics have yet to read.
fn node_loss_kafka(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let samples = node_loss_rows(out, mode, Model::StreamingKafka)?;
    let chart = Chart {
        title: format!("Part C ({mode}): Kafka broker 1 of 3 is lost mid-stream"),
        x_label: "time since the producer started (s)".into(),
        y_label: "events / records".into(),
        x_log: false,
        series: vec![
            series(&samples, "events appended", |r| Some(r.accepted)),
            series(&samples, "records Inventory has yet to read", |r| r.waiting),
            series(&samples, "records Analytics has yet to read", |r| r.analytics_lag),
        ],
        shaded: shaded(out, mode, Model::StreamingKafka, &samples, "broker 1 down")?,
        ..Chart::default()
    };
    write(out, format!("cluster_node_loss_kafka_{mode}.svg"), &chart)
}

/// One column of the samples over time (the samples where it has a value).
/// A column over time, its line broken where a cell is empty (the cluster could not be asked).
fn series(samples: &[NodeLossRow], name: &str, column: fn(&NodeLossRow) -> Option<u64>) -> Series {
    Series::with_gaps(name, samples.iter().map(|r| (r.t_s.0, column(r).map(|v| v as f64))))
}

/// `model`'s node loss window as `cluster_summary.csv` recorded it, shaded with `label`; read
/// off the samples when the summary has none.
fn shaded(out: &Path, mode: Mode, model: Model, samples: &[NodeLossRow], label: &str) -> anyhow::Result<Vec<(f64, f64, String)>> {
    let path = out.join(SUMMARY_CSV);
    let rows = if path.exists() { csv::read::<Summary>(&path)? } else { Vec::new() };
    let recorded = rows
        .iter()
        .find(|r| r.mode == mode && r.model == model.name() && r.experiment == "node-loss")
        .and_then(|r| Some((r.down_from_s?.0, r.down_until_s?.0)));
    Ok(window_span(recorded, samples.iter().map(|r| (r.t_s.0, r.node_up == 0)), label))
}

fn node_loss_rows(out: &Path, mode: Mode, model: Model) -> anyhow::Result<Vec<NodeLossRow>> {
    let path = out.join(NODE_LOSS_CSV);
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(csv::read::<NodeLossRow>(&path)?.into_iter().filter(|r| r.mode == mode && r.model == model.name()).collect())
}
