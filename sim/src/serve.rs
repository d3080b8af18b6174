//! `campus-sim serve <service>`: the production entry point (`campus::serve`) plus the lab's
//! fault layer — the only thing the lab adds. Real mode starts these as children; compose runs
//! them as containers.

use std::time::Duration;

use axum::http::StatusCode;
use campus::{Model, Service};

use crate::fault::{self, FaultPlan};

/// `campus-sim serve …`: the service's own flags, and the faults the lab may inject into it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub service: campus::config::ServiceConfig,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// The faults `serve inventory --model sync-rest` can suffer (the lab's, not production's).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// (inventory, sync-rest) Fault: hold every request this many ms before handling it
    /// (0 = no delay).
    #[arg(long, env = "CAMPUS_DELAY_MS")]
    pub delay_ms: Option<u64>,
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

/// The environment variables [`FaultArgs`] reads (see `campus::config::CONFIG_ENV`).
pub const FAULT_ENV: [&str; 3] = ["CAMPUS_DELAY_MS", "CAMPUS_ERROR_STATUS", "CAMPUS_HANG"];

/// Every environment variable `campus-sim serve` reads: the service's and the faults'.
pub fn serve_env() -> Vec<&'static str> {
    campus::config::CONFIG_ENV.iter().chain(&FAULT_ENV).copied().collect()
}

impl FaultArgs {
    /// The fault flags as a [`FaultPlan`].
    pub fn plan(&self) -> FaultPlan {
        FaultPlan {
            delay: self.delay_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
            error: self.error_status.filter(|&s| s != 0).map(|s| StatusCode::from_u16(s).expect("range-checked by clap")),
            hang: self.hang,
            down: false,
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let plan = args.faults.plan();
    if !plan.is_healthy() && (args.service.service != Service::Inventory || args.service.model != Model::SyncRest) {
        anyhow::bail!("fault flags (--delay-ms, --error-status, --hang) apply to `serve inventory --model sync-rest` only");
    }
    if !plan.is_healthy() {
        tracing::info!(fault = %plan, "inventory runs with an injected fault");
    }
    // Inventory of Part A takes its faults at run time too (`/admin/fault`, loopback only).
    let admin = args.service.service == Service::Inventory && args.service.model == Model::SyncRest;
    let switch = fault::FaultSwitch::new(plan);
    Ok(campus::serve::run(args.service, |app| {
        if admin {
            fault::apply_switch(app, &switch).merge(fault::switch::routes(switch.clone()))
        } else {
            app
        }
    })
    .await?)
}
