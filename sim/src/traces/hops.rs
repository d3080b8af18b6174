//! Where an order's time goes, hop by hop: each kind of span (a service and what it did — an
//! HTTP call, a publish until its confirm, a message handled, its store commit inside it), and
//! each wait between a `publish` ending and the `process` span that handled it starting (the
//! time in the queue or the log), with the median and p99 over the orders that had it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::spans::{by_order, SpanRow};
use crate::reporting::percentile;

/// One hop's durations over the orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub name: String,
    /// How many times it was measured (a redelivered message is handled, and waits, again).
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The wait before a `process` span: from the end of the span it links to (the `publish`) to
/// its start, named after where it waited; 0 when the handling began first (RabbitMQ may
/// deliver a message before the publisher has its confirm, which ends the `publish` span).
fn wait(spans: &[&SpanRow], process: &SpanRow) -> Option<(String, f64)> {
    if process.link_id.is_empty() {
        return None;
    }
    let published = spans.iter().find(|s| s.span_id == process.link_id)?;
    let place = process.name.strip_prefix("process ").unwrap_or(&process.name);
    Some((format!("{}: waiting in {place}", process.service), (process.start_ms.0 - published.end_ms()).max(0.0)))
}

/// Every hop of `rows`' orders, in the order an order first meets it.
pub fn hops(rows: &[SpanRow]) -> Vec<Hop> {
    let mut seen: Vec<String> = Vec::new();
    let mut durations: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut add = |name: String, ms: f64| {
        if !seen.contains(&name) {
            seen.push(name.clone());
        }
        durations.entry(name).or_default().push(Duration::from_secs_f64(ms / 1e3));
    };
    for (_, spans) in by_order(rows) {
        for span in &spans {
            if let Some((name, ms)) = wait(&spans, span) {
                add(name, ms);
            }
            add(span.hop(), span.ms.0);
        }
    }
    seen.into_iter()
        .map(|name| {
            let mut all = durations.remove(&name).unwrap_or_default();
            all.sort();
            let ms = |p| percentile(&all, p).as_secs_f64() * 1e3;
            Hop { n: all.len(), p50_ms: ms(50.0), p99_ms: ms(99.0), name }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::csv::Fixed;

    fn span(order: &str, id: &str, name: &str, link: &str, start: f64, ms: f64) -> SpanRow {
        SpanRow {
            order_id: order.into(),
            service: "inventory".into(),
            name: name.into(),
            span_id: id.into(),
            link_id: link.into(),
            start_ms: Fixed(start),
            ms: Fixed(ms),
            ..SpanRow::default()
        }
    }

    #[test]
    fn the_wait_in_a_queue_is_from_the_publish_ending_to_the_handling_starting() {
        let rows = vec![
            span("o-1", "a", "publish OrderPlaced", "", 0.0, 2.0),
            span("o-1", "b", "process inventory.order-placed", "a", 10.0, 1.0),
            span("o-2", "c", "publish OrderPlaced", "", 5.0, 4.0),
            span("o-2", "d", "process inventory.order-placed", "c", 60_009.0, 1.0),
        ];
        let hops = hops(&rows);
        let waited = hops.iter().find(|h| h.name == "inventory: waiting in inventory.order-placed").expect("the wait");
        assert_eq!((waited.n, waited.p50_ms, waited.p99_ms), (2, 8.0, 60_000.0));
        let published = hops.iter().find(|h| h.name == "inventory: publish OrderPlaced").expect("the publish");
        assert_eq!((published.n, published.p50_ms, published.p99_ms), (2, 2.0, 4.0));
    }
}
