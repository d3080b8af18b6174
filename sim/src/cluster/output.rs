//! The cluster's outputs: the table on the terminal and the report section `cluster/<mode>`,
//! its reasoning computed from the runs.

use std::path::Path;

use super::rows::{partition_counts, throughput, Summary, NODE_LOSS_CSV, SUMMARY_CSV};
use super::{Config, Run};
use crate::reporting::csv;
use crate::reporting::{markdown_table, text_table, update_report};
use crate::violation::Violation;
use crate::Mode;
use campus::Model;

pub fn table(summaries: &[Summary]) -> String {
    text_table(&csv::header::<Summary>(), &summaries.iter().map(csv::cells).collect::<Vec<_>>())
}

fn scale_out_reasoning(summaries: &[Summary], mode: Mode) -> String {
    let mut text = messaging_scale_out(summaries, mode);
    text.push_str(&streaming_scale_out(summaries, mode));
    text
}

/// Part C: throughput by instances for each partition count, and the crashed member.
fn streaming_scale_out(summaries: &[Summary], mode: Mode) -> String {
    let counts = partition_counts(summaries);
    if counts.is_empty() {
        return String::new();
    }
    let mut table = Vec::new();
    let mut lines = Vec::new();
    for &p in &counts {
        let rows = throughput(summaries, Model::StreamingKafka, Some(p));
        let Some(&(_, base)) = rows.iter().min_by_key(|r| r.0) else { continue };
        for &(n, rate) in &rows {
            table.push(vec![
                p.to_string(),
                n.to_string(),
                rate.to_string(),
                (rate / n as u64).to_string(),
                format!("{:.2}×", rate as f64 / base.max(1) as f64),
            ]);
        }
        let idle: Vec<String> =
            rows.iter().filter(|(n, _)| *n as u32 > p).map(|(n, _)| format!("with {n}, {} had no partition", *n as u32 - p)).collect();
        let best = rows.iter().max_by_key(|r| r.1).map_or(0, |r| r.0);
        lines.push(format!(
            "over {p} partitions the most orders/s came with {best} instance{}{}",
            if best == 1 { "" } else { "s" },
            if idle.is_empty() { String::new() } else { format!(" ({}: a member beyond the partition count waits idle)", idle.join("; ")) }
        ));
    }
    let mut text = String::from(
        "
Part C, Inventory as members of one consumer group (each partition its own stock, decided in offset order):

",
    );
    text.push_str(&markdown_table(&["partitions", "Inventory instances", "orders/s", "per instance", "vs 1 instance"], &table));
    text.push_str(&format!(
        "
- **scale-out, Part C**: {}. ",
        lines.join("; ")
    ));
    text.push_str(match mode {
        Mode::Sim => "In the simulation a poll and a transaction cost one simulated hop each and handling costs nothing, so more members mean more batches in flight at once, up to one per partition. A simulated drain takes tens of virtual milliseconds, sampled at the timer's 1 ms grain: its rates are rough, their ratios the point.",
        Mode::Real => "Here the members, three Kafka JVMs and the producer share this machine's 2 cores, and every batch is one transaction (its outcomes, changelog entries and offsets written to 2 of 3 replicas, then commit markers): what a member adds is another transaction in flight, not another core.",
    });
    let orders: Vec<String> = summaries
        .iter()
        .filter(|s| s.model == Model::StreamingKafka.name() && s.experiment.starts_with("scale-out"))
        .filter_map(|s| s.out_of_order)
        .map(|o| o.to_string())
        .collect();
    text.push_str(&format!(
        " A log scales by partitions and keeps order per key: the group deals whole partitions to its members, so \
         each partition — and every key on it — is decided in the order it was written, whoever decides it \
         (decisions out of their partition's order, read back from the log: {}). What it gives up is one order \
         across partitions, and with it one stock: each partition here has its own.\n",
        orders.join(", ")
    ));
    for crash in summaries.iter().filter(|s| s.model == Model::StreamingKafka.name() && s.experiment.ends_with("crash")) {
        let calm = summaries
            .iter()
            .find(|s| {
                s.model == crash.model
                    && s.partitions == crash.partitions
                    && s.instances == crash.instances
                    && !s.experiment.ends_with("crash")
            })
            .and_then(|s| s.drain_s);
        text.push_str(&format!(
            "- **{} over {} partitions**: one of {} members, one that held partitions, was SIGKILLed halfway. Its \
             partitions waited until the group evicted it (the session timeout, 6 s), then went to the others, which \
             restored each one's stock from its changelog partition and read on from the committed offsets. Every \
             decision was visible to a `read_committed` reader {} s after the members started{}: a member killed \
             in the middle of a transaction leaves it open, and readers of the partitions it wrote see nothing past \
             it until the broker aborts it (the members' transaction timeout, 10 s; the simulation's transactions are \
             atomic, so it shows the session timeout alone). {} of {} orders lost, {} decided twice.\n",
            crash.experiment,
            crash.partitions.unwrap_or(0),
            crash.instances,
            crash.drain_s.map_or("?".into(), |d| format!("{:.2}", d.0)),
            calm.map_or(String::new(), |d| format!(" (without the crash {:.2} s)", d.0)),
            crash.lost,
            crash.orders,
            crash.double
        ));
    }
    text
}

