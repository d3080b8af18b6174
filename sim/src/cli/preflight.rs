//! Before the graded run against real brokers: both reachable, or a message that says how to
//! start them.

use std::time::Duration;

/// `host:port` of an AMQP URL (`amqp://user:pass@host:port/vhost`; port 5672 if not given).
fn amqp_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5672") }
}

/// The graded run against real brokers checks both are reachable before it starts Part A, and
/// says how to start them if not.
pub fn brokers(amqp_url: &str, bootstrap: &str) -> anyhow::Result<()> {
    let kafka = bootstrap.split(',').next().unwrap_or(bootstrap).trim().to_owned();
    let mut missing = Vec::new();
    for (name, address, variable) in [("RabbitMQ", amqp_address(amqp_url), "AMQP_URL"), ("Kafka", kafka, "KAFKA_BOOTSTRAP_SERVERS")] {
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
    anyhow::bail!(
        "--real-brokers needs RabbitMQ and Kafka:\n  {}\nStart both on this machine with `scripts/brokers.sh up` (installs them if needed), \
         or run the services with Docker: see compose/ in the README.",
        missing.join("\n  ")
    )
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
