//! The faults `explore --real-brokers` plays inside a real service process: the lab's
//! `campus-sim serve` takes them as hidden flags ([`ServedFaults`]) and applies them to the
//! process's host before its service is built — its RabbitMQ connection wrapped in the same
//! [`CrashingQueue`] the simulation uses, its Kafka client in the same [`CrashingLog`] (the
//! process aborting itself at the crash point), its consumers' fetches silenced on a signal
//! (the production `SilencedLog`), and a safeguard switched off for a `--break`.
//! The `campus` binary has none of this.

use std::path::PathBuf;
use std::sync::Arc;

use campus::faults::silence::SilencedLog;
use campus::host::{Host, Transport};
use campus::transport::log::EventLog;
use campus::transport::queue::QueueName;

use super::log::{CrashingLog, LogCrash};
use super::queue::{CrashPoint, CrashingQueue, QueueCrash};

/// A served process's lab faults (none by default; hidden from `serve --help`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServedFaults {
    /// Die at this point of this delivery: `<queue>:<delivery>:<point>`, e.g.
    /// `inventory.order-placed:3:before-ack` (repeatable).
    #[arg(long = "lab-crash", hide = true, value_parser = parse_crash)]
    pub crashes: Vec<QueueCrash>,
    /// Die at this point of its group's batch: `<group>:<batch>:<point>`, e.g.
    /// `inventory:3:before-publish` (repeatable; Part C).
    #[arg(long = "lab-crash-batch", hide = true, value_parser = parse_log_crash)]
    pub log_crashes: Vec<LogCrash>,
    /// The file that keeps the process's delivery (or batch) count across its lives.
    #[arg(long = "lab-crash-count", hide = true)]
    pub count_file: Option<PathBuf>,
    /// Inventory commits its offsets as soon as it polls (`--break commit-first`; Part C).
    #[arg(long = "lab-commit-first", hide = true)]
    pub commit_first: bool,
    /// Inventory writes outcomes, changelog and offsets separately (`--break no-transaction`).
    #[arg(long = "lab-no-transaction", hide = true)]
    pub no_transaction: bool,
    /// Acknowledge Inventory's deliveries on receipt (`--break auto-ack`).
    #[arg(long = "lab-auto-ack", hide = true)]
    pub auto_ack: bool,
    /// The consumers acknowledge each window as they take it, before its commit
    /// (`--break ack-before-commit`; Part B).
    #[arg(long = "lab-ack-before-commit", hide = true)]
    pub ack_before_commit: bool,
    /// Inventory forgets the orders it processed (`--break dedup`).
    #[arg(long = "lab-no-dedup", hide = true)]
    pub no_dedup: bool,
    /// The loops give up when the broker or a store goes away (`--break no-reconnect`).
    #[arg(long = "lab-no-reconnect", hide = true)]
    pub no_reconnect: bool,
    /// On SIGUSR1, the members this group has in the process go silent: their fetches answer
    /// nothing while their partitions keep their records (the production `SilencedLog`, as the
    /// simulation applies it); a consumer that replaces them reads normally (Part C).
    #[arg(long = "lab-silence-on-usr1", hide = true)]
    pub silence: Option<String>,
    /// The consumer loops keep a consumer whose fetches went silent (`--break no-stall-watch`).
    #[arg(long = "lab-no-stall-watch", hide = true)]
    pub no_stall_watch: bool,
}

fn point_name(point: CrashPoint) -> &'static str {
    match point {
        CrashPoint::BeforeCommit => "before-commit",
        CrashPoint::BeforePublish => "before-publish",
        CrashPoint::BeforeAck => "before-ack",
    }
}

/// `<where>:<n>:<point>`, each part read.
fn parse_point(text: &str) -> Result<(&str, u32, CrashPoint), String> {
    let mut parts = text.split(':');
    let (Some(at), Some(n), Some(point), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{text:?} is not <queue or group>:<n>:<point>"));
    };
    let n = n.parse().map_err(|e| format!("{n:?}: {e}"))?;
    let point = [CrashPoint::BeforeCommit, CrashPoint::BeforePublish, CrashPoint::BeforeAck]
        .into_iter()
        .find(|p| point_name(*p) == point)
        .ok_or_else(|| format!("no crash point {point:?}"))?;
    Ok((at, n, point))
}

fn parse_crash(text: &str) -> Result<QueueCrash, String> {
    let (queue, delivery, point) = parse_point(text)?;
    let queue = QueueName::ALL.into_iter().find(|q| q.suffix() == queue).ok_or_else(|| format!("no queue {queue:?}"))?;
    Ok(QueueCrash { queue, instance: 0, delivery, point })
}

fn parse_log_crash(text: &str) -> Result<LogCrash, String> {
    let (group, batch, point) = parse_point(text)?;
    Ok(LogCrash { group: group.to_owned(), batch, point })
}

