//! The real brokers a run takes away and brings back ([`Broker`], [`BrokerOutage`]), where they
//! run ([`BrokerHost`]: on this machine through `scripts/brokers.sh`, or as a compose service),
//! and Kafka's own tools.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use campus::Model;

use super::compose::Compose;

/// The path of one of Kafka's own tools, as `scripts/brokers.sh which <tool>` installs it.
fn kafka_tool(tool: &str) -> anyhow::Result<PathBuf> {
    let script = brokers_script();
    let output = std::process::Command::new(&script)
        .args(["which", tool])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} which {tool}", script.display()))?;
    if !output.status.success() {
        bail!("{} which {tool} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.exists() {
        bail!("{} which {tool} named {}, which does not exist", script.display(), path.display());
    }
    Ok(path)
}

/// Where the real brokers run, and so how the lab takes one away and brings it back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerHost {
    /// On this machine, started by `scripts/brokers.sh` (which stops and starts them).
    #[default]
    Script,
    /// As the broker service of a part's compose file (`rabbitmq` of
    /// compose/async-rabbitmq, `kafka` of compose/streaming-kafka), stopped and started with
    /// `docker compose`: the same faults (`rabbitmqctl stop_app`, a SIGKILL of Kafka), inside
    /// the container.
    Compose,
}

impl BrokerHost {
    /// How a user starts `broker` (`rabbitmq` or `kafka`) where it runs.
    pub fn how_to_start(self, broker: &str) -> String {
        match self {
            BrokerHost::Script => format!("start it with `scripts/brokers.sh up {broker}`"),
            BrokerHost::Compose => {
                let model = if broker == "kafka" { Model::StreamingKafka } else { Model::AsyncRabbitmq };
                format!("start it with `{}`", Compose::of(model).shown(&["up", "-d", broker]))
            }
        }
    }

    /// Kafka's `kafka-consumer-groups.sh` with `args`, where Kafka runs: the jars
    /// `scripts/brokers.sh` fetched, or the tool inside the Kafka container (its own listener).
    pub fn kafka_consumer_groups(self, bootstrap: &str, args: &[String]) -> anyhow::Result<(tokio::process::Command, String)> {
        let mut argv = vec!["--bootstrap-server".to_owned(), bootstrap.to_owned()];
        argv.extend_from_slice(args);
        let shown = format!("kafka-consumer-groups.sh {}", argv.join(" "));
        match self {
            BrokerHost::Script => {
                let mut command = tokio::process::Command::new(kafka_tool("kafka-consumer-groups.sh")?);
                command.args(&argv);
                Ok((command, shown))
            }
            BrokerHost::Compose => {
                // The tool runs in the Kafka container, against the broker's own listener.
                argv[1] = "localhost:9092".to_owned();
                let mut args =
                    vec!["exec".to_owned(), "-T".to_owned(), "kafka".to_owned(), "/opt/kafka/bin/kafka-consumer-groups.sh".to_owned()];
                args.extend(argv);
                let compose = Compose::of(Model::StreamingKafka);
                let shown = compose.shown(&args.iter().map(String::as_str).collect::<Vec<_>>());
                Ok((tokio::process::Command::from(compose.command(&args)), shown))
            }
        }
    }
}

/// A real broker the lab can take away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// `rabbitmqctl stop_app` (the node stays up, every connection is closed, AMQP refused),
    /// then `start_app`.
    RabbitMq,
    /// RabbitMQ hung: its Erlang VM SIGSTOPped (`scripts/brokers.sh freeze rabbitmq`; in
    /// compose, `docker compose pause`), then SIGCONT until it serves.
    RabbitMqHung,
    /// A SIGKILL of the Kafka JVM, then a start until it serves.
    Kafka,
    /// Kafka hung: its JVM SIGSTOPped (`scripts/brokers.sh freeze kafka`; in compose, `docker
    /// compose pause`), then SIGCONT until it serves.
    KafkaHung,
    /// One node of the RabbitMQ cluster: `scripts/brokers.sh kill rabbitmq-node N` (SIGKILL of
    /// its Erlang VM), then `up --cluster rabbitmq` (it starts and rejoins).
    RabbitMqNode(u8),
    /// One broker of the Kafka cluster: `scripts/brokers.sh kill kafka-node N` (SIGKILL of its
    /// JVM), then `up --cluster kafka`.
    KafkaNode(u8),
    /// PostgreSQL, the database Part B's stores share on the cluster: `scripts/brokers.sh down
    /// postgres` (a fast shutdown: every session ended), then `up postgres` until it serves.
    Postgres,
}

