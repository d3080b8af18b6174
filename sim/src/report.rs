//! Everything a run leaves in `out/`: CSV files and the sections of `report.md`.
//!
//! A run replaces only its own rows and sections: the CSVs keep rows of the other mode
//! (`sim` / `real`), and `report.md` keeps the other parts' and modes' sections, so running the
//! simulation and then real mode leaves both side by side.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Milliseconds with microsecond precision, as the CSVs write them.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// Writes `path` with `header` and `rows`, keeping the rows already there whose `mode`
/// column differs from `mode` (an older file with another header is replaced). Rows are
/// ordered sim first, then real, each in the order given.
pub fn merge_csv(path: &Path, header: &[&str], mode: &str, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mode_col = header.iter().position(|h| *h == "mode").expect("every CSV has a mode column");
    let mut kept: Vec<Vec<String>> = Vec::new();
    if path.exists() {
        let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let same_header = reader.headers()?.iter().eq(header.iter().copied());
        if same_header {
            for record in reader.records() {
                let record = record.with_context(|| format!("reading {}", path.display()))?;
                if record.get(mode_col) != Some(mode) {
                    kept.push(record.iter().map(str::to_owned).collect());
                }
            }
        }
    }
    kept.extend(rows);
    kept.sort_by_key(|r| r[mode_col] != "sim");
    let mut writer = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    writer.write_record(header)?;
    for row in kept {
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

/// The order of the sections in `report.md`.
const SECTION_ORDER: [&str; 6] = [
    "sync-rest/sim",
    "sync-rest/real",
    "async-rabbitmq/sim",
    "async-rabbitmq/real",
    "streaming-kafka/sim",
    "streaming-kafka/real",
];

const PREAMBLE: &str = "# campus-sim report\n\n\
Written by `campus-sim`. Each section below is rewritten by the run that measured it and names \
its seed and mode; `sim` numbers come from the deterministic simulation (virtual time), `real` \
numbers from real processes, sockets and brokers on this machine. The CSV files next to this \
report hold every row behind every table.\n";

/// Replaces (or adds) the section `key` of `out/report.md`, keeping the others.
pub fn update_report(out: &Path, key: &str, body: &str) -> anyhow::Result<()> {
    let path = out.join("report.md");
    let existing = if path.exists() { fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))? } else { String::new() };
    let mut sections = parse_sections(&existing);
    sections.retain(|(k, _)| k != key);
    sections.push((key.to_owned(), body.trim_end().to_owned()));
    sections.sort_by_key(|(k, _)| SECTION_ORDER.iter().position(|s| s == k).unwrap_or(SECTION_ORDER.len()));
    let mut text = String::from(PREAMBLE);
    for (k, body) in sections {
        text.push_str(&format!("\n<!-- begin {k} -->\n{body}\n<!-- end {k} -->\n"));
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn parse_sections(text: &str) -> Vec<(String, String)> {
    let mut sections = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- begin ") {
        let after = &rest[start + "<!-- begin ".len()..];
        let Some(key_end) = after.find(" -->") else { break };
        let key = &after[..key_end];
        let body_start = &after[key_end + " -->".len()..];
        let end_marker = format!("<!-- end {key} -->");
        let Some(body_end) = body_start.find(&end_marker) else { break };
        sections.push((key.to_owned(), body_start[..body_end].trim().to_owned()));
        rest = &body_start[body_end + end_marker.len()..];
    }
    sections
}

/// A markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = format!("| {} |\n|{}|\n", header.join(" | "), header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    text
}

/// A plain-text table for the terminal, columns padded to their widest cell.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_pick_an_observed_value() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&v[..1], 50.0), Duration::from_millis(1));
    }

    #[test]
    fn a_report_section_is_replaced_and_the_others_are_kept() {
        let text = format!("{PREAMBLE}\n<!-- begin sync-rest/real -->\nR\n<!-- end sync-rest/real -->\n<!-- begin sync-rest/sim -->\nold\n<!-- end sync-rest/sim -->\n");
        let sections = parse_sections(&text);
        assert_eq!(sections, vec![("sync-rest/real".into(), "R".into()), ("sync-rest/sim".into(), "old".into())]);
    }
}
