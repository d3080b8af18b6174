//! The CSV files of `out/`, as typed rows: each file is a struct deriving `Serialize` and
//! `Deserialize` whose fields are its columns, in order. A run replaces its own mode's rows and
//! keeps the other mode's; a cell that does not parse as its column's type is an error, never
//! a silent zero.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Mode;

/// A row of one of `out/`'s CSV files.
pub trait Row: Serialize + DeserializeOwned + Default {
    /// The mode the row was measured in (the `mode` column).
    fn mode(&self) -> Mode;
}

/// A number written with `D` decimals (`Fixed::<3>(1.5)` is `1.500`), read back as any number.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Fixed<const D: usize>(pub f64);

impl<const D: usize> Serialize for Fixed<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{:.D$}", self.0))
    }
}

impl<'de, const D: usize> Deserialize<'de> for Fixed<D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim().parse().map(Fixed).map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number")))
    }
}

/// The header of `R`'s file: its field names, in order.
pub fn header<R: Row>() -> Vec<String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.serialize(R::default()).expect("a default row serializes");
    let bytes = writer.into_inner().expect("writing to memory");
    let mut reader = ::csv::Reader::from_reader(bytes.as_slice());
    reader.headers().expect("the header just written").iter().map(str::to_owned).collect()
}

/// A row's cells as text, as the file writes them (for the printed and Markdown tables).
pub fn cells<R: Serialize>(row: &R) -> Vec<String> {
    let mut writer = ::csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    writer.serialize(row).expect("a row serializes");
    let bytes = writer.into_inner().expect("writing to memory");
    let mut reader = ::csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
    reader.records().next().and_then(Result::ok).map(|r| r.iter().map(str::to_owned).collect()).unwrap_or_default()
}

/// Every row of `path`; an error names the file, the line and the cell that did not parse.
pub fn read<R: Row>(path: &Path) -> anyhow::Result<Vec<R>> {
    let mut reader = ::csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    reader.deserialize().map(|row| row.with_context(|| format!("reading {}", path.display()))).collect()
}

/// Writes `path` with `rows` of `mode`, keeping the rows already there of the other mode (a file
/// with another header is replaced). Rows are ordered sim first, then real, each in the order
/// given.
pub fn merge<R: Row>(path: &Path, mode: Mode, rows: Vec<R>) -> anyhow::Result<()> {
    let header = header::<R>();
    let mut kept: Vec<R> = Vec::new();
    if path.exists() {
        let mut reader = ::csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        if reader.headers()?.iter().eq(header.iter().map(String::as_str)) {
            kept = read::<R>(path)?.into_iter().filter(|r| r.mode() != mode).collect();
        }
    }
    kept.extend(rows);
    kept.sort_by_key(|r| r.mode() != Mode::Sim);
    let mut writer =
        ::csv::WriterBuilder::new().has_headers(false).from_path(path).with_context(|| format!("writing {}", path.display()))?;
    writer.write_record(&header)?;
    for row in &kept {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Sample {
        t_s: Fixed<2>,
        mode: Mode,
        depth: u64,
    }

    impl Row for Sample {
        fn mode(&self) -> Mode {
            self.mode
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("campus-sim-csv-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("rows.csv")
    }

    #[test]
    fn a_run_replaces_its_own_mode_and_keeps_the_other() {
        let path = scratch("merge");
        merge(&path, Mode::Real, vec![Sample { t_s: Fixed(1.0), mode: Mode::Real, depth: 7 }]).unwrap();
        merge(&path, Mode::Sim, vec![Sample { t_s: Fixed(0.25), mode: Mode::Sim, depth: 3 }]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "t_s,mode,depth\n0.25,sim,3\n1.00,real,7\n");
    }

    #[test]
    fn a_bad_cell_is_an_error_not_a_zero() {
        let path = scratch("bad");
        std::fs::write(&path, "t_s,mode,depth\n0.25,sim,three\n").unwrap();
        let error = format!("{:#}", read::<Sample>(&path).unwrap_err());
        assert!(error.contains("depth") || error.contains("three") || error.contains("invalid digit"), "{error}");
    }
}
