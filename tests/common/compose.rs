//! A part's compose stack for the specifications in `tests/compose.rs`: its containers started
//! from nothing (images only, never built or pulled here), awaited until healthy, and taken
//! down with their volumes whatever happens. Stacks publish the same ports, so one runs at a
//! time.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use campus::transport::http::HttpRequestReply;
use campus::Model;
use campus::Service;
use campus_sim::hosts::compose::Compose;

/// How long a container may take to pass its health check.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(120);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Stack {
    pub compose: Compose,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Stack {
    /// `up -d --no-build SERVICES` (their dependencies too) on a clean project, then waits
    /// until every service named is healthy.
    pub fn up(model: Model, services: &[&str]) -> anyhow::Result<Stack> {
        Stack::up_with(model, services, &[])
    }

    /// The same, the compose file reading `env` (`OTEL_EXPORTER_OTLP_ENDPOINT`, …).
    pub fn up_with(model: Model, services: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Stack> {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let compose = Compose::of(model);
        compose.run(&["down", "-v", "--remove-orphans"])?;
        let stack = Stack { compose, _one_at_a_time: guard };
        let mut up = vec!["up", "-d", "--no-build"];
        up.extend_from_slice(services);
        let mut command = stack.compose.command(&up);
        command.envs(env.iter().copied());
        let output = command.output().context("compose up")?;
        anyhow::ensure!(output.status.success(), "compose up: {}", String::from_utf8_lossy(&output.stderr).trim());
        for service in services {
            stack.compose.await_healthy(service, HEALTHY_WITHIN)?;
        }
        Ok(stack)
    }

    /// `up -d --no-build SERVICE` again with `env` set (compose re-creates its container when a
    /// variable its file reads changed), until it is healthy.
    pub fn recreate_with(&self, service: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut command = self.compose.command(&["up", "-d", "--no-build", "--no-deps", service]);
        command.envs(env.iter().copied());
        let output = command.output().with_context(|| format!("re-creating {service}"))?;
        anyhow::ensure!(output.status.success(), "re-creating {service}: {}", String::from_utf8_lossy(&output.stderr).trim());
        self.compose.await_healthy(service, HEALTHY_WITHIN)
    }

    /// `kill SERVICE`: SIGKILL, the container stays (and its volume).
    pub fn kill(&self, service: &str) -> anyhow::Result<()> {
        self.compose.run(&["kill", service]).map(drop)
    }

    /// `start SERVICE`, until it is healthy again.
    pub fn start(&self, service: &str) -> anyhow::Result<()> {
        self.compose.run(&["start", service])?;
        self.compose.await_healthy(service, HEALTHY_WITHIN)
    }

    /// `stop SERVICE` (SIGTERM: it finishes what it is doing).
    pub fn stop(&self, service: &str) -> anyhow::Result<()> {
        self.compose.run(&["stop", service]).map(drop)
    }

    /// `exec -T SERVICE argv…`, its stdout.
    pub fn exec(&self, service: &str, argv: &[&str]) -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&self.compose.exec(service, argv)?.stdout).into_owned())
    }

    /// An HTTP client of the services' published ports (127.0.0.1, their default ports).
    pub fn http(&self, peers: &[(Service, u16)]) -> HttpRequestReply {
        HttpRequestReply::new(peers.iter().map(|(peer, port)| (*peer, format!("http://127.0.0.1:{port}"))))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Err(e) = self.compose.run(&["down", "-v", "--remove-orphans"]) {
            eprintln!("error: taking the compose stack down: {e:#}");
        }
    }
}

/// Polls `check` until it says true, at most `within`; `what` names the awaited state in the
/// error, with the last value `check` saw.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(bool, String)>>,
{
    let deadline = Instant::now() + within;
    loop {
        let (done, seen) = check().await.with_context(|| format!("while waiting for {what}"))?;
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {} s; last seen: {seen}", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
