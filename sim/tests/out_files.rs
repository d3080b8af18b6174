//! What a run leaves in `out/`, as a reader checks it: every fault window in a figure is shaded
//! exactly over the window the run recorded, no line is drawn through a sample where nothing
//! could be measured (an empty cell), time only moves forward in a series, and every column of
//! every CSV file is explained in `out/README.md`, and every figure has its PNG beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory for one test's results.
fn fresh_dir(name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("out-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    out
}

/// `campus-sim <args> --out <out>`, which must succeed.
fn run_into(out: &Path, args: &[&str]) -> anyhow::Result<()> {
    let run = Command::new(env!("CARGO_BIN_EXE_campus-sim")).args(args).arg("--out").arg(out).output()?;
    anyhow::ensure!(run.status.success(), "{args:?}: {}", String::from_utf8_lossy(&run.stderr));
    Ok(())
}

/// One simulated run of Parts B and C, into a directory of its own.
fn graded_run(name: &str) -> anyhow::Result<PathBuf> {
    let out = fresh_dir(name);
    run_into(&out, &["async-rabbitmq"])?;
    run_into(&out, &["streaming-kafka"])?;
    Ok(out)
}

/// The rows of a CSV file for the simulation, each by column name.
fn sim_rows(path: &Path) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let mut reader = csv::Reader::from_path(path)?;
    let header = reader.headers()?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let row: BTreeMap<String, String> = header.iter().map(str::to_owned).zip(record?.iter().map(str::to_owned)).collect();
        if row["mode"] == "sim" {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The values of `attribute` on every element of `svg` that has it, in order.
fn attributes<'s>(svg: &'s str, attribute: &str) -> Vec<&'s str> {
    let needle = format!(" {attribute}=\"");
    svg.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &svg[i + needle.len()..];
            &rest[..rest.find('"').expect("a closed attribute")]
        })
        .collect()
}

/// The shaded spans of a figure, as the data they stand for: (from, until) in seconds.
fn shaded(svg: &str) -> Vec<(f64, f64)> {
    let from = attributes(svg, "data-from").into_iter().map(|v| v.parse().expect("a number"));
    let until = attributes(svg, "data-until").into_iter().map(|v| v.parse().expect("a number"));
    from.zip(until).collect()
}

/// The x extent (first, last) of every line drawn for `series`.
fn lines_of(svg: &str, series: &str) -> Vec<(f64, f64)> {
    svg.lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(&format!("data-series=\"{series}\"")))
        .map(|l| {
            let x = attributes(l, "data-x")[0];
            let (a, b) = x.split_once(' ').expect("two numbers");
            (a.parse().expect("a number"), b.parse().expect("a number"))
        })
        .collect()
}

/// `summary`'s recorded window for `experiment`: (down_from_s, down_until_s).
fn recorded(summary: &[BTreeMap<String, String>], experiment: &str) -> anyhow::Result<(f64, f64)> {
    let row = summary.iter().find(|r| r["experiment"] == experiment).ok_or_else(|| anyhow::anyhow!("no {experiment} row"))?;
    Ok((row["down_from_s"].parse()?, row["down_until_s"].parse()?))
}

/// Every time at which `column` is empty in `rows` lies outside every line drawn for `series`.
fn gaps_are_not_bridged(svg: &str, rows: &[BTreeMap<String, String>], column: &str, series: &str) -> anyhow::Result<usize> {
    let lines = lines_of(svg, series);
    anyhow::ensure!(!lines.is_empty(), "no line drawn for {series}");
    let empty: Vec<f64> = rows.iter().filter(|r| r[column].is_empty()).map(|r| r["t_s"].parse()).collect::<Result<_, _>>()?;
    for t in &empty {
        let bridged = lines.iter().find(|(a, b)| a < t && t < b);
        anyhow::ensure!(bridged.is_none(), "{series}: a line spans {bridged:?} across {t} s, where {column} is empty");
    }
    Ok(empty.len())
}

