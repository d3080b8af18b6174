//! Traces: one order seen crossing each model, from the spans the services made
//! (`campus::telemetry::trace`) — in the simulation on virtual time, for real on the wall clock.
//!
//! Each part traces the runs that show its model best and worst ([`scenarios`]): Part A's
//! `open-loop` (20 orders a second, Parts B's and C's load) and `failure-down` (Inventory
//! refusing connections); Parts B's and C's `outage` (20 orders a second, Inventory away 60 s).
//! What a traced run's services exported is written as it came, OTLP JSON, one line per
//! scenario (`traces_<model>_<mode>.jsonl`, each line's services tagged `campus.scenario`): a
//! collector or Jaeger reads it. Each order's spans are written as rows
//! (`trace_spans_<model>.csv`, [`spans`]), and the report's section is drawn from those rows
//! alone: per model and mode, where an order's time goes hop by hop ([`hops`]: median and p99
//! over every order of the typical scenario), and two waterfalls ([`waterfall`]) — a typical
//! order (the median, end to end, of the orders that took under a second and failed nowhere)
//! and the order caught by the fault (Part A: the first order refused; B and C: the order that
//! took longest end to end).

pub mod hops;
pub mod spans;
pub mod waterfall;

use std::path::Path;

use anyhow::Context;
use campus::telemetry::trace::otlp::common::v1::{any_value, AnyValue, KeyValue};
use campus::telemetry::trace::Request;
use campus::Model;

use crate::reporting::csv;
use crate::reporting::plot::{figure, write_svg};
use crate::reporting::{markdown_table, update_report};
use crate::Mode;
use spans::{by_order, end_to_end_ms, SpanRow};

/// The section's key in `report.md`.
pub const KEY: &str = "traces";

/// The resource attribute naming the scenario a trace file's line is of.
pub const SCENARIO: &str = "campus.scenario";

/// The spans a run's services exported (none if it was not traced).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traced(pub Vec<Request>);

// Spans compare by value; nothing in them is a NaN.
impl Eq for Traced {}

/// A model's traced scenarios: the typical one and the one whose fault catches an order.
pub fn scenarios(model: Model) -> (&'static str, &'static str) {
    match model {
        Model::SyncRest => ("open-loop", "failure-down"),
        Model::AsyncRabbitmq | Model::StreamingKafka => ("outage", "outage"),
    }
}

/// Whether `scenario` of `model` is traced.
pub fn traced(model: Model, scenario: &str) -> bool {
    let (typical, caught) = scenarios(model);
    scenario == typical || scenario == caught
}

fn spans_csv(model: Model) -> String {
    format!("trace_spans_{}.csv", model.name())
}

/// `requests` as one, each service's spans together (a process writes a line per span).
fn regrouped(requests: &[Request]) -> Request {
    let mut one = Request::default();
    for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
        let same = one.resource_spans.iter_mut().find(|r| r.resource == resource_spans.resource && r.scope_spans.len() == 1);
        match (same, resource_spans.scope_spans.as_slice()) {
            (Some(kept), [scope]) if kept.scope_spans[0].scope == scope.scope => {
                kept.scope_spans[0].spans.extend(scope.spans.iter().cloned())
            }
            _ => one.resource_spans.push(resource_spans.clone()),
        }
    }
    one
}

/// Writes the traced `runs` (scenario, spans) of `model` in `mode`: the OTLP file and the rows.
/// Nothing if none was traced (the files of an earlier run stay, as with every part's CSVs).
pub fn write(out: &Path, model: Model, mode: Mode, runs: &[(&str, &Traced)]) -> anyhow::Result<()> {
    let runs: Vec<&(&str, &Traced)> = runs.iter().filter(|(_, traced)| !traced.0.is_empty()).collect();
    if runs.is_empty() {
        return Ok(());
    }
    let mut lines = String::new();
    let mut rows = Vec::new();
    for (scenario, traced) in runs {
        let mut one = regrouped(&traced.0);
        for resource in one.resource_spans.iter_mut().filter_map(|r| r.resource.as_mut()) {
            let value = AnyValue { value: Some(any_value::Value::StringValue((*scenario).to_owned())) };
            resource.attributes.push(KeyValue { key: SCENARIO.into(), value: Some(value), ..KeyValue::default() });
        }
        lines.push_str(&serde_json::to_string(&one)?);
        lines.push('\n');
        rows.extend(spans::rows(mode, scenario, &traced.0));
    }
    let path = out.join(format!("traces_{}_{mode}.jsonl", model.name()));
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;
    csv::merge(&out.join(spans_csv(model)), mode, rows)
}

/// The rows of `model` measured in `mode` (none if its file is missing or of another version).
fn read(out: &Path, model: Model, mode: Mode) -> Vec<SpanRow> {
    let path = out.join(spans_csv(model));
    if !path.exists() {
        return Vec::new();
    }
    csv::read::<SpanRow>(&path).map(|rows| rows.into_iter().filter(|r| r.mode == mode).collect()).unwrap_or_default()
}

