//! The assignment map: each item the assignment asks for → where the report answers it, the
//! CSV files and figures behind that answer, the test that checks it and the command that runs
//! it again. A section of `report.md` of its own, the same in every mode; it names files by the
//! parts' own constants, so it sits above the parts.

use std::path::Path;

use crate::reporting::{markdown_table, update_report};
use crate::{async_rabbitmq, streaming_kafka, sync_rest};

/// One item of the assignment and where it is answered.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// The assignment's words, shortened.
    pub asks: &'static str,
    /// The report's section (its heading) and what in it answers.
    pub answered_in: &'static str,
    /// CSV files and figures (`<mode>` in a figure's name is `sim` or `real`).
    pub files: &'static [&'static str],
    /// The test that checks it: `file::function`.
    pub test: &'static str,
    /// The command that runs it again (add `--real-brokers` for real processes and brokers).
    pub command: &'static str,
}

/// Every item, in the assignment's order.
pub const ITEMS: [Item; 10] = [
    Item {
        asks: "A: baseline latency test (N requests)",
        answered_in: "Part A — its table's `baseline` row",
        files: &[sync_rest::rows::REQUESTS_CSV, sync_rest::rows::SUMMARY_CSV, "sync_rest_latency_<mode>.svg"],
        test: "tests/sync_rest_experiments.rs::the_default_run_passes_every_check_and_explains_each_experiment",
        command: "campus-sim sync-rest --experiment baseline",
    },
    Item {
        asks: "A: inject a 2 s delay into Inventory, measure Order's latency",
        answered_in: "Part A — the `delay` row and its reasoning",
        files: &[sync_rest::rows::REQUESTS_CSV, sync_rest::rows::SUMMARY_CSV, "sync_rest_latency_<mode>.svg"],
        test: "tests/sync_rest_experiments.rs::with_a_2s_inventory_delay_the_median_order_takes_at_least_2s_and_succeeds",
        command: "campus-sim sync-rest --experiment delay",
    },
    Item {
        asks: "A: inject an Inventory failure (timeout + error response)",
        answered_in: "Part A — the `timeout`, `timeout-after-reserve` and `failure-*` rows, their reasoning and \"What a failed answer leaves behind\"",
        files: &[sync_rest::rows::REQUESTS_CSV, sync_rest::rows::SUMMARY_CSV, sync_rest::aftermath::LEFT_BEHIND_CSV],
        test: "tests/sync_rest_experiments.rs::a_504_after_reserving_leaves_the_stock_taken_and_a_retry_under_the_same_key_takes_none_twice",
        command: "campus-sim sync-rest --experiment timeout",
    },
    Item {
        asks: "B: kill Inventory for 60 s, keep ordering, restart, show the backlog drain (logs)",
        answered_in: "Part B — `outage`, its turning points and its figure",
        files: &[async_rabbitmq::rows::BACKLOG_CSV, async_rabbitmq::rows::SUMMARY_CSV, "async_rabbitmq_backlog_<mode>.svg"],
        test: "tests/async_rabbitmq.rs::during_an_outage_orders_are_still_accepted_and_the_backlog_rises_then_drains",
        command: "campus-sim async-rabbitmq --experiment outage",
    },
    Item {
        asks: "B: deliver the same `OrderPlaced` twice, no double reservation; the idempotency strategy",
        answered_in: "Part B — `idempotency` and the idempotency strategy",
        files: &[async_rabbitmq::rows::SUMMARY_CSV],
        test: "tests/async_rabbitmq.rs::every_order_delivered_twice_is_reserved_and_notified_once",
        command: "campus-sim async-rabbitmq --experiment idempotency",
    },
    Item {
        asks: "B: DLQ or poison message handling for a malformed event",
        answered_in: "Part B — `poison` and one dead-lettered message per reason",
        files: &[async_rabbitmq::rows::DEAD_LETTERS_CSV, async_rabbitmq::rows::SUMMARY_CSV],
        test: "tests/async_rabbitmq.rs::malformed_messages_are_dead_lettered_with_their_reason_and_good_ones_pass",
        command: "campus-sim async-rabbitmq --experiment poison",
    },
    Item {
        asks: "C: produce 10k events",
        answered_in: "Part C — `produce`",
        files: &[streaming_kafka::rows::SUMMARY_CSV],
        test: "tests/streaming_kafka.rs::the_same_seed_gives_byte_identical_part_c_csv",
        command: "campus-sim streaming-kafka --experiment produce",
    },
    Item {
        asks: "C: consumer lag under throttling",
        answered_in: "Part C — `lag` and its figure",
        files: &[streaming_kafka::rows::LAG_CSV, "streaming_kafka_lag_<mode>.svg"],
        test: "tests/streaming_kafka.rs::a_throttled_consumer_falls_behind_a_full_speed_producer_and_catches_up",
        command: "campus-sim streaming-kafka --experiment lag",
    },
    Item {
        asks: "C: orders per minute and failure rate, as a metrics output",
        answered_in: "Part C — the metrics per minute",
        files: &[streaming_kafka::rows::METRICS_CSV],
        test: "tests/streaming_kafka.rs::a_replay_from_the_beginning_reproduces_the_metrics_which_match_the_workload",
        command: "campus-sim streaming-kafka --experiment replay",
    },
    Item {
        asks: "C: reset the offset, recompute, show replay before and after",
        answered_in: "Part C — `replay`, its table and its figure",
        files: &[streaming_kafka::rows::REPLAY_CSV, "streaming_kafka_replay_<mode>.svg"],
        test: "tests/streaming_kafka.rs::a_replay_from_the_beginning_reproduces_the_metrics_which_match_the_workload",
        command: "campus-sim streaming-kafka --experiment replay",
    },
];

/// Rewrites the map's section of `out/report.md`.
pub fn update(out: &Path) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = ITEMS
        .iter()
        .map(|item| {
            let files: Vec<String> =
                item.files.iter().map(|f| if f.contains("<mode>") { format!("`{f}`") } else { format!("[`{f}`]({f})") }).collect();
            vec![
                item.asks.to_owned(),
                item.answered_in.to_owned(),
                files.join(", "),
                format!("`{}`", item.test),
                format!("`{}`", item.command),
            ]
        })
        .collect();
    let body = format!(
        "## The assignment, item by item\n\nWhere each thing the assignment asks for is answered, the files behind the answer, the \
         test that checks it, and the command that runs it again (add `--real-brokers` for real processes and brokers; \
         `<mode>` is `sim` or `real`).\n\n{}",
        markdown_table(&["the assignment asks", "answered in", "files", "checked by", "run again"], &rows)
    );
    update_report(out, "assignment-map", &body)
}
