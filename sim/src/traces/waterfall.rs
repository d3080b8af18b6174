//! One order as a waterfall: a bar per span from its start to its end on the order's own clock
//! (0 at its first span), a dashed line where a message waited between its `publish` and the
//! `process` span that handled it, failed spans in red.

use std::fmt::Write as _;

use super::spans::SpanRow;
use crate::reporting::plot::escape;

const WIDTH: f64 = 960.0;
const LABEL: f64 = 330.0;
const RIGHT: f64 = 90.0;
const TOP: f64 = 56.0;
const ROW: f64 = 24.0;
const BOTTOM: f64 = 72.0;

/// The legend: what each colour is.
const LEGEND: [(&str, &str); 5] = [
    ("#1f77b4", "request served"),
    ("#2ca02c", "call made"),
    ("#ff7f0e", "publish (until confirmed)"),
    ("#9467bd", "message handled"),
    ("#d62728", "failed"),
];

fn colour(row: &SpanRow) -> &'static str {
    if row.failed == 1 {
        return "#d62728";
    }
    match row.kind.as_str() {
        "server" => "#1f77b4",
        "client" => "#2ca02c",
        "producer" => "#ff7f0e",
        "consumer" => "#9467bd",
        _ => "#7f7f7f",
    }
}

/// A duration as read on the figure: ms below two seconds, else seconds.
pub fn duration(ms: f64) -> String {
    if ms == 0.0 {
        "0".into()
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 2_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}

/// The waterfall of one order's `spans` (in start order) as SVG, titled `title`.
pub fn svg(title: &str, spans: &[&SpanRow]) -> String {
    let origin = spans.iter().map(|s| s.start_ms.0).fold(f64::INFINITY, f64::min);
    let origin = if origin.is_finite() { origin } else { 0.0 };
    let end = spans.iter().map(|s| s.end_ms() - origin).fold(0.0, f64::max).max(1e-3);
    let height = TOP + ROW * spans.len() as f64 + BOTTOM;
    let plot = WIDTH - LABEL - RIGHT;
    let x = |ms: f64| LABEL + (ms - origin) / end * plot;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" font-size="15" font-weight="bold" text-anchor="middle">{}</text>
"#,
        WIDTH / 2.0,
        escape(title)
    );
    // The time axis: five ticks over the order's span.
    let axis_y = TOP + ROW * spans.len() as f64 + 8.0;
    let _ = writeln!(svg, r##"<line x1="{LABEL}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/>"##, LABEL + plot);
    for i in 0..=4 {
        let ms = end * f64::from(i) / 4.0;
        let tx = LABEL + plot * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{tx}" y1="{TOP}" x2="{tx}" y2="{axis_y}" stroke="#eee"/><text x="{tx}" y="{}" text-anchor="middle">{}</text>"##,
            axis_y + 16.0,
            duration(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">time since the order's first span</text>"#,
        LABEL + plot / 2.0,
        axis_y + 36.0
    );
    let mut lx = LABEL;
    for (colour, what) in LEGEND {
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{what}</text>"#,
            axis_y + 46.0,
            lx + 16.0,
            axis_y + 56.0
        );
        lx += 26.0 + 7.2 * what.len() as f64;
    }
    for (i, span) in spans.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let (x0, x1) = (x(span.start_ms.0), x(span.end_ms()));
        let _ = writeln!(svg, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, LABEL - 8.0, y + 15.0, escape(&span.hop()));
        if let Some(published) = spans.iter().find(|s| !span.link_id.is_empty() && s.span_id == span.link_id) {
            let from = x(published.end_ms());
            if x0 - from > 1.0 {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{from}" y1="{}" x2="{x0}" y2="{}" stroke="#9467bd" stroke-dasharray="4 3"/>"##,
                    y + 11.0,
                    y + 11.0
                );
            }
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{x0}" y="{}" width="{}" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y + 4.0,
            (x1 - x0).max(2.0),
            colour(span),
            x1.max(x0 + 2.0) + 4.0,
            y + 15.0,
            duration(span.ms.0)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::csv::Fixed;

    #[test]
    fn each_span_is_a_bar_and_a_wait_is_a_dashed_line() {
        let publish = SpanRow {
            service: "order".into(),
            name: "publish OrderPlaced".into(),
            kind: "producer".into(),
            span_id: "a".into(),
            start_ms: Fixed(0.0),
            ms: Fixed(2.0),
            ..SpanRow::default()
        };
        let process = SpanRow {
            service: "inventory".into(),
            name: "process inventory.order-placed".into(),
            kind: "consumer".into(),
            span_id: "b".into(),
            link_id: "a".into(),
            start_ms: Fixed(60_002.0),
            ms: Fixed(3.0),
            failed: 1,
            ..SpanRow::default()
        };
        let svg = svg("one order", &[&publish, &process]);
        assert_eq!(svg.matches("<rect x=").count(), 2 + LEGEND.len());
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("#d62728"), "the failed span is red");
        assert!(svg.contains(">60.0 s</text>"), "the axis ends at the order's end");
    }
}
