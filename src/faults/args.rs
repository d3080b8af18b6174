//! The fault flags of `campus` (and `campus-sim serve`), [`FaultArgs`]: what Part A's Inventory
//! suffers from its start, and the environment variables they read.

use std::time::Duration;

use axum::http::StatusCode;

use super::FaultPlan;

/// The faults `inventory --model sync-rest` can suffer from its start; unset, none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// (inventory, sync-rest) Fault: hold every request this many ms before handling it
    /// (0 = no delay).
    #[arg(long, env = "CAMPUS_DELAY_MS")]
    pub delay_ms: Option<u64>,
    /// (inventory, sync-rest) Fault: handle every request at once, then hold its reply this many
    /// ms (the stock is reserved, the answer is late; 0 = no delay).
    #[arg(long, env = "CAMPUS_REPLY_DELAY_MS")]
    pub reply_delay_ms: Option<u64>,
    /// (inventory, sync-rest) Fault: answer every request with this status (400–599) instead of
    /// handling it (0 = no error, so that a compose file can pass the variable through unset).
    #[arg(long, env = "CAMPUS_ERROR_STATUS", value_parser = error_status)]
    pub error_status: Option<u16>,
    /// (inventory, sync-rest) Fault: never answer (true or false).
    #[arg(long, env = "CAMPUS_HANG", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub hang: bool,
}

/// An error status to inject: 400–599, or 0 for none.
fn error_status(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(code @ (0 | 400..=599)) => Ok(code),
        _ => Err("an HTTP error status from 400 to 599, or 0 for none".into()),
    }
}

/// The environment variables [`FaultArgs`] reads (see `crate::config::CONFIG_ENV`).
pub const FAULT_ENV: [&str; 4] = ["CAMPUS_DELAY_MS", "CAMPUS_REPLY_DELAY_MS", "CAMPUS_ERROR_STATUS", "CAMPUS_HANG"];

/// Every environment variable `campus` reads: the service's and the faults'.
pub fn serve_env() -> Vec<&'static str> {
    crate::config::CONFIG_ENV.iter().chain(&FAULT_ENV).copied().collect()
}

impl FaultArgs {
    /// The fault flags as a [`FaultPlan`].
    pub fn plan(&self) -> FaultPlan {
        FaultPlan {
            delay: self.delay_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
            reply_delay: self.reply_delay_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
            error: self.error_status.filter(|&s| s != 0).map(|s| StatusCode::from_u16(s).expect("range-checked by clap")),
            hang: self.hang,
            down: false,
        }
    }
}
