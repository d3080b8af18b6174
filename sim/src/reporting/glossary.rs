//! The report's glossary: every term it uses that the assignment does not, defined once, in a
//! sentence a student can quote. Only the terms the report's other sections use are listed.

/// (term, what to look for in the report, case-insensitive; definition).
const TERMS: [(&str, &str, &str); 19] = [
    ("virtual time", "virtual", "The simulation's clock: it jumps from one scheduled event to the next, so a 60 s outage runs in milliseconds and the same seed gives the same run."),
    ("the world", "the world", "The simulation's one process that hosts every service as a task over in-memory transports, and where faults (a broker's outage, a kill) are injected."),
    ("p50, p99", "p99", "The latency that half (p50) or 99 % (p99) of requests stayed within (nearest rank)."),
    ("Little's law", "little's law", "Orders waiting = arrival rate × time each waits, on average; so time waiting ≈ orders waiting ÷ arrival rate."),
    ("backoff", "backoff", "The wait a client sits out before trying again after a failure; here it doubles from 100 ms up to a 5 s cap, with jitter."),
    ("drain", "drain", "The time from a component's return until the backlog it left is worked off."),
    ("outbox", "outbox", "A table in Order's own store written in the same transaction as the order; a relay publishes from it, so nothing accepted goes unpublished."),
    ("publisher confirm", "confirm", "RabbitMQ's acknowledgement to a publisher that a message is safely queued."),
    ("prefetch", "prefetch", "How many unacknowledged messages RabbitMQ hands one consumer at a time."),
    ("dead-letter queue", "dead-letter", "Where messages that cannot be processed (malformed, unknown version) are moved, with the reason, instead of blocking the queue."),
    ("idempotent", "idempoten", "Doing it twice has the effect of doing it once; here a repeated order id finds its stored outcome and takes no stock again."),
    ("at least once, exactly once", "once", "At least once: a message may arrive again after a crash. Exactly once: its effect is recorded once, however often it arrives."),
    ("partition, offset", "offset", "A Kafka topic is split into partitions, each an ordered log; an offset is a record's position in its partition."),
    ("consumer lag", "lag", "Records appended to a topic that a consumer group has not yet committed as read."),
    ("read_committed", "read_committed", "Reading only records of committed Kafka transactions: a crashed writer's half-done work is never seen."),
    ("transactional identity", "transactional identity", "The name under which Inventory writes its Kafka transactions; a restarted Inventory claims it and so aborts whatever its predecessor left open."),
    ("changelog", "changelog", "The compacted topic where Inventory records each decision with the items it took, in the same transaction as the outcome; a restarted Inventory restores its stock and decisions from it."),
    ("event time", "event time", "The time an order was placed, carried in its event, as opposed to when it was processed; Analytics counts orders per minute of event time."),
    ("watermark", "watermark", "A record the producer appends to every partition after each batch, carrying the latest event time it has appended; Inventory merges the partitions in event-time order up to it, so every reader decides in the same order."),
];

/// The glossary section for a report whose other sections are `text`; empty when it uses none
/// of the terms.
pub fn section(text: &str) -> String {
    let text = text.to_lowercase();
    let used: Vec<String> = TERMS
        .iter()
        .filter(|(_, needle, _)| text.contains(needle))
        .map(|(term, _, definition)| format!("- **{term}**: {definition}"))
        .collect();
    if used.is_empty() {
        return String::new();
    }
    format!("## Glossary\n\nThe terms this report uses that the assignment does not.\n\n{}\n", used.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_terms_a_report_uses_are_defined() {
        let glossary = section("The backlog drained after the broker's return; the outbox held 600 orders.");
        assert!(glossary.contains("**drain**") && glossary.contains("**outbox**"), "{glossary}");
        assert!(!glossary.contains("**watermark**"), "{glossary}");
        assert_eq!(section("nothing of the kind"), "");
    }
}