#[test]
fn every_fault_window_is_shaded_over_the_recorded_window_no_line_bridges_an_empty_cell_and_every_figure_has_its_png() -> anyhow::Result<()>
{
    let out = graded_run("windows")?;
    let read = |file: &str| std::fs::read_to_string(out.join(file));
    let b_summary = sim_rows(&out.join("async_rabbitmq_summary.csv"))?;
    let c_summary = sim_rows(&out.join("streaming_kafka_summary.csv"))?;
    for (figure, summary, experiment) in [
        ("async_rabbitmq_backlog_sim.svg", &b_summary, "outage"),
        ("async_rabbitmq_broker_restart_sim.svg", &b_summary, "broker-restart"),
        ("streaming_kafka_outage_sim.svg", &c_summary, "outage"),
        ("streaming_kafka_broker_restart_sim.svg", &c_summary, "broker-restart"),
    ] {
        let (from, until) = recorded(summary, experiment)?;
        assert!(until > from, "{experiment}: a window of its own ({from}..{until})");
        assert_eq!(shaded(&read(figure)?), vec![(from, until)], "{figure} shades the recorded window");
    }

    run_into(&out, &["cluster", "--experiment", "node-loss"])?;
    let cluster = sim_rows(&out.join("cluster_summary.csv"))?;
    for (figure, model) in [("cluster_node_loss_sim.svg", "async-rabbitmq"), ("cluster_node_loss_kafka_sim.svg", "streaming-kafka")] {
        let rows: Vec<_> = cluster.iter().filter(|r| r["model"] == model).cloned().collect();
        let (from, until) = recorded(&rows, "node-loss")?;
        assert_eq!(shaded(&read(figure)?), vec![(from, until)], "{figure} shades the recorded window");
    }

    let b_restart = sim_rows(&out.join("async_rabbitmq_broker_restart.csv"))?;
    let svg = read("async_rabbitmq_broker_restart_sim.svg")?;
    let empty = gaps_are_not_bridged(&svg, &b_restart, "queue_depth", "OrderPlaced waiting in Inventory's queue")?;
    assert!(empty > 0, "the broker's absence left empty cells to check");

    let c_restart = sim_rows(&out.join("streaming_kafka_broker_restart.csv"))?;
    let svg = read("streaming_kafka_broker_restart_sim.svg")?;
    for (column, series) in [("analytics_lag", "Analytics' lag (both topics)"), ("inventory_lag", "Inventory's lag (records)")] {
        let empty = gaps_are_not_bridged(&svg, &c_restart, column, series)?;
        assert!(empty > 0, "the broker's absence left empty {column} cells to check");
    }
    every_figure_has_its_png_linked_beside_it(&out)
}

/// A PNG's width and height, from its header (the signature, then the IHDR chunk).
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let signature = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != signature || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("four bytes"));
    Some((be(16), be(20)))
}

/// Every SVG figure has a PNG of the same name, twice its size, and the report links both.
fn every_figure_has_its_png_linked_beside_it(out: &Path) -> anyhow::Result<()> {
    let report = std::fs::read_to_string(out.join("report.md"))?;
    let mut figures = 0;
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "svg") {
            continue;
        }
        let svg = std::fs::read_to_string(&path)?;
        let size = |attribute: &str| -> u32 { attributes(&svg, attribute)[0].parse().expect("a whole number of units") };
        let png = path.with_extension("png");
        let bytes = std::fs::read(&png).unwrap_or_else(|_| panic!("{} has no PNG beside it", path.display()));
        assert_eq!(png_size(&bytes), Some((size("width") * 2, size("height") * 2)), "{}", png.display());
        let name = png.file_name().expect("a file name").to_string_lossy().into_owned();
        assert!(report.contains(&format!("]({name})")), "the report does not link {name}");
        figures += 1;
    }
    assert!(figures >= 6, "only {figures} figures to check");
    Ok(())
}

#[test]
fn every_sample_series_has_strictly_increasing_time() -> anyhow::Result<()> {
    let out = graded_run("time")?;
    for file in [
        "async_rabbitmq_backlog.csv",
        "async_rabbitmq_broker_restart.csv",
        "streaming_kafka_outage.csv",
        "streaming_kafka_broker_restart.csv",
    ] {
        let times: Vec<f64> = sim_rows(&out.join(file))?.iter().map(|r| r["t_s"].parse()).collect::<Result<_, _>>()?;
        assert!(times.len() > 10, "{file}: a series to check");
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{file}: time does not strictly increase");
    }
    Ok(())
}

