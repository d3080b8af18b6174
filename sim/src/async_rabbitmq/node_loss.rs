//! Part B's `node-loss` experiment, on a 3-node RabbitMQ cluster: orders at a steady rate while
//! the node the services are connected to is SIGKILLed (real: `scripts/brokers.sh kill
//! rabbitmq-node 1`; simulated: the world's node loss), and started again `--node-down-for`
//! later. Nobody tells the services: each finds its connection gone and reconnects to the next
//! node of `AMQP_URL`; the quorum queues elect new leaders among the two nodes left.
//!
//! What it shows: orders keep being accepted and decided across the loss, with a gap the
//! length of the failover; every message the broker had confirmed survives (a majority held
//! it), and whatever a consumer held unacknowledged is redelivered and absorbed by the dedup:
//! 0 lost, 0 double.

use super::broker_restart::broker_away;
use super::window::Fault;
use super::{Config, Deployment, Detail, Run, Scenario};

pub async fn run(config: &Config, d: &mut Deployment<'_>) -> anyhow::Result<Run> {
    broker_away(config, d, Scenario::NodeLoss, Fault::Node, config.node_down_for, Detail::NodeLoss).await
}