impl ServedFaults {
    /// The flags that give a process these faults.
    pub fn flags(&self) -> Vec<String> {
        let queue = self.crashes.iter().map(|c| format!("--lab-crash={}:{}:{}", c.queue.suffix(), c.delivery, point_name(c.point)));
        let log = self.log_crashes.iter().map(|c| format!("--lab-crash-batch={}:{}:{}", c.group, c.batch, point_name(c.point)));
        let mut flags: Vec<String> = queue.chain(log).collect();
        if let Some(file) = &self.count_file {
            flags.push(format!("--lab-crash-count={}", file.display()));
        }
        if let Some(group) = &self.silence {
            flags.push(format!("--lab-silence-on-usr1={group}"));
        }
        let switches = [
            (self.auto_ack, "--lab-auto-ack"),
            (self.ack_before_commit, "--lab-ack-before-commit"),
            (self.no_dedup, "--lab-no-dedup"),
            (self.no_reconnect, "--lab-no-reconnect"),
            (self.commit_first, "--lab-commit-first"),
            (self.no_transaction, "--lab-no-transaction"),
            (self.no_stall_watch, "--lab-no-stall-watch"),
        ];
        for (on, flag) in switches {
            if on {
                flags.push(flag.into());
            }
        }
        flags
    }

    /// Where the delivery count is kept (in the run's data directory, which the real hosts
    /// create).
    fn count_file(&self) -> PathBuf {
        self.count_file.clone().unwrap_or_else(|| std::env::temp_dir().join("campus-sim.crash-count"))
    }

    /// The deliveries (or batches) the process's earlier lives counted (0 on its first).
    pub fn delivered_before(&self) -> std::io::Result<u32> {
        match std::fs::read_to_string(self.count_file()) {
            Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// `host` suffering these faults, its deliveries counted on from `delivered_before` (called
    /// inside the process's runtime: the silence's signal is listened for by a task of its own).
    pub fn apply(&self, host: Host, delivered_before: u32) -> Host {
        let safeguards = campus::safeguards::Safeguards {
            dedup: host.safeguards.dedup && !self.no_dedup,
            reconnect: host.safeguards.reconnect && !self.no_reconnect,
            transactional: host.safeguards.transactional && !self.no_transaction,
            stall_watch: host.safeguards.stall_watch && !self.no_stall_watch,
            ack_after_commit: host.safeguards.ack_after_commit && !self.ack_before_commit,
        };
        let count = (self.count_file(), delivered_before);
        let transport = match &host.transport {
            Transport::Queue(mq) if !self.crashes.is_empty() || self.auto_ack => {
                Transport::Queue(Arc::new(CrashingQueue::in_process(mq.clone(), self.crashes.clone(), count, self.auto_ack)))
            }
            Transport::Log(log) if !self.log_crashes.is_empty() || self.commit_first => {
                let commit_first = self.commit_first.then(|| campus::streaming_kafka::consumers::INVENTORY_GROUP.to_owned());
                Transport::Log(Arc::new(CrashingLog::in_process(log.clone(), self.log_crashes.clone(), count, commit_first)))
            }
            other => other.clone(),
        };
        let transport = match (transport, &self.silence) {
            (Transport::Log(log), Some(group)) => Transport::Log(silenced_on_usr1(log, group)),
            (transport, _) => transport,
        };
        Host { transport, safeguards, ..host }
    }
}

/// `log` behind a [`SilencedLog`] that silences `group`'s members each time the process
/// receives SIGUSR1 (`explore --real-brokers` sends it at the schedule's stall).
fn silenced_on_usr1(log: Arc<dyn EventLog>, group: &str) -> Arc<dyn EventLog> {
    let silenced = Arc::new(SilencedLog::new(log));
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            let (silenced, group) = (silenced.clone(), group.to_owned());
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    let members = silenced.silence(&group);
                    tracing::warn!(%group, members = members.len(), "the lab silenced the group's fetches (SIGUSR1)");
                }
            });
        }
        Err(e) => tracing::error!(error = %e, "listening for SIGUSR1: the lab's silence cannot be applied"),
    }
    silenced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_reads_back_from_its_flag() {
        let faults = ServedFaults {
            crashes: vec![QueueCrash { queue: QueueName::InventoryInbox, instance: 0, delivery: 3, point: CrashPoint::BeforePublish }],
            no_dedup: true,
            ..ServedFaults::default()
        };
        let flags = faults.flags();
        assert_eq!(flags, ["--lab-crash=inventory.order-placed:3:before-publish", "--lab-no-dedup"]);
        assert_eq!(parse_crash(flags[0].trim_start_matches("--lab-crash=")), Ok(faults.crashes[0]));
        assert!(parse_crash("inventory.order-placed:3").is_err());

        let faults = ServedFaults {
            log_crashes: vec![LogCrash { group: "inventory".into(), batch: 2, point: CrashPoint::BeforeAck }],
            commit_first: true,
            ..ServedFaults::default()
        };
        let flags = faults.flags();
        assert_eq!(flags, ["--lab-crash-batch=inventory:2:before-ack", "--lab-commit-first"]);
        assert_eq!(parse_log_crash(flags[0].trim_start_matches("--lab-crash-batch=")), Ok(faults.log_crashes[0].clone()));
    }
}
