//! The report's figures, as SVG written straight from Rust: line charts with axes, ticks, a
//! legend and shaded spans — all these figures need. (A plotting crate would pull in a font
//! stack to measure text; an SVG viewer lays text out itself.)
//!
//! This is the chart engine only. Each model draws its own figures (`<model>/figures.rs`) from
//! the typed rows of its CSV files in `out/`, per mode, so a figure always shows exactly the
//! rows the tables were computed from.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const PALETTE: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// A point whose y is NaN is a gap: nothing was measured there, and the line breaks
    /// instead of bridging it (see [`Series::with_gaps`]).
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Draw a marker at each point (and no line).
    pub markers: bool,
}

impl Series {
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, dashed: false, markers: false }
    }

    /// A line through the measured points that breaks where a sample has no value (an empty
    /// CSV cell: the quantity could not be read then).
    pub fn with_gaps(name: impl Into<String>, points: impl IntoIterator<Item = (f64, Option<f64>)>) -> Self {
        Series::line(name, points.into_iter().map(|(x, y)| (x, y.unwrap_or(f64::NAN))).collect())
    }

    /// The runs of measured points between gaps.
    fn runs(&self) -> impl Iterator<Item = &[(f64, f64)]> {
        self.points.split(|(_, y)| y.is_nan()).filter(|run| !run.is_empty())
    }
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (positive values only).
    pub x_log: bool,
    pub series: Vec<Series>,
    /// Spans of x to shade, with a label.
    pub shaded: Vec<(f64, f64, String)>,
    /// The top of the y axis, when it has a natural one (100 %).
    pub y_max: Option<f64>,
}

/// `text` as SVG text (its markup characters escaped).
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Round tick steps (1, 2, 5 × 10^k) giving about `n` ticks over `lo..hi`.
fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / n as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    ticks
}

