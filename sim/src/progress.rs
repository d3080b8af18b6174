//! Progress on stderr for the steps of a run, so a run never looks hung: a line per step, and a
//! live counter for a long phase.

/// A progress line on stderr for the steps of a run, so a run never looks hung.
pub fn step(message: &str) {
    if let Some(live) = LIVE.with(|l| l.take()) {
        // A step ends the live counter's line first.
        eprintln!();
        LIVE.with(|l| l.set(Some(live)));
    }
    eprintln!("  … {message}");
}

thread_local! {
    /// Whether a live counter line is on the terminal now (so a plain line starts a new one).
    static LIVE: std::cell::Cell<Option<()>> = const { std::cell::Cell::new(None) };
}

/// A live counter for a long phase (the 60 s outage and its drain, a consumer catching up):
/// on a terminal one stderr line redrawn in place at most ten times a second; otherwise (CI, a
/// pipe) a plain line every `quiet_every` of wall time, so logs stay short.
pub struct Progress {
    label: &'static str,
    tty: bool,
    last: Option<std::time::Instant>,
    quiet_every: std::time::Duration,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress { label, tty: std::io::stderr().is_terminal(), last: None, quiet_every: std::time::Duration::from_secs(10) }
    }

    /// Shows `status` if it is time to; `status` is only computed then.
    pub fn update(&mut self, status: impl FnOnce() -> String) {
        let now = std::time::Instant::now();
        let every = if self.tty { std::time::Duration::from_millis(100) } else { self.quiet_every };
        if self.last.is_some_and(|last| now.duration_since(last) < every) {
            return;
        }
        self.last = Some(now);
        if self.tty {
            eprint!("\r\x1b[2K  … {}: {}", self.label, status());
            LIVE.with(|l| l.set(Some(())));
        } else {
            eprintln!("  … {}: {}", self.label, status());
        }
    }

    /// Ends the counter with a last status line.
    pub fn finish(self, status: &str) {
        if self.tty {
            eprintln!("\r\x1b[2K  … {}: {status}", self.label);
            LIVE.with(|l| l.set(None));
        } else {
            eprintln!("  … {}: {status}", self.label);
        }
    }
}
