//! Before the graded run against real brokers: both reachable, or a message that says how to
//! start them (with `scripts/brokers.sh`, or their compose file under `--brokers-from compose`).

use std::time::Duration;

use campus::Model;

use crate::hosts::broker::BrokerHost;
use crate::hosts::compose::Compose;

/// `host:port` of an AMQP URL (`amqp://user:pass@host:port/vhost`; port 5672 if not given).
fn amqp_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    }
}

/// `host:port` of the first of a comma-separated list of Kafka bootstrap servers.
fn kafka_address(bootstrap: &str) -> String {
    bootstrap.split(',').next().unwrap_or(bootstrap).trim().to_owned()
}

/// The graded run against real brokers checks both are reachable before it starts Part A, and
/// says how to start them if not.
pub fn brokers(amqp_url: &str, bootstrap: &str, host: BrokerHost) -> anyhow::Result<()> {
    in_compose(host, Model::AsyncRabbitmq, "rabbitmq", "RabbitMQ")?;
    in_compose(host, Model::StreamingKafka, "kafka", "Kafka")?;
    check(
        &[("RabbitMQ", amqp_address(amqp_url), "AMQP_URL"), ("Kafka", kafka_address(bootstrap), "KAFKA_BOOTSTRAP_SERVERS")],
        &start(host, None, "up"),
    )
}

/// Part B's command against the real RabbitMQ: reachable (and, from compose, its container
/// running) before anything starts.
pub fn rabbitmq(amqp_url: &str, host: BrokerHost) -> anyhow::Result<()> {
    in_compose(host, Model::AsyncRabbitmq, "rabbitmq", "RabbitMQ")?;
    check(&[("RabbitMQ", amqp_address(amqp_url), "AMQP_URL")], &start(host, Some(Model::AsyncRabbitmq), "up rabbitmq"))
}

/// Part C's command against the real Kafka: reachable (and, from compose, its container
/// running) before anything starts.
pub fn kafka(bootstrap: &str, host: BrokerHost) -> anyhow::Result<()> {
    in_compose(host, Model::StreamingKafka, "kafka", "Kafka")?;
    check(&[("Kafka", kafka_address(bootstrap), "KAFKA_BOOTSTRAP_SERVERS")], &start(host, Some(Model::StreamingKafka), "up kafka"))
}

/// Under `--brokers-from compose`, the broker's service runs in its compose project (the lab
/// stops and starts it there), and has passed its health check: Docker's proxy accepts a
/// connection on the published port before the broker behind it does. A container still
/// starting is waited for.
fn in_compose(host: BrokerHost, model: Model, service: &str, name: &str) -> anyhow::Result<()> {
    if host == BrokerHost::Script {
        return Ok(());
    }
    let compose = Compose::of(model);
    if !compose.is_running(service) {
        anyhow::bail!(
            "--brokers-from compose: {name} is not running as the `{service}` service of {}.\nStart it with `{}` (scripts/docker.sh readies Docker on a machine without the public image registry).",
            compose.file().display(),
            compose.shown(&["up", "-d", service])
        );
    }
    compose.await_healthy(service, Duration::from_secs(120))
}

/// `campus-sim cluster --real-brokers`: the first node of each cluster its runs use (Part B:
/// RabbitMQ and PostgreSQL; Part C: Kafka), reachable before anything starts.
pub fn cluster(amqp_urls: &str, store: &str, bootstrap: &str, model: Option<campus::Model>) -> anyhow::Result<()> {
    let first_amqp = amqp_urls.split(',').next().unwrap_or(amqp_urls);
    let store_address = amqp_address(store).replace(":5672", ":5432");
    let mut needed = Vec::new();
    if model != Some(campus::Model::StreamingKafka) {
        needed.push(("the RabbitMQ cluster", amqp_address(first_amqp), "CAMPUS_CLUSTER_AMQP_URL"));
        needed.push(("PostgreSQL", store_address, "CAMPUS_CLUSTER_STORE"));
    }
    if model != Some(campus::Model::AsyncRabbitmq) {
        needed.push(("the Kafka cluster", kafka_address(bootstrap), "CAMPUS_CLUSTER_BOOTSTRAP_SERVERS"));
    }
    check(&needed, "Start them on this machine with `scripts/brokers.sh up --cluster` (installs what is needed).")
}

/// How to start the broker of `model` (both without one) where it runs.
fn start(host: BrokerHost, model: Option<Model>, up: &str) -> String {
    let them = if model.is_some() { "it" } else { "both" };
    match host {
        BrokerHost::Script => format!("Start {them} on this machine with `scripts/brokers.sh {up}` (installs what is needed), or run {them} with Docker and --brokers-from compose: see docs/real-brokers.md."),
        BrokerHost::Compose => format!("The container runs and passed its health check, but its published port does not answer: see `{}`.", Compose::of(model.unwrap_or(Model::AsyncRabbitmq)).shown(&["ps"])),
    }
}

fn check(needed: &[(&str, String, &str)], start: &str) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (name, address, variable) in needed {
        use std::net::ToSocketAddrs;
        let reachable = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
        if !reachable {
            missing.push(format!("{name} is not reachable at {address} (set {variable} to use another)"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = needed.iter().map(|(name, _, _)| *name).collect();
    anyhow::bail!("--real-brokers needs {}:\n  {}\n{start}", names.join(" and "), missing.join("\n  "))
}

#[cfg(test)]
mod tests {
    use super::amqp_address;

    #[test]
    fn the_broker_address_is_read_from_an_amqp_url() {
        assert_eq!(amqp_address("amqp://guest:guest@127.0.0.1:5672/%2f"), "127.0.0.1:5672");
        assert_eq!(amqp_address("amqp://rabbitmq/%2f"), "rabbitmq:5672");
        assert_eq!(amqp_address("amqp://u:p@host:5673"), "host:5673");
    }
}
