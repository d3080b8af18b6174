//! `campus-sim serve <service>`: the production entry point (`campus::serve`) plus the lab's
//! fault layer — the only thing the lab adds. Real mode starts these as children; compose runs
//! them as containers.

use crate::fault::{self, FaultArgs};

/// `campus-sim serve …`: the service's own flags, and the faults the lab may inject into it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub service: campus::config::ServiceConfig,
    #[command(flatten)]
    pub faults: FaultArgs,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let plan = args.faults.plan();
    let faultable = fault::takes_faults(args.service.model, args.service.service);
    if !plan.is_healthy() && !faultable {
        anyhow::bail!("fault flags (--delay-ms, --error-status, --hang) apply to `serve inventory --model sync-rest` only");
    }
    if !plan.is_healthy() {
        tracing::info!(fault = %plan, "inventory runs with an injected fault");
    }
    // Inventory of Part A takes its faults at run time too (`/admin/fault`, loopback only).
    let switch = fault::FaultSwitch::new(plan);
    Ok(campus::serve::run(args.service, |app| if faultable { fault::switchable(app, &switch) } else { app }).await?)
}
