//! The spans of a run as rows, one order at a time: each span of an order — those that name it
//! (`campus.order_id`), those under them, and the requests they were made for (a Part C batch's
//! `POST /orders`, under which many orders were appended) — with where it starts, how long it
//! took, its parent and the span it links to.

use std::collections::BTreeMap;

use campus::telemetry::trace::otlp::common::v1::any_value::Value;
use campus::telemetry::trace::otlp::common::v1::KeyValue;
use campus::telemetry::trace::{Request, ORDER_ID};
use serde::{Deserialize, Serialize};

use crate::reporting::csv::{Fixed, Row};
use crate::Mode;

/// One span of one order (`trace_spans_<model>.csv`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanRow {
    pub mode: Mode,
    pub scenario: String,
    pub order_id: String,
    pub service: String,
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a trace's root.
    pub parent_id: String,
    /// The span it links to (the `publish` a `process` span handled), or empty.
    pub link_id: String,
    /// Milliseconds from the scenario's first span, at the clock's resolution (virtual in the
    /// simulation; the wall clock, to the microsecond, for real).
    pub start_ms: Fixed<3>,
    pub ms: Fixed<3>,
    /// 1 if the span ended in error (a 5xx, a failed call, a message returned or dead-lettered).
    pub failed: u8,
}

impl Row for SpanRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

impl SpanRow {
    pub fn end_ms(&self) -> f64 {
        self.start_ms.0 + self.ms.0
    }

    /// How the per-hop table names it: its service and its name.
    pub fn hop(&self) -> String {
        format!("{}: {}", self.service, self.name)
    }
}

/// One span as exported, before it is given to an order: ids in hex, the service's name from its
/// resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Flat {
    pub service: String,
    pub name: String,
    pub kind: &'static str,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a trace's root.
    pub parent_id: String,
    pub link_id: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub failed: bool,
    pub order_id: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

fn kind(code: i32) -> &'static str {
    match code {
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "internal",
    }
}

/// Every span of `requests`, flat.
pub fn flatten(requests: &[Request]) -> Vec<Flat> {
    let mut flat = Vec::new();
    for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
        let service = resource_spans.resource.as_ref().and_then(|r| text(&r.attributes, "service.name")).unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            flat.push(Flat {
                service: service.clone(),
                name: span.name.clone(),
                kind: kind(span.kind),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_id: hex(&span.parent_span_id),
                link_id: span.links.first().map(|l| hex(&l.span_id)).unwrap_or_default(),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
                // OTLP's STATUS_CODE_ERROR.
                failed: span.status.as_ref().is_some_and(|s| s.code == 2),
                order_id: text(&span.attributes, ORDER_ID),
            });
        }
    }
    flat
}

/// The rows of every order in `requests` (spans of no order are left out), measured in `mode`
/// during `scenario`: by order, each order's spans by start.
pub fn rows(mode: Mode, scenario: &str, requests: &[Request]) -> Vec<SpanRow> {
    let flat = flatten(requests);
    let by_id: BTreeMap<&str, usize> = flat.iter().enumerate().map(|(i, s)| (s.span_id.as_str(), i)).collect();
    // A span's order: its own, else its parent's (and so on up).
    let order_of = |mut i: usize| -> Option<&str> {
        for _ in 0..flat.len() {
            if let Some(order) = &flat[i].order_id {
                return Some(order.as_str());
            }
            i = *by_id.get(flat[i].parent_id.as_str())?;
        }
        None
    };
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in 0..flat.len() {
        let Some(order) = order_of(i) else { continue };
        members.entry(order).or_default().push(i);
    }
    // ... and the requests its spans were made under, which name no order.
    for spans in members.values_mut() {
        let mut ancestors = Vec::new();
        for &i in spans.iter() {
            let mut at = i;
            while let Some(&parent) = by_id.get(flat[at].parent_id.as_str()) {
                if order_of(parent).is_none() && !ancestors.contains(&parent) {
                    ancestors.push(parent);
                }
                at = parent;
            }
        }
        spans.extend(ancestors);
    }
    let origin = flat.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let ms = |ns: u64| Fixed((ns.saturating_sub(origin)) as f64 / 1e6);
    let mut rows = Vec::new();
    for (order, spans) in members {
        let mut spans = spans;
        // By start; of two starting together (on the simulation's clock), the parent first.
        let depth = |mut i: usize| {
            let mut depth = 0;
            while let Some(&parent) = by_id.get(flat[i].parent_id.as_str()).filter(|_| depth < flat.len()) {
                (i, depth) = (parent, depth + 1);
            }
            depth
        };
        spans.sort_by_key(|&i| (flat[i].start_ns, depth(i), flat[i].end_ns));
        for i in spans {
            let s = &flat[i];
            rows.push(SpanRow {
                mode,
                scenario: scenario.to_owned(),
                order_id: order.to_owned(),
                service: s.service.clone(),
                name: s.name.clone(),
                kind: s.kind.to_owned(),
                trace_id: s.trace_id.clone(),
                span_id: s.span_id.clone(),
                parent_id: s.parent_id.clone(),
                link_id: s.link_id.clone(),
                start_ms: ms(s.start_ns),
                ms: Fixed(s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6),
                failed: u8::from(s.failed),
            });
        }
    }
    rows
}

/// The rows of each order, in the order the rows are in.
pub fn by_order(rows: &[SpanRow]) -> Vec<(&str, Vec<&SpanRow>)> {
    let mut orders: Vec<(&str, Vec<&SpanRow>)> = Vec::new();
    for row in rows {
        match orders.last_mut() {
            Some((order, spans)) if *order == row.order_id && spans[0].scenario == row.scenario => spans.push(row),
            _ => orders.push((row.order_id.as_str(), vec![row])),
        }
    }
    orders
}

/// How long an order took end to end: from its first span's start to its last span's end.
pub fn end_to_end_ms(spans: &[&SpanRow]) -> f64 {
    let start = spans.iter().map(|s| s.start_ms.0).fold(f64::INFINITY, f64::min);
    let end = spans.iter().map(|s| s.end_ms()).fold(0.0, f64::max);
    (end - start).max(0.0)
}

/// How one order's spans hang together: every span's parent is one of them, but for one root
/// per trace; every link names one of them; and one trace holds them all. Its failures, if not.
pub fn connected(spans: &[&SpanRow]) -> Result<(), String> {
    let ids: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let traces: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    if traces.len() != 1 {
        return Err(format!("{} traces: {traces:?}", traces.len()));
    }
    let roots: Vec<&&SpanRow> = spans.iter().filter(|s| !ids.contains(s.parent_id.as_str())).collect();
    if roots.len() != 1 || !roots[0].parent_id.is_empty() {
        let names: Vec<String> = roots.iter().map(|s| format!("{} (parent {:?})", s.hop(), s.parent_id)).collect();
        return Err(format!("not one root: {names:?}"));
    }
    if let Some(dangling) = spans.iter().find(|s| !s.link_id.is_empty() && !ids.contains(s.link_id.as_str())) {
        return Err(format!("{} links to a span not in the trace ({})", dangling.hop(), dangling.link_id));
    }
    Ok(())
}
