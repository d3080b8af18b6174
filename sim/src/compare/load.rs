//! Accept and completion latency of the three models under one open-loop load (20 orders a
//! second arriving whatever the answers, each latency from the order's intended start), from
//! the parts' `<model>_load.csv`: a table of percentiles (HdrHistogram: p50, p90, p99, p99.9,
//! max) and a figure of the p99 over time.

use std::path::Path;
use std::time::Duration;

use campus::Model;

use crate::load::rows::{self, LoadRow};
use crate::load::Percentiles;
use crate::reporting::markdown_table;
use crate::reporting::plot::{window_span, write, Chart, Series};
use crate::Mode;

/// The open-loop runs the section shows: model, experiment, carried over, and what Inventory
/// suffers in it.
pub const RUNS: [(Model, &str, &str, &str); 6] = [
    (Model::SyncRest, "open-loop", "rest", "nothing"),
    (Model::SyncRest, "open-loop", "grpc", "nothing"),
    (Model::SyncRest, "open-delay", "rest", "2 s slower"),
    (Model::SyncRest, "open-delay", "grpc", "2 s slower"),
    (Model::AsyncRabbitmq, "outage", "amqp", "away 60 s"),
    (Model::StreamingKafka, "outage", "kafka", "away 60 s"),
];

/// Width of the figure's windows of arrivals.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Milliseconds as the table writes them.
pub fn five(p: Option<Percentiles>) -> String {
    p.map_or_else(
        || "—".to_owned(),
        |p| {
            let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
            format!("{} · {} · {} · {} · {}", ms(p.p50), ms(p.p90), ms(p.p99), ms(p.p999), ms(p.max))
        },
    )
}

/// `mode`'s rows of one run.
fn run_rows(all: &[LoadRow], mode: Mode, experiment: &str, over: &str) -> Vec<LoadRow> {
    all.iter().filter(|r| r.mode == mode && r.experiment == experiment && r.over == over).cloned().collect()
}

/// Every model's rows in `out/`, read once.
pub struct Loads(Vec<(Model, Vec<LoadRow>)>);

impl Loads {
    pub fn read(out: &Path) -> Self {
        Loads(Model::ALL.iter().map(|m| (*m, rows::read(out, *m).unwrap_or_default())).collect())
    }

    fn of(&self, model: Model, mode: Mode, experiment: &str, over: &str) -> Vec<LoadRow> {
        self.0.iter().find(|(m, _)| *m == model).map_or_else(Vec::new, |(_, all)| run_rows(all, mode, experiment, over))
    }

    /// Accept and completion percentiles of one run's orders meant to arrive before
    /// `until_ms` (from the first), `None` if it has none.
    pub fn percentiles(
        &self,
        model: Model,
        mode: Mode,
        experiment: &str,
        over: &str,
        until_ms: f64,
    ) -> Option<(Option<Percentiles>, Option<Percentiles>)> {
        let rows: Vec<LoadRow> = self.of(model, mode, experiment, over).into_iter().filter(|r| r.intended_ms.0 < until_ms).collect();
        (!rows.is_empty()).then(|| rows::percentiles(&rows))
    }

    /// The table of `mode`, or `None` if no part has open-loop rows of it.
    pub fn table(&self, mode: Mode) -> Option<String> {
        let mut table = Vec::new();
        for (model, experiment, over, fault) in RUNS {
            let rows = self.of(model, mode, experiment, over);
            if rows.is_empty() {
                continue;
            }
            let (accept, completion) = rows::percentiles(&rows);
            table.push(vec![
                model.name().to_owned(),
                format!("`{experiment}`"),
                over.to_owned(),
                fault.to_owned(),
                rows.len().to_string(),
                accept.map_or(0, |p| p.count).to_string(),
                completion.map_or(0, |p| p.count).to_string(),
                five(accept),
                five(completion),
            ]);
        }
        if table.is_empty() {
            return None;
        }
        let header = [
            "model",
            "experiment",
            "over",
            "Inventory",
            "orders",
            "accepted",
            "completed",
            "accept p50 · p90 · p99 · p99.9 · max (ms)",
            "completion p50 · p90 · p99 · p99.9 · max (ms)",
        ];
        Some(markdown_table(&header, &table))
    }

    /// The p99 of accept and completion per window of arrivals, each model a colour; the
    /// Inventory outage of Parts B and C (`window`, seconds from the first arrival) shaded.
    pub fn figure(&self, out: &Path, mode: Mode, window: Option<(f64, f64)>) -> anyhow::Result<Option<String>> {
        let mut series = Vec::new();
        let p99s = |rows: &[LoadRow], accept: bool| -> Vec<(f64, f64)> {
            let timed: Vec<crate::load::Timed> = rows.iter().map(LoadRow::timed).collect();
            crate::load::timeline::windows(&timed, WINDOW)
                .into_iter()
                .filter_map(|w| {
                    let p = if accept { w.accept } else { w.completion }?;
                    Some(((w.from_ms as f64 + WINDOW.as_millis() as f64 / 2.0) / 1e3, p.p99.as_secs_f64()))
                })
                .collect()
        };
        let a = self.of(Model::SyncRest, mode, "open-delay", "rest");
        if !a.is_empty() {
            series.push(Series::line("A open-delay (REST): accept = completion", p99s(&a, true)));
        }
        for (model, name) in [(Model::AsyncRabbitmq, "B"), (Model::StreamingKafka, "C")] {
            let rows = self.of(model, mode, "outage", if model == Model::AsyncRabbitmq { "amqp" } else { "kafka" });
            if rows.is_empty() {
                continue;
            }
            series.push(Series { dashed: true, ..Series::line(format!("{name} outage: accept"), p99s(&rows, true)) });
            series.push(Series::line(format!("{name} outage: completion"), p99s(&rows, false)));
        }
        if series.is_empty() {
            return Ok(None);
        }
        let chart = Chart {
            title: format!("Accept and completion p99 per {} s of arrivals, 20 orders/s ({mode})", WINDOW.as_secs()),
            x_label: "seconds since the first order was meant to arrive".into(),
            y_label: "latency from the intended start (s)".into(),
            x_log: false,
            series,
            shaded: window.map_or_else(Vec::new, |w| window_span(Some(w), [], "B, C: Inventory away")),
            y_max: None,
        };
        write(out, format!("load_latency_{mode}.svg"), &chart)
    }
}