fn label(value: f64) -> String {
    if value.abs() >= 1000.0 && (value / 1000.0).fract() == 0.0 {
        format!("{}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

impl Chart {
    fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(self.shaded.iter().flat_map(|s| [s.0, s.1]));
        let ys = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let y1 = ys.fold(0f64, f64::max);
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if self.x_log {
            x0 = 10f64.powf(x0.max(1e-3).log10().floor());
            x1 = 10f64.powf(x1.max(x0 * 10.0).log10().ceil());
        } else if x1 <= x0 {
            x1 = x0 + 1.0;
        } else if x0 > 0.0 && x0 < (x1 - x0) * 0.1 {
            x0 = 0.0;
        }
        // The top of the y axis: the first round tick at or above the highest value + 5 %.
        let y1 = if let Some(top) = self.y_max {
            top
        } else if y1 <= 0.0 {
            1.0
        } else {
            let ticks = linear_ticks(0.0, y1 * 1.05, 6);
            let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { y1 * 1.05 };
            (y1 * 1.05 / step).ceil() * step
        };
        ((x0, x1), (0.0, y1))
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let ((x0, x1), (y0, y1)) = self.bounds();
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let sx = |x: f64| {
            let f = if self.x_log { (x.max(x0).log10() - x0.log10()) / (x1.log10() - x0.log10()) } else { (x - x0) / (x1 - x0) };
            LEFT + f * plot_w
        };
        let sy = |y: f64| TOP + plot_h - (y - y0) / (y1 - y0) * plot_h;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(svg, r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#, WIDTH / 2.0, escape(&self.title));
        for (a, b, text) in &self.shaded {
            let (xa, xb) = (sx(*a), sx(*b));
            let _ = writeln!(
                svg,
                r##"<rect x="{xa:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#d62728" fill-opacity="0.12" data-from="{a:.3}" data-until="{b:.3}"/>"##,
                (xb - xa).max(1.0)
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{}" fill="#a01010" text-anchor="middle">{}</text>"##,
                (xa + xb) / 2.0,
                TOP + plot_h - 8.0,
                escape(text)
            );
        }
        // Grid and ticks.
        for t in linear_ticks(y0, y1, 6) {
            let y = sy(t);
            let _ = writeln!(svg, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e0e0e0"/>"##, LEFT + plot_w);
            let _ = writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, label(t));
        }
        let x_ticks: Vec<f64> = if self.x_log {
            let mut ticks = Vec::new();
            let mut decade = x0;
            while decade <= x1 * 1.0001 {
                ticks.extend([decade, decade * 2.0, decade * 5.0].into_iter().filter(|t| *t <= x1 * 1.0001));
                decade *= 10.0;
            }
            ticks
        } else {
            linear_ticks(x0, x1, 8)
        };
        for t in x_ticks {
            let x = sx(t);
            let _ = writeln!(svg, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#f0f0f0"/>"##, TOP + plot_h);
            let _ = writeln!(svg, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, TOP + plot_h + 18.0, label(t));
        }
        let _ = writeln!(svg, r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 16.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Series, then the legend.
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if s.markers {
                for (x, y) in s.runs().flatten() {
                    let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="none" stroke="{color}"/>"#, sx(*x), sy(*y));
                }
            } else {
                for run in s.runs() {
                    let path: Vec<String> = run.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
                    let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
                    // The data a line spans, for a reader (and a test) to check against the CSV.
                    let (first, last) = (run[0].0, run[run.len() - 1].0);
                    let _ = writeln!(
                        svg,
                        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.8"{dash} data-series="{}" data-x="{first:.3} {last:.3}"/>"#,
                        path.join(" "),
                        escape(&s.name)
                    );
                }
            }
        }
        // About 7 px per character at 12 px sans-serif.
        let legend_w = self.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64 * 7.0 + 44.0;
        let legend_h = self.series.len() as f64 * 18.0 + 8.0;
        let mut pixels: Vec<(f64, f64)> =
            self.series.iter().flat_map(|s| s.runs().flat_map(|run| trace(run, s.markers, &sx, &sy))).collect();
        // The shaded spans' labels, centred at the bottom, are not to be covered either.
        for (a, b, text) in &self.shaded {
            let (centre, half) = ((sx(*a) + sx(*b)) / 2.0, text.chars().count() as f64 * 3.5);
            pixels.extend((0..=(2.0 * half) as usize).step_by(3).map(|dx| (centre - half + dx as f64, TOP + plot_h - 12.0)));
        }
        let (lx, mut ly) = legend_place(legend_w, legend_h, &pixels);
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="{legend_w:.0}" height="{legend_h}" fill="white" fill-opacity="0.85" stroke="#ccc"/>"##,
            lx - 8.0,
            ly - 14.0
        );
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if s.markers {
                let _ = writeln!(svg, r#"<circle cx="{}" cy="{}" r="3" fill="none" stroke="{color}"/>"#, lx + 10.0, ly - 4.0);
            } else {
                let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
                let _ = writeln!(
                    svg,
                    r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2"{dash}/>"#,
                    ly - 4.0,
                    lx + 20.0,
                    ly - 4.0
                );
            }
            let _ = writeln!(svg, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 26.0, escape(&s.name));
            ly += 18.0;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The pixels a series covers: its points, and for a line also points every 3 px along each
/// segment (a long straight segment has no points in between).
fn trace(points: &[(f64, f64)], markers: bool, sx: &impl Fn(f64) -> f64, sy: &impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    let px: Vec<(f64, f64)> = points.iter().map(|(x, y)| (sx(*x), sy(*y))).collect();
    if markers {
        return px;
    }
    let mut covered = px.clone();
    for pair in px.windows(2) {
        let ((xa, ya), (xb, yb)) = (pair[0], pair[1]);
        let steps = ((xb - xa).hypot(yb - ya) / 3.0).ceil() as usize;
        covered.extend((1..steps).map(|i| {
            let f = i as f64 / steps as f64;
            (xa + f * (xb - xa), ya + f * (yb - ya))
        }));
    }
    covered
}

/// Where the legend goes (the anchor its entries are drawn from): of the plot's four corners
/// and the middle of its top and bottom edges, the one whose box covers the fewest drawn
/// pixels — the top-right corner first on a tie. Which corner is empty depends on the data
/// (the real run's latencies sit far left of the simulation's), so it is not fixed per chart.
fn legend_place(w: f64, h: f64, pixels: &[(f64, f64)]) -> (f64, f64) {
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let (left, right, centre) = (LEFT + 18.0, LEFT + plot_w - w - 4.0, LEFT + (plot_w - w) / 2.0 + 8.0);
    // The box spans `ly - 14` to `ly - 14 + h`; it keeps 16 px from the top and 10 from the bottom.
    let (top, bottom) = (TOP + 30.0, TOP + plot_h - 10.0 - h + 14.0);
    let candidates = [(right, top), (left, top), (right, bottom), (left, bottom), (centre, top), (centre, bottom)];
    let covered = |(lx, ly): (f64, f64)| {
        // The box drawn around the entries, with a margin of a few pixels.
        let (x0, y0, x1, y1) = (lx - 12.0, ly - 18.0, lx - 8.0 + w + 4.0, ly - 14.0 + h + 4.0);
        pixels.iter().filter(|(x, y)| (x0..=x1).contains(x) && (y0..=y1).contains(y)).count()
    };
    candidates.into_iter().min_by_key(|c| covered(*c)).expect("six candidates")
}

/// The span to shade where something was down, read off the samples when no recorded window
/// is at hand: from the first sample taken while it was down to the first sample after that
/// found it back (or the last sample, if none did), with `label`; none if it never was. `down`
/// gives each sample's time (s) and whether it was down then. The span is as fine as the
/// sampling; a recorded window ([`window_span`]) is exact.
pub fn down_span(down: impl IntoIterator<Item = (f64, bool)>, label: &str) -> Vec<(f64, f64, String)> {
    let samples: Vec<(f64, bool)> = down.into_iter().collect();
    let Some(first) = samples.iter().position(|(_, d)| *d) else { return Vec::new() };
    let back = samples[first..].iter().find(|(_, d)| !*d).or(samples.last()).map_or(samples[first].0, |(t, _)| *t);
    vec![(samples[first].0, back, label.to_owned())]
}

/// The span to shade for a window: the one recorded as it happened (seconds on the samples'
/// clock, from the moment something was taken away to the moment it served again) when there
/// is one, else the one read off the samples ([`down_span`]); with `label`.
pub fn window_span(recorded: Option<(f64, f64)>, down: impl IntoIterator<Item = (f64, bool)>, label: &str) -> Vec<(f64, f64, String)> {
    match recorded {
        Some((from, until)) => vec![(from, until, label.to_owned())],
        None => down_span(down, label),
    }
}

/// Writes the chart as `out/name` (SVG) and, beside it, the same figure as PNG
/// ([`super::raster`]), unless it has nothing to show; returns the SVG file's name.
pub fn write(out: &Path, name: String, chart: &Chart) -> anyhow::Result<Option<String>> {
    if chart.series.iter().all(|s| s.points.is_empty()) {
        return Ok(None);
    }
    write_svg(out, &name, &chart.svg())?;
    Ok(Some(name))
}

/// Writes the figure `svg` as `out/name` and, beside it, as PNG ([`super::raster`]).
pub fn write_svg(out: &Path, name: &str, svg: &str) -> anyhow::Result<()> {
    let path = out.join(name);
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    let png = path.with_extension("png");
    std::fs::write(&png, super::raster::png(svg)?).with_context(|| format!("writing {}", png.display()))
}

/// The PNG written beside the SVG figure `name`.
fn png_name(name: &str) -> String {
    Path::new(name).with_extension("png").to_string_lossy().into_owned()
}

/// One figure in the report: the SVG `name` shown, its caption, and links to it and its PNG.
pub fn figure(name: &str, caption: &str) -> String {
    let png = png_name(name);
    format!("![{caption}]({name})\n\n*{caption}* — [`{name}`]({name}), [`{png}`]({png})\n")
}

/// A report's "Figures" subsection linking the figures drawn.
pub fn figures(drawn: Vec<(Option<String>, &str)>) -> String {
    let lines: Vec<String> = drawn.into_iter().filter_map(|(name, caption)| name.map(|n| figure(&n, caption))).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\n### Figures\n\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(linear_ticks(0.0, 1000.0, 5), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(linear_ticks(0.0, 7.0, 6), vec![0.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn a_chart_draws_each_series_and_the_shaded_span() {
        let chart = Chart {
            title: "t <1>".into(),
            series: vec![Series::line("a", vec![(0.0, 1.0), (1.0, 2.0)]), Series { markers: true, ..Series::line("b", vec![(0.5, 1.0)]) }],
            shaded: vec![(0.2, 0.4, "down".into())],
            ..Chart::default()
        };
        let svg = chart.svg();
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2, "one marker, one legend marker");
        assert!(svg.contains("t &lt;1&gt;") && svg.contains(">down</text>"));
    }

    #[test]
    fn the_legend_goes_where_the_lines_are_not() {
        // A line near the top from left to right: the legend must sit at the bottom.
        let along_the_top = Chart {
            series: vec![Series::line("a", vec![(0.0, 9.0), (10.0, 9.0)]), Series::line("b", vec![(0.0, 1.0), (1.0, 1.0)])],
            y_max: Some(10.0),
            ..Chart::default()
        };
        let legend_box_y = |svg: &str| -> f64 {
            let rect = svg.lines().find(|l| l.contains(r##"stroke="#ccc""##)).expect("a legend box");
            rect.split("y=\"").nth(1).and_then(|r| r.split('"').next()).and_then(|y| y.parse().ok()).expect("its y")
        };
        assert!(legend_box_y(&along_the_top.svg()) > HEIGHT / 2.0, "the legend is drawn over the line at the top");
        // The same line near the bottom: the legend goes to the top.
        let along_the_bottom =
            Chart { series: vec![Series::line("a", vec![(0.0, 1.0), (10.0, 1.0)])], y_max: Some(10.0), ..Chart::default() };
        assert!(legend_box_y(&along_the_bottom.svg()) < HEIGHT / 2.0, "the legend is drawn over the line at the bottom");
    }
}
