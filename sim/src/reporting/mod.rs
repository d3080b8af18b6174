//! Everything a run leaves in `out/`: typed CSV rows ([`csv`]), `report.md`'s sections (this
//! file), how numbers and tables are shown ([`format`]), the SVG figures ([`plot`]), and what a
//! backlog's samples ([`backlog`]), a drain by several instances ([`drain`]) and a recovery
//! split into its wait and its drain ([`recovery`]) show.
//!
//! A run replaces only its own rows and sections: the CSVs keep rows of the other mode
//! (`sim` / `real`), and `report.md` keeps the other parts' and modes' sections, so running the
//! simulation and then real mode leaves both side by side. Runs into one directory at once
//! write one after the other ([`writing`]).

pub mod backlog;
pub mod csv;
pub mod drain;
pub mod format;
pub mod glossary;
mod lock;
pub mod plot;
pub mod raster;
pub mod recovery;

pub use format::{markdown_table, ms, percentile, text_table, wrapped};
pub use lock::{writing, Writing};

use std::fs;
use std::path::Path;

use anyhow::Context;

/// The order of the sections in `report.md`.
const SECTION_ORDER: [&str; 14] = [
    "compare",
    "assignment-map",
    "sync-rest/sim",
    "sync-rest/real",
    "async-rabbitmq/sim",
    "async-rabbitmq/real",
    "streaming-kafka/sim",
    "streaming-kafka/real",
    "traces",
    "cluster/sim",
    "cluster/real",
    "bench",
    "bench-rates",
    "glossary",
];

const PREAMBLE: &str = "# campus-sim report\n\n\
Written by `campus-sim`. Each section below is rewritten by the run that measured it and names \
its seed and mode; `sim` numbers come from the deterministic simulation (virtual time), `real` \
numbers from real processes, sockets and brokers on this machine. The CSV files next to this \
report hold every row behind every table; the figures are drawn from them.\n";

/// The header: what wrote the report, where and when, and the sections it holds.
fn header(sections: &[(String, String)]) -> String {
    let mut text = String::from(PREAMBLE);
    text.push_str(&format!(
        "\n| | |\n|---|---|\n| last written | {} |\n| by | campus-sim {} (librdkafka {}, lapin 4) |\n| machine | {} |\n",
        utc_now(),
        env!("CARGO_PKG_VERSION"),
        campus::transport::kafka::client_version(),
        machine()
    ));
    if !sections.is_empty() {
        // Only what is there: "then real" only when a real section is.
        let both = sections.iter().any(|(key, _)| key.ends_with("/real")) && sections.iter().any(|(key, _)| key.ends_with("/sim"));
        let order = if both { "; each part in simulation, then real" } else { "" };
        text.push_str(&format!("\nContents (the comparison, then the assignment's order{order}):\n\n"));
        for (key, body) in sections {
            let title = body.lines().find(|l| l.starts_with("## ")).map_or(key.as_str(), |l| l.trim_start_matches("## "));
            // Sections of a seeded run name their seed; the benchmark's section has none.
            match body.split("Seed ").nth(1).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()).filter(|s| !s.is_empty()) {
                Some(seed) => text.push_str(&format!("- {title} — seed {seed}\n")),
                None => text.push_str(&format!("- {title}\n")),
            }
        }
    }
    text
}

/// Cores, memory and operating system of this machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or("? GiB".to_owned(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|r| r.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    format!("{cores} cores, {memory} RAM, {os} ({})", std::env::consts::ARCH)
}

/// The current time in UTC, `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Replaces (or adds) the section `key` of `out/report.md`, keeping the others.
pub fn update_report(out: &Path, key: &str, body: &str) -> anyhow::Result<()> {
    let path = out.join("report.md");
    let existing =
        if path.exists() { fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))? } else { String::new() };
    let mut sections = parse_sections(&existing);
    sections.retain(|(k, _)| k != key && k != "glossary");
    sections.push((key.to_owned(), body.trim_end().to_owned()));
    // The glossary follows what the other sections say, whichever of them was rewritten.
    let said: String = sections.iter().map(|(_, body)| body.as_str()).collect::<Vec<_>>().join("\n");
    let glossary = glossary::section(&said);
    if !glossary.is_empty() {
        sections.push(("glossary".to_owned(), glossary.trim_end().to_owned()));
    }
    sections.sort_by_key(|(k, _)| SECTION_ORDER.iter().position(|s| s == k).unwrap_or(SECTION_ORDER.len()));
    let mut text = header(&sections);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_a_plausible_utc_time() {
        let now = utc_now();
        assert!(now.ends_with(" UTC") && now.len() == "2026-11-24 10:43 UTC".len(), "{now}");
        assert!(now.as_str() > "2025-", "{now}");
    }

    #[test]
    fn a_report_section_is_replaced_and_the_others_are_kept() {
        let text = format!("{}\n<!-- begin sync-rest/real -->\nR\n<!-- end sync-rest/real -->\n<!-- begin sync-rest/sim -->\nold\n<!-- end sync-rest/sim -->\n", header(&[]));
        let sections = parse_sections(&text);
        assert_eq!(sections, vec![("sync-rest/real".into(), "R".into()), ("sync-rest/sim".into(), "old".into())]);
    }
}