impl Broker {
    fn stop_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Broker::RabbitMq => &["pause", "rabbitmq"],
            Broker::RabbitMqHung => &["freeze", "rabbitmq"],
            Broker::KafkaHung => &["freeze", "kafka"],
            Broker::Kafka => &["kill", "kafka"],
            Broker::Postgres => &["down", "postgres"],
            Broker::RabbitMqNode(n) => return vec!["kill".into(), "rabbitmq-node".into(), n.to_string()],
            Broker::KafkaNode(n) => return vec!["kill".into(), "kafka-node".into(), n.to_string()],
        };
        args.iter().map(|a| a.to_string()).collect()
    }

    fn start_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Broker::RabbitMq => &["resume", "rabbitmq"],
            Broker::RabbitMqHung => &["thaw", "rabbitmq"],
            Broker::KafkaHung => &["thaw", "kafka"],
            Broker::Kafka => &["up", "kafka"],
            Broker::RabbitMqNode(_) => &["up", "--cluster", "rabbitmq"],
            Broker::KafkaNode(_) => &["up", "--cluster", "kafka"],
            Broker::Postgres => &["up", "postgres"],
        };
        args.iter().map(|a| a.to_string()).collect()
    }

    /// Takes the broker away where it runs.
    fn stop(self, host: BrokerHost) -> anyhow::Result<()> {
        match (host, self) {
            (BrokerHost::Script, _) => run_script(&brokers_script(), self.stop_args()),
            (BrokerHost::Compose, Broker::RabbitMq) => {
                Compose::of(Model::AsyncRabbitmq).exec("rabbitmq", &["rabbitmqctl", "-q", "stop_app"])?;
                tracing::info!("rabbitmq paused in its container (rabbitmqctl stop_app)");
                Ok(())
            }
            (BrokerHost::Compose, Broker::RabbitMqHung) => {
                Compose::of(Model::AsyncRabbitmq).run(&["pause", "rabbitmq"])?;
                tracing::info!("rabbitmq's container paused (its processes frozen)");
                Ok(())
            }
            (BrokerHost::Compose, Broker::KafkaHung) => {
                Compose::of(Model::StreamingKafka).run(&["pause", "kafka"])?;
                tracing::info!("kafka's container paused (its JVM frozen)");
                Ok(())
            }
            (BrokerHost::Compose, Broker::Kafka) => {
                Compose::of(Model::StreamingKafka).run(&["kill", "kafka"])?;
                tracing::info!("kafka's container killed (SIGKILL)");
                Ok(())
            }
            (BrokerHost::Compose, node) => {
                bail!("{node:?}: the clustered deployment has no compose file; its brokers run from `scripts/brokers.sh up --cluster`")
            }
        }
    }

    /// Brings it back where it runs, and waits until it serves.
    fn start(self, host: BrokerHost) -> anyhow::Result<()> {
        const WITHIN: Duration = Duration::from_secs(120);
        match (host, self) {
            (BrokerHost::Script, _) => run_script(&brokers_script(), self.start_args()),
            (BrokerHost::Compose, Broker::RabbitMq) => {
                let compose = Compose::of(Model::AsyncRabbitmq);
                compose.exec("rabbitmq", &["rabbitmqctl", "-q", "start_app"])?;
                compose.await_ok("rabbitmq serving again", WITHIN, || {
                    compose.exec("rabbitmq", &["rabbitmqctl", "-q", "await_startup"]).map(drop)
                })
            }
            (BrokerHost::Compose, Broker::RabbitMqHung) => {
                let compose = Compose::of(Model::AsyncRabbitmq);
                compose.run(&["unpause", "rabbitmq"])?;
                compose.await_ok("rabbitmq serving again", WITHIN, || {
                    compose.exec("rabbitmq", &["rabbitmqctl", "-q", "await_startup"]).map(drop)
                })
            }
            (BrokerHost::Compose, Broker::Kafka | Broker::KafkaHung) => {
                let compose = Compose::of(Model::StreamingKafka);
                compose.run(&[if self == Broker::Kafka { "start" } else { "unpause" }, "kafka"])?;
                compose.await_ok("kafka serving again", WITHIN, || {
                    compose.exec("kafka", &["/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", "localhost:9092", "--list"]).map(drop)
                })
            }
            (BrokerHost::Compose, node) => bail!("{node:?}: the clustered deployment has no compose file"),
        }
    }
}

/// The project's broker script: `CAMPUS_BROKERS_SCRIPT`, or `scripts/brokers.sh` of the
/// checkout this binary was built from, or of the current directory.
pub fn brokers_script() -> PathBuf {
    if let Some(path) = std::env::var_os("CAMPUS_BROKERS_SCRIPT") {
        return PathBuf::from(path);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/brokers.sh");
    if built_from.exists() {
        built_from
    } else {
        PathBuf::from("scripts/brokers.sh")
    }
}

fn run_script(script: &Path, args: Vec<String>) -> anyhow::Result<()> {
    let status = std::process::Command::new(script)
        .args(&args)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {} {}", script.display(), args.join(" ")))?;
    if !status.success() {
        bail!("{} {} failed ({status})", script.display(), args.join(" "));
    }
    Ok(())
}

/// A real broker taken away: [`BrokerOutage::begin`] stops it, [`BrokerOutage::end`] starts it
/// again and waits until it serves. If the outage is dropped without `end` (an error, a
/// panic), the broker is started again there and then: a fault test never leaves the machine
/// without its broker.
pub struct BrokerOutage {
    broker: Broker,
    host: BrokerHost,
    restored: bool,
}

impl BrokerOutage {
    pub async fn begin(broker: Broker, host: BrokerHost) -> anyhow::Result<Self> {
        let outage = BrokerOutage { broker, host, restored: false };
        tokio::task::spawn_blocking(move || broker.stop(host)).await.context("stopping the broker panicked")??;
        Ok(outage)
    }

    pub async fn end(mut self) -> anyhow::Result<()> {
        let (broker, host) = (self.broker, self.host);
        self.restored = true;
        tokio::task::spawn_blocking(move || broker.start(host)).await.context("starting the broker panicked")?
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.restored {
            if let Err(e) = self.broker.start(self.host) {
                eprintln!("error: could not restore the broker after a failed experiment: {e:#}");
            }
        }
    }
}
