//! The cluster's outputs: the table on the terminal and the report section `cluster/<mode>`,
//! its reasoning computed from the runs.

use std::path::Path;

use super::rows::{Summary, NODE_LOSS_CSV, SUMMARY_CSV};
use super::{Config, Run};
use crate::report::csv;
use crate::report::{markdown_table, text_table, update_report};
use crate::violation::Violation;
use crate::Mode;

pub fn table(summaries: &[Summary]) -> String {
    text_table(&csv::header::<Summary>(), &summaries.iter().map(csv::cells).collect::<Vec<_>>())
}

/// The scale-out rows without a crash, by instance count: (instances, orders/s).
fn throughput(summaries: &[Summary]) -> Vec<(usize, u64)> {
    summaries.iter().filter(|s| s.experiment.starts_with("scale-out") && !s.experiment.ends_with("crash")).filter_map(|s| Some((s.instances, s.orders_per_s?))).collect()
}

fn scale_out_reasoning(summaries: &[Summary], mode: Mode) -> String {
    let rows = throughput(summaries);
    let mut text = String::new();
    if let (Some(&(one, base)), Some(&(most, top))) = (rows.iter().min_by_key(|r| r.0), rows.iter().max_by_key(|r| r.0)) {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|&(n, rate)| vec![n.to_string(), rate.to_string(), (rate / n as u64).to_string(), format!("{:.2}×", rate as f64 / base.max(1) as f64)])
            .collect();
        text.push_str(&markdown_table(&["Inventory instances", "orders/s", "per instance", "vs 1 instance"], &table));
        let speedup = top as f64 / base.max(1) as f64;
        let verdict = if speedup >= 0.8 * (most as f64 / one as f64) {
            format!("Throughput grew almost in step with the instances ({speedup:.2}× with {most}): each added consumer took its own share of the queue.")
        } else if speedup >= 1.2 {
            format!("Throughput grew {speedup:.2}× with {most} instances, less than {most}×: the instances share what they cannot multiply.")
        } else {
            format!("Throughput did not grow with the instances ({speedup:.2}× with {most}): the bottleneck is not Inventory's handling but what the instances share.")
        };
        text.push_str(&format!("\n- **scale-out**: {verdict} "));
        text.push_str(match mode {
            Mode::Sim => "In the simulation handling costs no time and a delivery one simulated hop, so more consumers holding more deliveries at once is all it takes: the model shows the queue's side of scaling, not the machine's.",
            Mode::Real => "Here every instance, the three RabbitMQ nodes (each message written to a majority of the quorum queue's replicas before it is confirmed) and PostgreSQL (one transaction per order, the stock rows locked) share this machine's cores and the same stock rows: adding consumers adds handlers, not cores, and every reservation of an item still waits for the lock of its row.",
        });
        text.push_str(
            " A queue scales by adding consumers and gives up order: the instances take deliveries as they come \
             and decide orders in whatever order they hold them, so two orders for the last unit of an item are \
             decided by whichever instance commits first. A log scales by partitions and keeps order per key.\n",
        );
    }
    for crash in summaries.iter().filter(|s| s.experiment.ends_with("crash")) {
        text.push_str(&format!(
            "- **{}**: one of {} instances was SIGKILLed halfway through the backlog. RabbitMQ returned what it \
             held unacknowledged to the queue and the survivors took it; {} deliveries were answered from the \
             shared store as repeats. {} of {} orders lost, {} decided twice.\n",
            crash.experiment,
            crash.instances,
            crash.repeats.unwrap_or(0),
            crash.lost,
            crash.orders,
            crash.double
        ));
    }
    text
}

fn node_loss_reasoning(run: &Run, summary: &Summary, config: &Config, mode: Mode) -> String {
    match run {
        Run::Messaging(run) => messaging_node_loss(run, summary, config, mode),
        Run::Streaming(run) => streaming_node_loss(run, summary, config, mode),
    }
}

fn streaming_node_loss(run: &crate::streaming_kafka::Run, summary: &Summary, config: &Config, mode: Mode) -> String {
    let Some(loss) = run.node_loss() else { return String::new() };
    let (down, up) = loss.down_window_ms;
    let appended_then = loss.samples.iter().rfind(|s| s.t_ms <= down).map_or(0, |s| s.produced);
    let how = match mode {
        Mode::Sim => format!(
            "In the simulation a broker loss is its clients without a log for the failover ({} s, the model of the controller \
             missing the broker's heartbeats and moving its partitions' leadership).",
            config.streaming.node_failover.as_secs_f64()
        ),
        Mode::Real => "The partitions broker 1 led moved to the two brokers left (replication 3, `min.insync.replicas` 2, so \
                       appends with `acks=all` go on with two in sync); the producer, Inventory's transactions and both \
                       consumer groups found the new leaders in their metadata, with no address of ours changed."
            .to_owned(),
    };
    format!(
        "- **node-loss (Part C)**: the producer appended {} events at {} events/s; with {appended_then} appended, broker 1 of 3 \
         was SIGKILLed ({:.1} s) and started again at {:.1} s. {how} Inventory's read position stood still for at most {} s \
         while records waited. A `read_committed` reader found {} of {} orders lost and {} decided twice.\n",
        run.events,
        config.streaming.produce_rate,
        down as f64 / 1e3,
        up as f64 / 1e3,
        summary.stall_s.map_or("—".to_owned(), |s| format!("{:.0}", s.0)),
        summary.lost,
        summary.orders,
        summary.double
    )
}