/// The typical order of `rows` (of the typical scenario): the median, end to end, of the
/// orders that failed nowhere and took under a second.
pub fn typical<'r>(rows: &'r [SpanRow], scenario: &str) -> Option<(&'r str, Vec<&'r SpanRow>)> {
    let mut orders: Vec<(&str, Vec<&SpanRow>)> = by_order(rows)
        .into_iter()
        .filter(|(_, spans)| spans[0].scenario == scenario && spans.iter().all(|s| s.failed == 0) && end_to_end_ms(spans) < 1_000.0)
        .collect();
    orders.sort_by(|a, b| end_to_end_ms(&a.1).total_cmp(&end_to_end_ms(&b.1)));
    let middle = orders.len().checked_sub(1)? / 2;
    Some(orders.swap_remove(middle))
}

/// The order the fault caught: Part A's first refused order; B's and C's longest end to end.
pub fn caught<'r>(model: Model, rows: &'r [SpanRow], scenario: &str) -> Option<(&'r str, Vec<&'r SpanRow>)> {
    let orders = by_order(rows).into_iter().filter(|(_, spans)| spans[0].scenario == scenario);
    match model {
        Model::SyncRest => {
            orders.filter(|(_, spans)| spans.iter().any(|s| s.failed == 1)).min_by(|a, b| a.1[0].start_ms.0.total_cmp(&b.1[0].start_ms.0))
        }
        _ => orders.max_by(|a, b| end_to_end_ms(&a.1).total_cmp(&end_to_end_ms(&b.1))),
    }
}

fn ms(v: f64) -> String {
    waterfall::duration(v)
}

/// The section of one model in one mode, its figures written; empty if it has no rows.
fn model_section(out: &Path, model: Model, mode: Mode) -> anyhow::Result<String> {
    let rows = read(out, model, mode);
    if rows.is_empty() {
        return Ok(String::new());
    }
    let (typical_scenario, caught_scenario) = scenarios(model);
    let clock = if mode == Mode::Sim { "virtual time" } else { "wall clock, µs resolution" };
    let mut text = format!("### {} ({mode})\n\n", model.name());
    let of_typical: Vec<SpanRow> = rows.iter().filter(|r| r.scenario == typical_scenario).cloned().collect();
    if !of_typical.is_empty() {
        let orders = by_order(&of_typical).len();
        let table: Vec<Vec<String>> =
            hops::hops(&of_typical).into_iter().map(|h| vec![h.name, h.n.to_string(), ms(h.p50_ms), ms(h.p99_ms)]).collect();
        let outage = match model {
            Model::SyncRest => "",
            _ => " Most of them arrive while Inventory is away (60 s of the run's 80): the wait's median and p99 are the outage's.",
        };
        text.push_str(&format!(
            "Where an order's time goes in `{typical_scenario}` ({orders} orders; {clock}; nearest-rank percentiles over every \
             time the hop was measured, from `{}`).{outage}\n\n",
            spans_csv(model)
        ));
        text.push_str(&markdown_table(&["hop (service: span)", "n", "median", "p99"], &table));
    }
    let mut drawn = Vec::new();
    if let Some((order, spans)) = typical(&rows, typical_scenario) {
        let name = format!("trace_{}_{mode}_typical.svg", model.name());
        let title = format!("{} ({mode}): a typical order, {order}, {}", model.name(), ms(end_to_end_ms(&spans)));
        write_svg(out, &name, &waterfall::svg(&title, &spans))?;
        drawn.push(figure(&name, &format!("{}, {mode}: a typical order of `{typical_scenario}` (the median end to end of those under 1 s that failed nowhere), span by span", model.name())));
    }
    if let Some((order, spans)) = caught(model, &rows, caught_scenario) {
        let name = format!("trace_{}_{mode}_caught.svg", model.name());
        let title = format!("{} ({mode}): {order}, caught by the fault, {}", model.name(), ms(end_to_end_ms(&spans)));
        write_svg(out, &name, &waterfall::svg(&title, &spans))?;
        let which = match model {
            Model::SyncRest => "the first order refused while Inventory was down",
            _ => "the order that took longest end to end, waiting in the queue or log while Inventory was away",
        };
        drawn.push(figure(
            &name,
            &format!(
                "{}, {mode}: {which} (`{caught_scenario}`); a dashed line is a wait between a publish and its handling, red a failed span",
                model.name()
            ),
        ));
    }
    text.push('\n');
    text.push_str(&drawn.join("\n"));
    Ok(text)
}

/// The report's traces section, from the span rows in `out/` of every model and mode.
pub fn update(out: &Path) -> anyhow::Result<()> {
    let mut sections = Vec::new();
    for mode in [Mode::Sim, Mode::Real] {
        for model in Model::ALL {
            let section = model_section(out, model, mode)?;
            if !section.is_empty() {
                sections.push(section);
            }
        }
    }
    if sections.is_empty() {
        return Ok(());
    }
    let body = format!(
        "## Where an order's time goes: traces\n\nEvery service makes spans (OpenTelemetry) and hands the trace context on in W3C \
         `traceparent` form: an HTTP header, an AMQP message header, a Kafka record header. A synchronous call is a parent and its \
         child; a message handled is a `process` span linked to (and under) the `publish` span that sent it, so the wait in the queue \
         or the log is the gap between them. The spans themselves are in `traces_<model>_<mode>.jsonl` (OTLP JSON, one line per \
         scenario), each order's in `trace_spans_<model>.csv`. In the simulation a link costs whole milliseconds of virtual time \
         and a store's commit, or a hand-over inside the broker, costs none: a 0 there is what the model leaves out, not \
         something free; the real tables measure it.\n\n{}",
        sections.join("\n")
    );
    update_report(out, KEY, &body)
}
