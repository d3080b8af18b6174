//! Real mode's topology: each service is its own `campus-sim serve …` process on a free
//! loopback port. A child announces itself with one line on stdout,
//! `READY <service> http://127.0.0.1:<port>`, once its socket is bound; the harness waits for
//! that line (no sleeps, no port guessing).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use campus::Model;

/// How long a child may take to bind its port and say so.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// A running service process. Dropping it kills the process.
pub struct ServiceProcess {
    service: String,
    url: String,
    child: Child,
}

impl ServiceProcess {
    /// Starts `exe serve <service> --model <model> <args>` and waits for its READY line.
    pub async fn spawn<S: AsRef<str>>(exe: &Path, service: &str, model: Model, args: &[S]) -> anyhow::Result<Self> {
        let mut argv = vec!["serve", service, "--model", model.name()];
        argv.extend(args.iter().map(AsRef::as_ref));
        Self::start(exe, service, &argv).await
    }

    /// Starts `exe <argv>`, a process that announces itself as `READY <service> <url>`, and
    /// waits for that line.
    pub async fn start(exe: &Path, service: &str, argv: &[&str]) -> anyhow::Result<Self> {
        let mut command = Command::new(exe);
        command.args(argv);
        // A variable exported for a compose-style run must not skew an experiment.
        for var in crate::serve::serve_env() {
            command.env_remove(var);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", exe.display(), argv.join(" ")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_WITHIN, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("READY ") {
                    return Ok(Some(rest.to_owned()));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let url = match ready {
            Ok(Ok(Some(rest))) => match rest.split_once(' ') {
                Some((name, url)) if name == service => url.to_owned(),
                _ => bail!("{service}: unexpected READY line {rest:?}"),
            },
            Ok(Ok(None)) => {
                let status = child.wait().await?;
                bail!("{service} exited before it was ready ({status}); its errors are above")
            }
            Ok(Err(e)) => return Err(e).context(format!("reading {service}'s stdout")),
            Err(_) => bail!("{service} did not report READY within {} s", READY_WITHIN.as_secs()),
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tracing::debug!(service, %url, "service ready");
        Ok(ServiceProcess { service: service.to_owned(), url, child })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service's name and its process id (none once it has exited).
    pub fn pid(&self) -> Option<(String, u32)> {
        Some((self.service.clone(), self.child.id()?))
    }

    /// SIGKILL, and wait until the process is gone (its port then refuses connections).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.with_context(|| format!("killing {}", self.service))
    }

    /// SIGTERM (the service finishes what it is doing and leaves its group), and wait for it to
    /// exit; SIGKILL if it has not within [`READY_WITHIN`].
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(pid) = self.child.id() else { return Ok(()) };
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid} ({}) failed", self.service);
        }
        match tokio::time::timeout(READY_WITHIN, self.child.wait()).await {
            Ok(exit) => {
                let exit = exit?;
                if !exit.success() {
                    bail!("{} exited with {exit} after SIGTERM; its errors are above", self.service);
                }
                Ok(())
            }
            Err(_) => {
                tracing::warn!(service = %self.service, "did not exit within {} s of SIGTERM; killing it", READY_WITHIN.as_secs());
                self.kill().await
            }
        }
    }
}

/// The path of one of Kafka's own tools, as `scripts/brokers.sh which <tool>` installs it.
pub fn kafka_tool(tool: &str) -> anyhow::Result<PathBuf> {
    let script = brokers_script();
    let output = std::process::Command::new(&script).args(["which", tool]).stdin(Stdio::null()).output().with_context(|| format!("running {} which {tool}", script.display()))?;
    if !output.status.success() {
        bail!("{} which {tool} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.exists() {
        bail!("{} which {tool} named {}, which does not exist", script.display(), path.display());
    }
    Ok(path)
}

/// A real broker the lab can take away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// `scripts/brokers.sh pause rabbitmq` (`rabbitmqctl stop_app`: the node stays up, every
    /// connection is closed, AMQP refused), then `resume rabbitmq`.
    RabbitMq,
    /// `scripts/brokers.sh kill kafka` (SIGKILL of the JVM), then `up kafka`.
    Kafka,
    /// One node of the RabbitMQ cluster: `scripts/brokers.sh kill rabbitmq-node N` (SIGKILL of
    /// its Erlang VM), then `up --cluster rabbitmq` (it starts and rejoins).
    RabbitMqNode(u8),
    /// One broker of the Kafka cluster: `scripts/brokers.sh kill kafka-node N` (SIGKILL of its
    /// JVM), then `up --cluster kafka`.
    KafkaNode(u8),
}

impl Broker {
    fn stop_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Broker::RabbitMq => &["pause", "rabbitmq"],
            Broker::Kafka => &["kill", "kafka"],
            Broker::RabbitMqNode(n) => return vec!["kill".into(), "rabbitmq-node".into(), n.to_string()],
            Broker::KafkaNode(n) => return vec!["kill".into(), "kafka-node".into(), n.to_string()],
        };
        args.iter().map(|a| a.to_string()).collect()
    }

    fn start_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Broker::RabbitMq => &["resume", "rabbitmq"],
            Broker::Kafka => &["up", "kafka"],
            Broker::RabbitMqNode(_) => &["up", "--cluster", "rabbitmq"],
            Broker::KafkaNode(_) => &["up", "--cluster", "kafka"],
        };
        args.iter().map(|a| a.to_string()).collect()
    }
}

/// The project's broker script: `CAMPUS_BROKERS_SCRIPT`, or `scripts/brokers.sh` of the
/// checkout this binary was built from, or of the current directory.
pub fn brokers_script() -> PathBuf {
    if let Some(path) = std::env::var_os("CAMPUS_BROKERS_SCRIPT") {
        return PathBuf::from(path);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/brokers.sh");
    if built_from.exists() { built_from } else { PathBuf::from("scripts/brokers.sh") }
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
    script: PathBuf,
    restored: bool,
}

impl BrokerOutage {
    pub async fn begin(broker: Broker) -> anyhow::Result<Self> {
        let script = brokers_script();
        let outage = BrokerOutage { broker, script, restored: false };
        let (script, args) = (outage.script.clone(), broker.stop_args());
        tokio::task::spawn_blocking(move || run_script(&script, args)).await.context("the broker script panicked")??;
        Ok(outage)
    }

    pub async fn end(mut self) -> anyhow::Result<()> {
        let (script, args) = (self.script.clone(), self.broker.start_args());
        self.restored = true;
        tokio::task::spawn_blocking(move || run_script(&script, args)).await.context("the broker script panicked")?
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.restored {
            if let Err(e) = run_script(&self.script, self.broker.start_args()) {
                eprintln!("error: could not restore the broker after a failed experiment: {e:#}");
            }
        }
    }
}
