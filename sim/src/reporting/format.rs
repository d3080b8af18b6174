//! How numbers and tables are shown: percentiles, milliseconds, Markdown and terminal tables.

use std::time::Duration;

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

/// A markdown table.
pub fn markdown_table<H: AsRef<str>>(header: &[H], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let mut text = format!("| {} |\n|{}|\n", header.join(" | "), header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    text
}

/// `items` joined with ", " after `lead`, broken into lines of at most [`TERMINAL_WIDTH`]
/// columns, the continuation lines indented under the first item.
pub fn wrapped(lead: &str, items: &[String]) -> String {
    let indent = " ".repeat(lead.chars().count());
    let mut text = lead.to_owned();
    let mut width = text.chars().count();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() { format!("{item},") } else { item.clone() };
        let len = piece.chars().count();
        if i > 0 && width + 1 + len > TERMINAL_WIDTH {
            text.push('\n');
            text.push_str(&indent);
            width = indent.len();
        } else if i > 0 {
            text.push(' ');
            width += 1;
        }
        text.push_str(&piece);
        width += len;
    }
    text
}

/// The widest a terminal table may be.
pub const TERMINAL_WIDTH: usize = 100;

/// A plain-text table for the terminal, columns padded to their widest cell. A table wider
/// than [`TERMINAL_WIDTH`] is cut into blocks of columns, one under the other, each repeating
/// the first two columns (what the row is: experiment and mode), and the third where it is
/// `protocol` (Part A's), so that it reads on its own.
pub fn text_table<H: AsRef<str>>(header: &[H], rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let keep = if header.get(2) == Some(&"protocol") { 3 } else { 2.min(header.len()) };
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut block: Vec<usize> = (0..keep).collect();
    let width_of = |columns: &[usize]| columns.iter().map(|&c| widths[c]).sum::<usize>() + 2 * columns.len().saturating_sub(1);
    for column in keep..header.len() {
        let mut wider = block.clone();
        wider.push(column);
        if width_of(&wider) > TERMINAL_WIDTH && block.len() > keep {
            blocks.push(std::mem::replace(&mut block, (0..keep).chain([column]).collect()));
        } else {
            block = wider;
        }
    }
    blocks.push(block);
    let line = |cells: &[&str], columns: &[usize]| {
        columns
            .iter()
            .map(|&c| format!("{:>w$}", cells.get(c).copied().unwrap_or(""), w = widths[c]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut text = String::new();
    for (i, columns) in blocks.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&line(&header, columns));
        for row in rows {
            text.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>(), columns));
        }
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
    fn a_table_wider_than_the_terminal_is_cut_into_blocks_that_each_name_their_rows() {
        let header: Vec<String> =
            ["experiment", "mode"].into_iter().map(String::from).chain((0..12).map(|i| format!("column_{i:02}"))).collect();
        let rows =
            vec![["outage".to_owned(), "sim".to_owned()].into_iter().chain((0..12).map(|i| format!("{}", i * 1000))).collect::<Vec<_>>()];
        let text = text_table(&header, &rows);
        assert!(text.lines().all(|l| l.chars().count() <= TERMINAL_WIDTH), "{text}");
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert!(blocks.len() > 1, "{text}");
        for block in &blocks {
            assert!(
                block.contains("experiment  mode") && block.lines().nth(1).is_some_and(|l| l.trim_start().starts_with("outage   sim")),
                "{block}"
            );
        }
        for i in 0..12 {
            assert_eq!(text.matches(&format!("column_{i:02}")).count(), 1, "each column once: {text}");
        }
        assert_eq!(text_table(&["a", "b"], &[vec!["1".into(), "2".into()]]), "a  b\n1  2\n");
    }
}