fn messaging_node_loss(run: &crate::async_rabbitmq::Run, summary: &Summary, config: &Config, mode: Mode) -> String {
    let Some(loss) = run.node_loss() else { return String::new() };
    let (down, up) = loss.down_window_ms;
    let how = match mode {
        Mode::Sim => format!(
            "In the simulation a node loss is its clients' connections closing and no broker for the failover \
             ({} s, the model's figure); the quorum queues lose nothing.",
            config.messaging.node_failover.as_secs_f64()
        ),
        Mode::Real => "Every service was connected to node 1; each found its connection gone, reconnected to the next node \
                       of its `AMQP_URL`, declared its topology again and resubscribed, while the quorum queues elected \
                       new leaders among the two nodes left."
            .to_owned(),
    };
    format!(
        "- **node-loss (Part B)**: the node the services used was SIGKILLed at {:.1} s and started again at {:.1} s. {how} \
         Order answered 202 throughout ({} refused). No order was decided for at most {} s in a row while some \
         waited; the peak of orders waiting (outbox + queue) was {}. {} of {} orders lost, {} decided twice; {} \
         deliveries came again after the loss and were answered from the store.\n",
        down as f64 / 1e3,
        up as f64 / 1e3,
        summary.refused,
        summary.stall_s.map_or("—".to_owned(), |s| format!("{:.0}", s.0)),
        loss.peak_backlog,
        summary.lost,
        summary.orders,
        summary.double,
        summary.repeats.unwrap_or(0)
    )
}

pub fn write_report(out: &Path, config: &Config, mode: Mode, runs: &[Run], summaries: &[Summary], violations: &[Violation]) -> anyhow::Result<()> {
    let m = &config.messaging;
    let mut text = format!("## Beyond one broker and one instance: Parts B and C on a cluster ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · node-loss: Part B {} orders/s, the node down {} s after {} s; Part C {} events at {} events/s, broker 1 \
         down {} s from a third of the way in · scale-out: a backlog of {} orders, Inventory at {} instances · prefetch {} · \
         files: [`{SUMMARY_CSV}`]({SUMMARY_CSV}), [`{NODE_LOSS_CSV}`]({NODE_LOSS_CSV})\n\n",
        m.seed,
        m.rate,
        m.node_down_for.as_secs(),
        m.lead.as_secs(),
        config.streaming.events,
        config.streaming.produce_rate,
        config.streaming.node_down_for.as_secs(),
        m.backlog,
        config.instances.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        m.prefetch
    ));
    text.push_str(match mode {
        Mode::Sim => "Simulation: `SimQueue` and `SimLog` in virtual time; Inventory's instances are tasks consuming the one queue and sharing one store.\n\n",
        Mode::Real => "Real: a 3-node RabbitMQ cluster and a 3-broker Kafka (`scripts/brokers.sh up --cluster`: Debian's RabbitMQ with quorum queues \
                       replicated on every node; Apache Kafka in KRaft mode, topics replicated 3 with `min.insync.replicas` 2). The services run as \
                       `campus-sim serve` processes: Part B's with `AMQP_URL` listing the three nodes and their state in PostgreSQL \
                       (`--store`, a schema per run) shared by Inventory's instances, Part C's with the three brokers as bootstrap servers.\n\n",
    });
    text.push_str(&markdown_table(&csv::header::<Summary>(), &summaries.iter().map(csv::cells).collect::<Vec<_>>()));
    text.push_str("\n### What the numbers say\n\n");
    for (run, summary) in runs.iter().zip(summaries) {
        text.push_str(&node_loss_reasoning(run, summary, config, mode));
    }
    text.push_str(&scale_out_reasoning(summaries, mode));
    text.push_str(&super::figures::draw(out, mode)?);
    text.push_str("\n### Checks\n\n");
    if violations.is_empty() {
        text.push_str(
            "All passed: Part B, in every run every accepted order in exactly one terminal state, no stock taken twice, \
             one notification per reserved order, no order refused, and after the node loss the outbox and the \
             queue drained; Part C, every order decided exactly once as a `read_committed` reader sees it, stock \
             taken equal to the reserved orders' units, and the consumers caught up.\n",
        );
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("cluster/{mode}"), &text)
}