#[test]
fn every_column_of_every_csv_file_is_explained_in_the_readme_of_out() -> anyhow::Result<()> {
    let out = fresh_dir("columns");
    run_into(&out, &[])?;
    run_into(&out, &["cluster"])?;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/README.md"))?;
    let mut files = 0;
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".csv") {
            continue;
        }
        files += 1;
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}`")))
            .ok_or_else(|| anyhow::anyhow!("out/README.md has no row for {name}"))?;
        let header = csv::Reader::from_path(&path)?.headers()?.clone();
        let columns: Vec<&str> = header.iter().collect();
        assert!(
            row.contains(&format!("`{}`", columns.join(","))),
            "out/README.md lists {name}'s columns as they are: {}",
            columns.join(",")
        );
    }
    assert!(files >= 10, "the graded run wrote {files} CSV files");
    Ok(())
}

#[test]
fn part_bs_section_quotes_the_first_dead_lettered_message_of_each_reason_from_its_csv_file() -> anyhow::Result<()> {
    let out = fresh_dir("dead-letters");
    run_into(&out, &["async-rabbitmq", "--experiment", "poison"])?;
    let report = std::fs::read_to_string(out.join("report.md"))?;
    let rows = sim_rows(&out.join("async_rabbitmq_dead_letters.csv"))?;
    let mut labels = std::collections::BTreeSet::new();
    for row in &rows {
        let label = row["reason"].split(':').next().unwrap_or_default().to_owned();
        if labels.insert(label) {
            assert!(report.contains(&format!("| `{}` |", row["reason"])), "the report does not quote {:?}", row["reason"]);
        }
    }
    assert_eq!(labels.len(), 4, "one message of each of the four reasons: {labels:?}");
    Ok(())
}

#[test]
fn part_bs_outage_log_is_made_of_its_own_samples() -> anyhow::Result<()> {
    let out = fresh_dir("turning-points");
    run_into(&out, &["async-rabbitmq", "--experiment", "outage"])?;
    let report = std::fs::read_to_string(out.join("report.md"))?;
    let start = report.find("turning points").ok_or_else(|| anyhow::anyhow!("no outage log in the report"))?;
    let block = &report[start..];
    let block = &block[block.find("```text\n").expect("a code block") + 8..];
    let block = &block[..block.find("```").expect("a closed code block")];
    let rows = sim_rows(&out.join("async_rabbitmq_backlog.csv"))?;
    let mut lines = 0;
    for line in block.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let row = rows.iter().find(|r| r["t_s"] == cells[0]).ok_or_else(|| anyhow::anyhow!("no sample at {} s", cells[0]))?;
        let up = if row["inventory_up"] == "1" { "up" } else { "down" };
        let expected = [up, &row["queue_depth"], &row["accepted"], &row["reserved"], &row["failed"], &row["notified"]];
        assert_eq!(&cells[1..7], &expected, "{line}");
        lines += 1;
    }
    assert!(lines >= 4, "the kill, the peak, the return and the drain: {block}");
    Ok(())
}

#[test]
fn every_item_of_the_assignment_map_names_files_the_run_wrote_a_test_that_exists_and_a_command_that_parses() -> anyhow::Result<()> {
    let out = fresh_dir("assignment-map");
    run_into(&out, &[])?;
    let report = std::fs::read_to_string(out.join("report.md"))?;
    assert!(report.contains("## The assignment, item by item"), "the report has the map");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for item in campus_sim::assignment_map::ITEMS {
        assert!(report.contains(item.asks), "the map lists {:?}", item.asks);
        for file in item.files {
            let file = file.replace("<mode>", "sim");
            assert!(out.join(&file).exists(), "{}: the graded run wrote no {file}", item.asks);
        }
        let (path, function) = item.test.split_once("::").expect("file::function");
        let source = std::fs::read_to_string(root.join(path))?;
        assert!(source.contains(&format!("fn {function}(")), "{}: {path} has no test {function}", item.asks);
        let words: Vec<&str> = item.command.split_whitespace().collect();
        assert_eq!(words[0], "campus-sim");
        campus_sim::cli::try_parse_from(&words).map_err(|e| anyhow::anyhow!("{}: {e}", item.command))?;
    }
    Ok(())
}

/// `ms` as the report writes a duration (`campus_sim::traces::waterfall::duration`).
fn duration(ms: f64) -> String {
    campus_sim::traces::waterfall::duration(ms)
}

/// The nearest-rank percentile `p` of `values`, sorted here.
fn nearest_rank(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((p / 100.0 * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1]
}

#[test]
fn the_traces_sections_hop_table_is_recomputed_from_its_span_rows() -> anyhow::Result<()> {
    let out = fresh_dir("traces");
    run_into(&out, &["async-rabbitmq", "--experiment", "outage"])?;
    let report = std::fs::read_to_string(out.join("report.md"))?;
    let rows = sim_rows(&out.join("trace_spans_async-rabbitmq.csv"))?;
    let ms = |row: &BTreeMap<String, String>, column: &str| row[column].parse::<f64>().expect("a number");
    // The publish of each order, and how long each order's message waited for Inventory.
    let mut published: Vec<f64> = Vec::new();
    let mut waited: Vec<f64> = Vec::new();
    for row in &rows {
        if row["service"] == "order" && row["name"] == "publish OrderPlaced" {
            published.push(ms(row, "ms"));
        }
        if row["service"] == "inventory" && row["name"] == "process inventory.order-placed" {
            let sent = rows.iter().find(|r| r["order_id"] == row["order_id"] && r["span_id"] == row["link_id"]).expect("its publish");
            waited.push((ms(row, "start_ms") - ms(sent, "start_ms") - ms(sent, "ms")).max(0.0));
        }
    }
    assert_eq!(published.len(), waited.len(), "each order's message handled once in the simulation");
    for (hop, values) in [("order: publish OrderPlaced", &mut published), ("inventory: waiting in inventory.order-placed", &mut waited)] {
        let (n, p50, p99) = (values.len(), nearest_rank(values, 50.0), nearest_rank(values, 99.0));
        let line = format!("| {hop} | {n} | {} | {} |", duration(p50), duration(p99));
        assert!(report.contains(&line), "the report's traces section has no line {line}");
    }
    assert!(nearest_rank(&mut waited, 99.0) > 50_000.0, "orders wait out most of the 60 s outage in the queue");
    Ok(())
}
