//! Where Part C runs: over the world's `SimLog` in virtual time, or over fresh topics of a real
//! Apache Kafka. In both modes the producer, Inventory and Analytics are tasks of this process
//! (wired by `campus::deploy::streaming_kafka`): what differs is the log, the subject of Part C.

use std::sync::Arc;

use anyhow::Context;
use campus::retry::Policy;
use campus::transport::kafka::KafkaLog;
use campus::transport::log::EventLog;

use crate::world::World;
use crate::Mode;

/// The log a run uses, and how to clean it up.
pub struct Deployment {
    log: Arc<dyn EventLog>,
    kafka: Option<Arc<KafkaLog>>,
    /// How the services' loops meet a broker outage.
    policy: Policy,
}

impl Deployment {
    /// The world's in-memory log.
    pub fn sim(world: &World) -> Self {
        Deployment { log: world.log(), kafka: None, policy: world.policy(true) }
    }

    /// Fresh topics (`campus-sim.<experiment>.<pid>.<ms>.*`) on the Kafka at `bootstrap`.
    pub async fn real(bootstrap: &str, experiment: &str) -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let kafka = KafkaLog::connect(bootstrap, &namespace).await.with_context(|| {
            format!("Kafka is not reachable at {bootstrap}; start it with `scripts/brokers.sh up kafka` (or set KAFKA_BOOTSTRAP_SERVERS)")
        })?;
        crate::progress::step(&format!("{experiment}: topics {namespace}.*"));
        let kafka = Arc::new(kafka);
        Ok(Deployment { log: kafka.clone(), kafka: Some(kafka), policy: Policy::production() })
    }

    pub fn mode(&self) -> Mode {
        if self.kafka.is_some() { Mode::Real } else { Mode::Sim }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.log.clone()
    }

    /// Deletes the run's topics (real mode).
    pub async fn teardown(self) {
        if let Some(kafka) = self.kafka {
            if let Err(e) = kafka.delete_topics().await {
                tracing::warn!(error = %e, "could not delete the run's topics");
            }
        }
    }
}
