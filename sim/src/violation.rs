//! A broken invariant, as every model's checks report it: printed, written into the report,
//! and the reason a command exits non-zero. A lab that prints wrong numbers quietly teaches
//! the wrong thing.

use std::fmt;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub experiment: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.experiment, self.message)
    }
}