/// Part B: throughput by instances, and the crashed consumer.
fn messaging_scale_out(summaries: &[Summary], mode: Mode) -> String {
    let rows = throughput(summaries, Model::AsyncRabbitmq, None);
    let mut text = String::new();
    if let (Some(&(one, base)), Some(&(most, top))) = (rows.iter().min_by_key(|r| r.0), rows.iter().max_by_key(|r| r.0)) {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|&(n, rate)| {
                vec![n.to_string(), rate.to_string(), (rate / n as u64).to_string(), format!("{:.2}×", rate as f64 / base.max(1) as f64)]
            })
            .collect();
        text.push_str(&markdown_table(&["Inventory instances", "orders/s", "per instance", "vs 1 instance"], &table));
        let speedup = top as f64 / base.max(1) as f64;
        let verdict = if speedup >= 0.8 * (most as f64 / one as f64) {
            format!("Throughput grew almost in step with the instances ({speedup:.2}× with {most}): each added consumer took its own share of the queue.")
        } else if speedup >= 1.2 {
            format!(
                "Throughput grew {speedup:.2}× with {most} instances, less than {most}×: the instances share what they cannot multiply."
            )
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
    for crash in summaries.iter().filter(|s| s.model == Model::AsyncRabbitmq.name() && s.experiment.ends_with("crash")) {
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

pub fn write_report(
    out: &Path,
    config: &Config,
    mode: Mode,
    runs: &[Run],
    summaries: &[Summary],
    violations: &[Violation],
) -> anyhow::Result<()> {
    let m = &config.messaging;
    let mut text = format!("## Beyond one broker and one instance: Parts B and C on a cluster ({mode})\n\n");
    text.push_str(&format!(
        "Seed {} · node-loss: Part B {} orders/s, the node down {} s after {} s; Part C {} events at {} events/s, broker 1 \
         down {} s from a third of the way in · scale-out: Part B a backlog of {} orders, Part C the {} events over {} \
         partitions, Inventory at {} instances · prefetch {} · files: [`{SUMMARY_CSV}`]({SUMMARY_CSV}), \
         [`{NODE_LOSS_CSV}`]({NODE_LOSS_CSV})\n\n",
        m.seed,
        m.rate,
        m.node_down_for.as_secs(),
        m.lead.as_secs(),
        config.streaming.events,
        config.streaming.produce_rate,
        config.streaming.node_down_for.as_secs(),
        m.backlog,
        config.streaming.events,
        config.partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
        config.instances.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        m.prefetch
    ));
    text.push_str(match mode {
        Mode::Sim => "Simulation: `SimQueue` and `SimLog` in virtual time; Part B's Inventory instances are tasks consuming the one queue and sharing \
                      one store, Part C's are tasks in one consumer group, the group evicting a dead member after the 6 s session timeout.\n\n",
        Mode::Real => "Real: a 3-node RabbitMQ cluster and a 3-broker Kafka (`scripts/brokers.sh up --cluster`: Debian's RabbitMQ with quorum queues \
                       replicated on every node; Apache Kafka in KRaft mode, topics replicated 3 with `min.insync.replicas` 2). The services run as \
                       `campus-sim serve` processes: Part B's with `AMQP_URL` listing the three nodes and their state in PostgreSQL \
                       (`--store`, a schema per run) shared by Inventory's instances, Part C's with the three brokers as bootstrap servers \
                       (scaled out: `serve inventory --instance <i>`, members of one consumer group).\n\n",
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
             taken equal to the reserved orders' units, and the consumers caught up; scaled out, no decision out of its \
             partition's order.\n",
        );
    } else {
        for v in violations {
            text.push_str(&format!("- **FAILED** {v}\n"));
        }
    }
    update_report(out, &format!("cluster/{mode}"), &text)
}
