//! The project's compose files (`compose/<part>/docker-compose.yml`) and the Compose command
//! that runs them: how the lab stops and starts a broker that runs as a compose service
//! (`--brokers-from compose`), and how the compose tests drive a whole part in containers.
//!
//! The command is `$CAMPUS_COMPOSE` if set (e.g. `docker-compose`), else `docker compose`
//! (Compose v2) where the Docker client has it, else `docker-compose` (Compose v1, Debian's).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use campus::Model;

/// One part's compose file, and the command that runs it.
#[derive(Debug, Clone)]
pub struct Compose {
    program: Vec<String>,
    /// The checkout the command runs in.
    root: PathBuf,
    /// `compose/<part>/docker-compose.yml`, relative to `root`: commands read as a user types
    /// them at the top of the checkout.
    file: PathBuf,
}

impl Compose {
    /// The compose file of `model`'s part: `compose/<model>/docker-compose.yml` of the checkout
    /// this binary was built from, or of the current directory.
    pub fn of(model: Model) -> Self {
        let file = Path::new("compose").join(model.name()).join("docker-compose.yml");
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sim/ is inside the checkout").to_owned();
        let root = if built_from.join(&file).exists() { built_from } else { PathBuf::from(".") };
        Compose { program: program(), root, file }
    }

    /// The file, relative to the top of the checkout.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How a user types `args` (for messages and the report).
    pub fn shown(&self, args: &[&str]) -> String {
        format!("{} -f {} {}", self.program.join(" "), self.file.display(), args.join(" "))
    }

    /// `<compose> -f FILE args…`, not yet run, its stdin closed.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let (exe, rest) = self.program.split_first().expect("a compose command has a program");
        let mut command = Command::new(exe);
        command.current_dir(&self.root).args(rest).arg("-f").arg(&self.file).args(args).stdin(Stdio::null());
        command
    }

    /// Runs `<compose> -f FILE args…`; its output, or an error with what it printed.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let output = self.command(args).output().with_context(|| format!("running {}", self.shown(args)))?;
        if !output.status.success() {
            bail!("{} failed ({}): {}", self.shown(args), output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(output)
    }

    /// `exec -T SERVICE argv…` (no terminal: works from a script or a test).
    pub fn exec(&self, service: &str, argv: &[&str]) -> anyhow::Result<Output> {
        let mut args = vec!["exec", "-T", service];
        args.extend_from_slice(argv);
        self.run(&args)
    }

    /// The service's container state: `None` if it has none, else whether it runs and its
    /// health check's verdict (`healthy`, `starting`, `unhealthy`, or empty without a check).
    pub fn state(&self, service: &str) -> Option<(bool, String)> {
        let output = self.run(&["ps", "-q", service]).ok()?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if id.is_empty() {
            return None;
        }
        let format = "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}";
        let inspect = Command::new("docker").args(["inspect", "--format", format, &id]).stdin(Stdio::null()).output().ok()?;
        let said = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
        let (running, health) = said.split_once(' ').unwrap_or((&said, ""));
        Some((running == "true", health.to_owned()))
    }

    /// Whether the service's container is running now.
    pub fn is_running(&self, service: &str) -> bool {
        self.state(service).is_some_and(|(running, _)| running)
    }

    /// Waits until the service's health check says `healthy` (a published port answers
    /// before the broker behind it does: Docker's proxy accepts the connection).
    pub fn await_healthy(&self, service: &str, within: Duration) -> anyhow::Result<()> {
        self.await_ok(&format!("{service} healthy"), within, || match self.state(service) {
            Some((true, health)) if health == "healthy" => Ok(()),
            Some((running, health)) => bail!("{service}: running {running}, health {health:?}"),
            None => bail!("{service} has no container"),
        })
    }

    /// Runs `probe` until it succeeds, at most `within`: a service that is up is not yet one
    /// that serves. The error names the last failure.
    pub fn await_ok(&self, what: &str, within: Duration, mut probe: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            match probe() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).context(format!("{what} within {} s ({})", within.as_secs(), self.file.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

fn program() -> Vec<String> {
    if let Ok(set) = std::env::var("CAMPUS_COMPOSE") {
        let words: Vec<String> = set.split_whitespace().map(str::to_owned).collect();
        if !words.is_empty() {
            return words;
        }
    }
    let v2 = Command::new("docker").args(["compose", "version"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if v2.is_ok_and(|s| s.success()) {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}
