//! Where Part C runs: over the world's `SimLog` in virtual time, or over fresh topics of a real
//! Apache Kafka. In both modes the producer, Inventory and Analytics are tasks of this process
//! (wired by `campus::deploy::streaming_kafka`): what differs is the log, the subject of Part C.

use std::sync::Arc;

use anyhow::Context;
use campus::retry::Policy;
use campus::transport::kafka::KafkaLog;
use campus::transport::log::EventLog;

use crate::real::{Broker, BrokerOutage};
use crate::world::World;
use crate::Mode;

/// The log a run uses, how to take its broker away, and how to clean it up.
pub struct Deployment<'w> {
    log: Arc<dyn EventLog>,
    kafka: Option<Arc<KafkaLog>>,
    /// How the services' loops meet a broker outage.
    policy: Policy,
    /// The simulated world whose broker this is (sim).
    world: Option<&'w World>,
    /// Kafka while the lab has it killed (restarted on drop, whatever happens).
    outage: tokio::sync::Mutex<Option<BrokerOutage>>,
}

impl<'w> Deployment<'w> {
    /// The world's in-memory log.
    pub fn sim(world: &'w World) -> Self {
        Deployment { log: world.log(), kafka: None, policy: world.policy(true), world: Some(world), outage: tokio::sync::Mutex::new(None) }
    }

    /// Fresh topics (`campus-sim.<experiment>.<pid>.<ms>.*`) on the Kafka at `bootstrap`.
    pub async fn real(bootstrap: &str, experiment: &str) -> anyhow::Result<Deployment<'static>> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let kafka = KafkaLog::connect(bootstrap, &namespace).await.with_context(|| {
            format!("Kafka is not reachable at {bootstrap}; start it with `scripts/brokers.sh up kafka` (or set KAFKA_BOOTSTRAP_SERVERS)")
        })?;
        crate::progress::step(&format!("{experiment}: topics {namespace}.*"));
        let kafka = Arc::new(kafka);
        Ok(Deployment { log: kafka.clone(), kafka: Some(kafka), policy: Policy::production(), world: None, outage: tokio::sync::Mutex::new(None) })
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

    /// The broker goes away (sim: the world's outage; real: SIGKILL of the Kafka JVM).
    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        match self.world {
            Some(world) => world.set_broker(false),
            None => *self.outage.lock().await = Some(BrokerOutage::begin(Broker::Kafka).await?),
        }
        Ok(())
    }

    /// The broker comes back (real: `scripts/brokers.sh up kafka`, until it serves).
    pub async fn start_broker(&self) -> anyhow::Result<()> {
        match self.world {
            Some(world) => world.set_broker(true),
            None => {
                if let Some(outage) = self.outage.lock().await.take() {
                    outage.end().await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the run's topics (real mode), after starting the broker again if an experiment
    /// left it dead.
    pub async fn teardown(self) {
        if let Some(outage) = self.outage.into_inner() {
            if let Err(e) = outage.end().await {
                tracing::error!(error = %e, "could not start Kafka again");
            }
        }
        if let Some(kafka) = self.kafka {
            if let Err(e) = kafka.delete_topics().await {
                tracing::warn!(error = %e, "could not delete the run's topics");
            }
        }
    }
}
