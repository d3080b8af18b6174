//! Part B's figure, drawn from the typed rows of `async_rabbitmq_backlog.csv`:
//! `async_rabbitmq_backlog_<mode>.svg`, Inventory's queue depth, orders accepted and notified
//! over time, the down window shaded.

use std::path::Path;

use super::rows::{BacklogRow, BrokerRow, Summary, BACKLOG_CSV, BROKER_RESTART_CSV, SUMMARY_CSV};
use crate::reporting::csv;
use crate::reporting::plot::{figures, window_span, write, Chart, Series};
use crate::Mode;

/// Draws Part B's figures for `mode`; returns the report's Figures subsection.
pub fn draw(out: &Path, mode: Mode) -> anyhow::Result<String> {
    Ok(figures(vec![
        (backlog(out, mode)?, "Backlog during the outage (Inventory's down window shaded, from its kill to its return as recorded)"),
        (
            broker_restart(out, mode)?,
            "The broker restart: Order's outbox fills while RabbitMQ is away, then drains (the broker's down window shaded, as \
             recorded; the queue's line breaks where the broker could not be asked)",
        ),
    ]))
}

/// The window `experiment` recorded in `async_rabbitmq_summary.csv` for `mode`, shaded with
/// `label`; read off the samples (`fallback`) when the summary has none.
fn shaded(
    out: &Path,
    mode: Mode,
    experiment: &str,
    label: &str,
    fallback: impl IntoIterator<Item = (f64, bool)>,
) -> anyhow::Result<Vec<(f64, f64, String)>> {
    let path = out.join(SUMMARY_CSV);
    let rows = if path.exists() { csv::read::<Summary>(&path)? } else { Vec::new() };
    let recorded =
        rows.iter().find(|r| r.mode == mode && r.experiment == experiment).and_then(|r| Some((r.down_from_s?.0, r.down_until_s?.0)));
    Ok(window_span(recorded, fallback, label))
}

/// Order's outbox, Inventory's queue, orders accepted and notified; the broker's down window
/// shaded. The queue's line breaks while the broker could not be asked (an empty cell).
pub fn broker_restart(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let path = out.join(BROKER_RESTART_CSV);
    if !path.exists() {
        return Ok(None);
    }
    let samples: Vec<BrokerRow> = csv::read::<BrokerRow>(&path)?.into_iter().filter(|r| r.mode == mode).collect();
    let series = |name: &str, column: fn(&BrokerRow) -> Option<u64>| {
        Series::with_gaps(name, samples.iter().map(|r| (r.t_s.0, column(r).map(|v| v as f64))))
    };
    let shaded = shaded(out, mode, "broker-restart", "RabbitMQ down", samples.iter().map(|r| (r.t_s.0, r.broker_up == 0)))?;
    let chart = Chart {
        title: format!("Part B ({mode}): RabbitMQ restarted while orders keep coming"),
        x_label: "time since the first order (s)".into(),
        y_label: "orders / messages".into(),
        x_log: false,
        series: vec![
            series("orders waiting in Order's outbox", |r| Some(r.outbox)),
            series("OrderPlaced waiting in Inventory's queue", |r| r.queue_depth),
            series("orders accepted (202)", |r| Some(r.accepted)),
            series("orders notified", |r| Some(r.notified)),
        ],
        shaded,
        ..Chart::default()
    };
    write(out, format!("async_rabbitmq_broker_restart_{mode}.svg"), &chart)
}

/// Inventory's queue depth, orders accepted and notified, the down window shaded.
pub fn backlog(out: &Path, mode: Mode) -> anyhow::Result<Option<String>> {
    let samples: Vec<BacklogRow> = csv::read::<BacklogRow>(&out.join(BACKLOG_CSV))?.into_iter().filter(|r| r.mode == mode).collect();
    let series =
        |name: &str, column: fn(&BacklogRow) -> u64| Series::line(name, samples.iter().map(|r| (r.t_s.0, column(r) as f64)).collect());
    let shaded = shaded(out, mode, "outage", "Inventory down", samples.iter().map(|r| (r.t_s.0, r.inventory_up == 0)))?;
    let chart = Chart {
        title: format!("Part B ({mode}): backlog during the Inventory outage"),
        x_label: "time since the first order (s)".into(),
        y_label: "messages / orders".into(),
        x_log: false,
        series: vec![
            series("OrderPlaced waiting in Inventory's queue", |r| r.queue_depth),
            series("orders accepted (202)", |r| r.accepted),
            series("orders notified", |r| r.notified),
        ],
        shaded,
        ..Chart::default()
    };
    write(out, format!("async_rabbitmq_backlog_{mode}.svg"), &chart)
}
