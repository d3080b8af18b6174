//! The trace of an explored schedule: every message moved, every crash and restart, with its
//! virtual time. A replayed or shown schedule keeps it; `explore`'s search turns it off, where
//! describing every message (decoding it once more and formatting a line) took about an eighth
//! of each run and nobody reads the lines of a schedule that passed.

/// Trace lines, or nothing when off.
#[derive(Debug)]
pub struct Trace {
    lines: Vec<String>,
    kept: bool,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new(true)
    }
}

impl Trace {
    /// A trace that keeps its lines, or (`kept` false) records nothing.
    pub fn new(kept: bool) -> Self {
        Trace { lines: Vec::new(), kept }
    }

    /// Whether lines are kept (so whether describing them is worth anything).
    pub fn is_kept(&self) -> bool {
        self.kept
    }

    /// Adds the line `line` makes, stamped with the virtual time; `line` runs only when kept.
    pub fn push(&mut self, line: impl FnOnce() -> String) {
        if self.kept {
            let t = crate::simulator::clock::now_ms();
            self.lines.push(format!("{t:>7} ms  {}", line()));
        }
    }

    /// The lines so far, leaving none.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}
