//! A service as a process of its own (`campus-sim serve …` on a free loopback port). A child
//! announces itself with one line on stdout, `READY <service> http://127.0.0.1:<port>`, once
//! its socket is bound; the harness waits for that line (no sleeps, no port guessing).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use campus::config::ServiceConfig;
use campus::Model;

use campus::faults::FaultPlan;

/// How long a child may take to bind its port and say so.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// A running service process. Dropping it kills the process.
pub struct ServiceProcess {
    service: String,
    url: String,
    child: Child,
}

impl ServiceProcess {
    /// Starts `exe serve …` with `config`'s flags (the fault flags of `plan`, and `lab`: the
    /// lab's own hidden `--lab-…` flags), and waits for its READY line.
    pub async fn serve(exe: &Path, config: &ServiceConfig, plan: &FaultPlan, lab: &[String]) -> anyhow::Result<Self> {
        let mut argv = vec!["serve".to_owned()];
        argv.extend(config.to_args());
        argv.extend(plan.serve_flags());
        argv.extend(lab.iter().cloned());
        Self::start(exe, config.service.name(), &argv.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

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
        for var in campus::faults::serve_env() {
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

    /// Whether the process has ended by aborting itself (SIGABRT: the lab's crash at a point
    /// of its handling), as opposed to running still or exiting for any other reason.
    pub fn aborted(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        matches!(self.child.try_wait(), Ok(Some(status)) if status.signal() == Some(6))
    }

    /// SIGKILL, and wait until the process is gone (its port then refuses connections).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.with_context(|| format!("killing {}", self.service))
    }

    /// Sends the process `signal` (a `kill` name: `TERM`, `USR1`); nothing once it has exited.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.child.id() else { return Ok(()) };
        let status = std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status().context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} ({}) failed", self.service);
        }
        Ok(())
    }

    /// SIGTERM (the service finishes what it is doing and leaves its group), and wait for it to
    /// exit; SIGKILL if it has not within [`READY_WITHIN`].
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.id().is_none() {
            return Ok(());
        }
        self.signal("TERM")?;
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
