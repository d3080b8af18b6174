//! The `campus-sim` binary as a user meets it: help, errors, `serve`, and a real-mode run
//! over child processes and loopback sockets.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::brokers::{KAFKA, RABBITMQ};

fn campus_sim() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_campus-sim"));
    command.env_remove("RUST_LOG");
    command
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `campus-sim <args> --out <out_dir>`, which must succeed with every check passed.
fn run_passing(args: &[&str], out_dir: &std::path::Path) {
    let out = campus_sim().args(args).arg("--out").arg(out_dir).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks: all passed"), "{stdout}");
}

/// A CSV file's rows, read by column name.
struct Table {
    header: csv::StringRecord,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn read(path: PathBuf) -> Table {
        let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Table { header: reader.headers().unwrap().clone(), rows: reader.records().map(Result::unwrap).collect() }
    }

    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"))
    }

    /// The real row whose first column is `first`.
    fn real(&self, first: &str) -> &csv::StringRecord {
        let mode = self.col("mode");
        self.rows.iter().find(|r| &r[0] == first && &r[mode] == "real").unwrap_or_else(|| panic!("no real {first} row"))
    }

    fn cell(&self, first: &str, column: &str) -> &str {
        &self.real(first)[self.col(column)]
    }
}

#[test]
fn help_explains_the_parts_and_the_real_mode() {
    let out = campus_sim().arg("--help").output().unwrap();
    assert!(out.status.success());
    // clap wraps long help at the terminal's width (100 columns without one), so words are
    // compared with the line breaks folded into single spaces.
    let help = String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in ["sync-rest", "serve", "--real-brokers", "--seed", "--out", "deterministic simulation"] {
        assert!(help.contains(needle), "--help does not mention {needle}:\n{help}");
    }
}

#[test]
fn a_meaningless_setting_is_refused_with_the_reason() {
    let out = campus_sim()
        .args(["sync-rest", "--experiment", "timeout", "--timeout-ms", "3000", "--out"])
        .arg(scratch_dir("refused"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--timeout-ms (3000 ms) must be below --delay-ms (2000 ms)"), "{err}");
}

#[test]
fn brokers_from_compose_is_refused_where_no_compose_broker_is_stopped_or_started() {
    for (args, reason) in [
        (&["sync-rest", "--brokers-from", "compose"][..], "goes with --real-brokers"),
        (&["cluster", "--real-brokers", "--brokers-from", "compose"], "the clustered deployment has no compose file"),
        (&["bench", "--brokers-from", "compose"], "bench never stops a broker"),
    ] {
        let out_dir = scratch_dir("brokers-from");
        let out = campus_sim().args(args).arg("--out").arg(&out_dir).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && err.contains(reason), "{args:?}: {err}");
        assert!(!out_dir.exists(), "{args:?}: no output directory left behind");
    }
}

#[test]
fn a_count_out_of_bounds_is_refused_by_name_before_anything_starts() {
    for (args, flag) in [
        (["sync-rest", "--requests", "4294967296"], "--requests"),
        (["sync-rest", "--requests", "0"], "--requests"),
        (["sync-rest", "--requests", "-1"], "--requests"),
        (["streaming-kafka", "--events", "0"], "--events"),
        (["async-rabbitmq", "--down-for", "0"], "--down-for"),
    ] {
        let out_dir = scratch_dir("bounds");
        let out = campus_sim().args(args).arg("--out").arg(&out_dir).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error, not a crash");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("invalid value '{}' for '{flag}", args[2])), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed before the refusal");
        assert!(!out_dir.exists(), "{args:?}: no output directory left behind");
    }
}

#[test]
fn serve_and_explore_neither_list_nor_take_the_flags_that_mean_nothing_to_them() {
    let help = |command: &str| String::from_utf8(campus_sim().args([command, "--help"]).output().unwrap().stdout).unwrap();
    let (serve, explore) = (help("serve"), help("explore"));
    for flag in ["\n      --real-brokers", "\n      --seed", "\n      --out"] {
        assert!(!serve.contains(flag), "serve --help lists {flag:?}");
    }
    assert!(explore.contains("\n      --real-brokers") && explore.contains("\n      --seed"), "{explore}");
    assert!(!explore.contains("\n      --brokers-from") && !serve.contains("--lab-"), "{explore}\n{serve}");
    for args in [&["serve", "order", "--seed", "4"][..], &["--out", "x", "serve", "order"], &["explore", "--brokers-from", "compose"]] {
        let out = campus_sim().args(args).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && err.contains("means nothing to `campus-sim"), "{args:?}: {err}");
    }
}

#[test]
fn explore_refuses_to_play_for_real_what_it_does_not_play_for_real_and_says_why() {
    for (args, says) in [
        (&["--model", "sync-rest"][..], "sync-rest is explored in the simulation only"),
        (&["--model", "sync-rest", "--cluster"], "sync-rest is explored in the simulation only"),
    ] {
        let out = campus_sim().args(["--real-brokers", "explore"]).args(args).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn fault_flags_are_refused_on_services_other_than_inventory() {
    let out = campus_sim().args(["serve", "order", "--port", "0", "--hang"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("apply to `inventory --model sync-rest` only, not to order of sync-rest"), "{stderr}");
}

/// One HTTP/1.1 request over a fresh loopback connection: (status, body).
fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    (status, reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[test]
fn inventorys_faults_are_switched_at_run_time_through_its_loopback_admin_endpoint() {
    let mut child =
        campus_sim().args(["serve", "inventory", "--model", "sync-rest", "--port", "0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("READY inventory ").unwrap_or_else(|| panic!("not a READY line: {line:?}")).to_owned();
    let reserve = |id: &str| http(&base, "POST", "/reserve", &format!(r#"{{"order_id":"{id}","items":[{{"sku":"pho","qty":1}}]}}"#)).0;
    let result = std::panic::catch_unwind(|| {
        assert_eq!(reserve("o-1"), 200, "healthy at start");
        assert_eq!(http(&base, "POST", "/admin/fault", r#"{"error_status":503}"#).0, 200);
        assert_eq!(reserve("o-2"), 503, "the injected error, from the next request on");
        let (status, shown) = http(&base, "GET", "/admin/fault", "");
        assert_eq!(status, 200);
        assert!(shown.contains(r#""error_status":503"#), "{shown}");
        assert_eq!(http(&base, "POST", "/admin/fault", r#"{"error_status":200}"#).0, 422, "only 400 to 599");
        assert_eq!(http(&base, "POST", "/admin/fault", r#"{"delay":5}"#).0, 422, "no unknown field");
        assert_eq!(http(&base, "DELETE", "/admin/fault", "").0, 200);
        assert_eq!(reserve("o-3"), 200, "cleared");
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn serve_refuses_a_service_the_model_does_not_have() {
    let out = campus_sim().args(["serve", "producer", "--model", "sync-rest", "--port", "0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("sync-rest has no producer service; its services are order, inventory, notification"), "{err}");
}

#[test]
fn serve_announces_the_loopback_address_it_listens_on() {
    let mut child = campus_sim()
        .args(["serve", "inventory", "--model", "sync-rest", "--port", "0", "--delay-ms", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let url = line.trim().strip_prefix("READY inventory ").unwrap_or_else(|| panic!("not a READY line: {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the real port is announced: {url}");
}

#[test]
fn a_real_mode_run_writes_real_rows_next_to_the_simulated_ones() {
    let out_dir = scratch_dir("real");
    let run = |extra: &[&str]| {
        let out = campus_sim()
            .args(["sync-rest", "--requests", "30", "--slow-requests", "4", "--delay-ms", "300", "--timeout-ms", "100"])
            .args(["--patient-timeout-ms", "1000", "--out"])
            .arg(&out_dir)
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let sim = run(&[]);
    assert!(sim.contains("mode=sim") && sim.contains("checks: all passed"), "{sim}");
    let real = run(&["--real-brokers"]);
    assert!(real.contains("mode=real") && real.contains("checks: all passed"), "{real}");

    let mut summary = csv::Reader::from_path(out_dir.join("sync_rest_summary.csv")).unwrap();
    let rows: Vec<(String, String, String)> =
        summary.records().map(|r| r.unwrap()).map(|r| (r[0].to_owned(), r[1].to_owned(), r[11].to_owned())).collect();
    let expected =
        [("baseline", "201:30"), ("delay", "201:4"), ("timeout", "504:4"), ("failure-down", "503:30"), ("failure-5xx", "503:30")];
    for mode in ["sim", "real"] {
        for (experiment, statuses) in expected {
            assert!(
                rows.contains(&(experiment.to_owned(), mode.to_owned(), statuses.to_owned())),
                "no {mode} row {experiment} with {statuses} in {rows:?}"
            );
        }
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Part A — synchronous REST and gRPC (sim)") && report.contains("## Part A — synchronous REST and gRPC (real)")
    );
}

#[test]
fn serve_help_lists_every_environment_variable_it_reads() {
    let out = campus_sim().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in campus::faults::serve_env() {
        assert!(help.contains(&format!("env: {var}")), "serve --help does not show {var}:\n{help}");
    }
}

/// Needs the RabbitMQ that `scripts/brokers.sh up` starts; fails (does not skip) without it.
#[test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
fn a_real_rabbitmq_run_accounts_for_every_order_and_drains_its_outage() {
    let _alone = RABBITMQ.alone();
    let out_dir = scratch_dir("rabbitmq");
    let args =
        ["async-rabbitmq", "--real-brokers", "--down-for", "3", "--lead", "2", "--orders", "40", "--duplicates", "40", "--poison", "10"];
    run_passing(&args, &out_dir);
    let summary = Table::read(out_dir.join("async_rabbitmq_summary.csv"));
    assert!(summary.cell("outage", "peak_backlog").parse::<u64>().unwrap() >= 40, "the backlog rose during 3 s at 20/s");
    assert!(!summary.cell("outage", "drain_s").is_empty(), "the backlog drained");
    assert_eq!(summary.cell("idempotency", "double_reservations"), "0");
    assert_eq!(summary.cell("idempotency", "repeats_absorbed"), "40");
    assert_eq!(summary.cell("poison", "dead_lettered"), "10");
    let backlog = std::fs::read_to_string(out_dir.join("async_rabbitmq_backlog.csv")).unwrap();
    assert!(backlog.lines().any(|l| l.ends_with(",0")), "a sample with inventory down");
}

/// `campus-sim --real-brokers explore <args>` into its own directory: its stdout, whether it
/// succeeded, and `explore_real.csv`.
fn explore_for_real(model: &str, name: &str, args: &[&str]) -> (String, bool, Table) {
    let out_dir = scratch_dir(name);
    let out = campus_sim()
        .args(["--real-brokers", "--seed", "2026", "explore", "--model", model])
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let csv = out_dir.join("explore_real.csv");
    assert!(csv.exists(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (stdout, out.status.success(), Table::read(csv))
}

/// Needs the RabbitMQ that `scripts/brokers.sh up` starts; fails (does not skip) without it.
/// Stops and starts its app when a schedule takes the broker down.
#[test]
#[ignore = "needs RabbitMQ: scripts/test.sh starts it and runs this with --include-ignored"]
fn explore_plays_its_schedules_on_real_rabbitmq_and_judges_them_as_the_simulation_does() {
    let _alone = RABBITMQ.alone();
    // The first four schedules of seed 2026 (broker outages and hangs, duplicates, Inventory
    // down, up to three instances; a database restart is not played on one node, and the case
    // says so).
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real", &["--cases", "4"]);
    assert!(ok, "{stdout}");
    assert_eq!(table.rows.len(), 4, "{stdout}");
    for row in &table.rows {
        let verdicts = ["sim_violations", "real_violations"].map(|c| &row[table.col(c)]);
        assert_eq!(verdicts, ["", ""], "case {}: {stdout}", &row[table.col("case")]);
    }

    // Two orders and Inventory dying between its store commit and its publish of the first —
    // for real, a process aborting there: both runs restart it and decide each order once,
    // the same way.
    let crash = r#"{"stock":2,"orders":[[{"sku":"pho","qty":1}],[{"sku":"coffee","qty":1}]],"faults":[{"crash":{"consumer":"inventory","delivery":1,"point":"before-publish"}}]}"#;
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real-crash", &["--replay", crash]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    assert_eq!([&row[table.col("real_violations")], &row[table.col("same_outcome")]], ["", "true"], "{stdout}");
    assert!(stdout.contains("CRASH inventory (aborted at its crash point)") && stdout.contains("inventory restarted"), "{stdout}");

    // The broker hangs 2 s of the schedule (10 s for real: SIGSTOP, its connections stay open
    // and nothing answers) while two orders are accepted and one of them published again: both
    // runs hold their messages until it answers and decide each order once, the same way.
    let hang = r#"{"stock":2,"orders":[[{"sku":"pho","qty":1}],[{"sku":"pho","qty":1}],[{"sku":"coffee","qty":1}]],"faults":[{"duplicate":{"order":1,"after_ms":30}}],"broker_hang":{"at_ms":10,"for_ms":2000}}"#;
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real-hang", &["--replay", hang]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    assert_eq!([&row[table.col("real_violations")], &row[table.col("same_outcome")]], ["", "true"], "{stdout}");
    assert!(stdout.contains("the broker hangs") && stdout.contains("the broker answers again"), "{stdout}");

    // The broker flaps three times (for real: its app stopped and started, each time waited
    // for) while three orders are accepted and one is published again: each flap returns what
    // a consumer holds; both runs decide each order once and dead-letter nothing, the same way.
    let flaps = r#"{"stock":3,"orders":[[{"sku":"pho","qty":1}],[{"sku":"pho","qty":1}],[{"sku":"coffee","qty":1}]],"faults":[{"duplicate":{"order":0,"after_ms":90}}],"broker_flaps":{"at_ms":30,"times":3}}"#;
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real-flaps", &["--replay", flaps]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    assert_eq!([&row[table.col("real_violations")], &row[table.col("same_outcome")]], ["", "true"], "{stdout}");
    assert_eq!(stdout.matches("the broker goes down").count(), 2 * 3, "three flaps in each trace: {stdout}");

    // Without Inventory's processed-order check, a duplicate takes the stock twice: caught in
    // both, which is the expected outcome of a --break.
    let duplicate = r#"{"stock":2,"orders":[[{"sku":"pho","qty":1}]],"faults":[{"duplicate":{"order":0,"after_ms":100}}]}"#;
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real-dedup", &["--break", "dedup", "--replay", duplicate]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    for column in ["sim_violations", "real_violations"] {
        assert!(row[table.col(column)].contains("stock fell by 2 units but the reserved orders asked for 1"), "{column}: {stdout}");
    }
}

/// Needs the Kafka that `scripts/brokers.sh up` starts; fails (does not skip) without it. Kills
/// and freezes it when a schedule takes the broker down or hangs it.
#[test]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
fn explore_plays_part_cs_schedules_on_real_kafka_and_judges_them_as_the_simulation_does() {
    let _alone = KAFKA.alone();
    // The first two schedules of seed 2026: three Inventory instances scaled out, Analytics
    // throttled, crashing before its commit and reset (a replay); then one with the broker
    // killed for a while and Analytics crashing. Both hold in both runs. (The second's late
    // event may be decided in another order for real: a difference, not a failure.)
    let (stdout, ok, table) = explore_for_real("streaming-kafka", "explore-real-kafka", &["--cases", "2"]);
    assert!(ok, "{stdout}");
    assert_eq!(table.rows.len(), 2, "{stdout}");
    for row in &table.rows {
        let verdicts = ["sim_violations", "real_violations"].map(|c| &row[table.col(c)]);
        assert_eq!(verdicts, ["", ""], "case {}: {stdout}", &row[table.col("case")]);
    }
    assert_eq!(&table.rows[0][table.col("same_outcome")], "true", "{stdout}");

    // Three orders and Inventory dying after its transaction committed, before it learns so —
    // for real, a process aborting there: both runs restart it, it restores its state from the
    // changelog, and each order is decided once, the same way.
    let crash = r#"{"stock":2,"orders":[{"items":[{"sku":"pho","qty":1}],"minute":0},{"items":[{"sku":"pho","qty":1}],"minute":0},{"items":[{"sku":"coffee","qty":1}],"minute":1}],"throttle_per_s":null,"faults":[{"crash":{"consumer":"inventory","batch":1,"point":"before-ack"}}]}"#;
    let (stdout, ok, table) = explore_for_real("streaming-kafka", "explore-real-kafka-crash", &["--replay", crash]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    assert_eq!([&row[table.col("real_violations")], &row[table.col("same_outcome")]], ["", "true"], "{stdout}");
    assert!(stdout.contains("CRASH inventory (aborted at its crash point)") && stdout.contains("inventory restarted"), "{stdout}");

    // Without Inventory's transaction, seed 67's first schedule (four orders, Inventory dying
    // between its outcomes and its changelog on its third batch, a duplicate, a replay) decides
    // an order twice — for real as in the simulation: the command succeeds because it caught it.
    let (stdout, ok, table) = explore_for_real(
        "streaming-kafka",
        "explore-real-kafka-no-transaction",
        &["--seed", "67", "--cases", "1", "--break", "no-transaction", "--shrink-budget", "0"],
    );
    assert!(ok, "{stdout}");
    for verdict in ["sim_violations", "real_violations"] {
        assert!(table.rows[0][table.col(verdict)].contains("decided more than once"), "{verdict}: {stdout}");
    }

    // Seed 54's first schedule silences Analytics' fetches 62 ms in (for real: SIGUSR1 to its
    // process, whose own SilencedLog silences its member): its consumer loop's stall watch
    // replaces the silent consumer, and both runs hold with the same outcome.
    let (stdout, ok, table) = explore_for_real("streaming-kafka", "explore-real-kafka-stall", &["--seed", "54", "--cases", "1"]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    let verdicts = ["sim_violations", "real_violations", "same_outcome"].map(|c| &row[table.col(c)]);
    assert_eq!(verdicts, ["", "", "true"], "{stdout}");
    assert_eq!(&row[table.col("dropped")], "", "the silence is played for real: {stdout}");
}

/// Needs the cluster that `scripts/brokers.sh up --cluster` starts (three RabbitMQ nodes and
/// PostgreSQL); fails (does not skip) without it. Kills node 1 and starts it again; stops
/// PostgreSQL and starts it again.
#[test]
#[ignore = "needs the RabbitMQ cluster and PostgreSQL: scripts/test.sh starts them and runs this with --include-ignored"]
fn a_real_cluster_run_fails_over_a_lost_node_scales_inventory_out_and_rides_out_a_postgresql_restart_without_losing_an_order() {
    let out_dir = scratch_dir("cluster");
    // Part B, small: scripts/test.sh runs the full-size node losses of both parts after this.
    run_passing(
        &[
            "cluster",
            "--real-brokers",
            "--model",
            "async-rabbitmq",
            "--lead",
            "3",
            "--node-down-for",
            "6",
            "--instances",
            "1,2",
            "--backlog",
            "300",
        ],
        &out_dir,
    );
    let summary = Table::read(out_dir.join("cluster_summary.csv"));
    let runs: Vec<(String, String)> = summary.rows.iter().map(|r| (r[0].to_owned(), r[summary.col("model")].to_owned())).collect();
    let expected = [
        ("node-loss", "async-rabbitmq"),
        ("scale-out 1", "async-rabbitmq"),
        ("scale-out 2", "async-rabbitmq"),
        ("scale-out 2 + crash", "async-rabbitmq"),
    ];
    assert_eq!(runs, expected.map(|(e, m)| (e.to_owned(), m.to_owned())));
    for row in &summary.rows {
        let counts = ["mode", "refused", "lost", "double"].map(|c| &row[summary.col(c)]);
        assert_eq!(counts, ["real", "0", "0", "0"], "{row:?}: mode, refused, lost, double");
    }
    assert!(summary.cell("scale-out 1", "orders_per_s").parse::<u64>().unwrap() > 0);
    let samples = Table::read(out_dir.join("cluster_node_loss.csv"));
    assert!(samples.rows.iter().any(|r| &r[samples.col("node_up")] == "0"), "a sample with the node down");

    // PostgreSQL, the stores of three Inventory instances, restarted (1 s of the schedule, 5 s
    // for real) while an order is published again: the duplicate reaches an Inventory whose
    // store does not answer, which holds it until the database is back instead of returning it
    // to the queue until the delivery limit dead-letters it. Both runs decide the order once.
    let restart = r#"{"stock":2,"orders":[[{"sku":"pho","qty":1}]],"faults":[{"duplicate":{"order":0,"after_ms":300}}],"inventories":3,"database_down":{"at_ms":50,"for_ms":1000}}"#;
    let (stdout, ok, table) = explore_for_real("async-rabbitmq", "explore-real-postgres", &["--cluster", "--replay", restart]);
    assert!(ok, "{stdout}");
    let row = &table.rows[0];
    let verdicts = ["sim_violations", "real_violations", "same_outcome"].map(|c| &row[table.col(c)]);
    assert_eq!(verdicts, ["", "", "true"], "{stdout}");
    assert!(stdout.contains("the stores' database goes down") && stdout.contains("duplicate of order #0"), "{stdout}");
}

/// Needs the Kafka that `scripts/brokers.sh up` starts; fails (does not skip) without it.
#[test]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
fn a_real_kafka_run_replays_to_equal_metrics_and_its_lag_returns_to_zero() {
    let _alone = KAFKA.alone();
    let out_dir = scratch_dir("kafka");
    run_passing(&["streaming-kafka", "--real-brokers", "--events", "1500", "--throttle-per-s", "1000", "--down-for", "5"], &out_dir);
    let summary = Table::read(out_dir.join("streaming_kafka_summary.csv"));
    assert_eq!(summary.cell("replay", "replay_equal"), "true");
    assert!(summary.cell("lag", "peak_lag").parse::<u64>().unwrap() > 0, "the lag rose");
    // Inventory SIGKILLed and restarted decides every order exactly once; the poison ends in
    // dead-letters.
    let counts = |experiment: &str| ["decided", "lost", "duplicates", "dead_letters"].map(|c| summary.cell(experiment, c).to_owned());
    assert_eq!(counts("inventory-crash"), ["1500", "0", "0", "0"]);
    assert_eq!(counts("poison"), ["1500", "0", "0", "30"]);
    // Inventory away for 5 s of 25 at 20 events/s: nothing refused, every order decided once
    // it is back, and how long that took.
    assert_eq!(counts("outage"), ["500", "0", "0", "0"]);
    assert!(summary.cell("outage", "peak_lag").parse::<u64>().unwrap() > 0, "orders waited while Inventory was away");
    assert!(summary.cell("outage", "catch_up_s").parse::<f64>().is_ok(), "the backlog drained");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        report.contains("reset to the beginning with `kafka-consumer-groups.sh --bootstrap-server"),
        "the replay uses Kafka's own tool"
    );
    let replay = std::fs::read_to_string(out_dir.join("streaming_kafka_replay.csv")).unwrap();
    assert!(replay.lines().skip(1).all(|l| l.ends_with(",true")), "{replay}");
}

#[test]
fn explore_with_a_break_prints_a_shrunk_schedule_whose_replay_command_shows_the_failure() {
    let out_dir = scratch_dir("explore");
    let out = campus_sim()
        .args(["explore", "--model", "async-rabbitmq", "--break", "dedup", "--cases", "64", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "catching the break is the expected outcome:\n{stdout}");
    for needle in ["shrunk to", "violated:", "simulated events/s"] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let summary = std::fs::read_to_string(out_dir.join("explore_summary.csv")).unwrap();
    assert!(summary.starts_with("model,break,seed,cases_passed,runs,wall_s,runs_per_s,events,events_per_s"), "{summary}");
    let replay = stdout.lines().find(|l| l.trim_start().starts_with("campus-sim explore")).expect("a replay command").trim();
    let json = replay.split_once("--replay '").unwrap().1.trim_end_matches('\'');
    let again = campus_sim()
        .args(["explore", "--model", "async-rabbitmq", "--break", "dedup", "--seed", "2026", "--replay", json, "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let shown = String::from_utf8(again.stdout).unwrap();
    assert!(!again.status.success(), "the replayed schedule still breaks the invariant:\n{shown}");
    assert!(shown.contains("trace (virtual time):") && shown.contains("deliver #"), "{shown}");
}

#[test]
fn explore_refuses_a_break_that_does_not_apply_to_the_model() {
    let out = campus_sim()
        .args(["explore", "--model", "sync-rest", "--break", "dedup", "--out"])
        .arg(scratch_dir("explore-bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--break dedup applies to async-rabbitmq, not to sync-rest"), "{err}");
}

#[test]
fn the_graded_run_in_the_simulation_writes_every_part_with_its_figures_in_seconds() {
    let out_dir = scratch_dir("graded");
    let started = std::time::Instant::now();
    let out = campus_sim().arg("--out").arg(&out_dir).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("graded simulation run: {:.2} s wall", started.elapsed().as_secs_f64());
    let wide: Vec<&str> = stdout.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(wide.is_empty(), "every line fits a 100-column terminal: {wide:#?}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for heading in ["## Part A", "## Part B", "## Part C", "| machine |", "| last written |"] {
        assert!(report.contains(heading), "report.md lacks {heading:?}");
    }
    for figure in
        ["sync_rest_latency_sim.svg", "async_rabbitmq_backlog_sim.svg", "streaming_kafka_lag_sim.svg", "streaming_kafka_replay_sim.svg"]
    {
        let svg = std::fs::read_to_string(out_dir.join(figure)).unwrap_or_else(|_| panic!("{figure} was not drawn"));
        assert!(svg.starts_with("<svg") && (svg.contains("<polyline") || svg.contains("<circle")), "{figure} draws nothing");
        assert!(report.contains(&format!("]({figure})")), "report.md does not show {figure}");
    }
    let backlog = std::fs::read_to_string(out_dir.join("async_rabbitmq_backlog_sim.svg")).unwrap();
    assert!(backlog.contains(">Inventory down</text>"), "the outage's down window is shaded and labelled");
}

/// The text between `before` and the next `after` in `text` (the first such place).
/// Milliseconds as the comparison writes them.
fn ms_text(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn quoted<'t>(text: &'t str, before: &str, after: &str) -> &'t str {
    let start = text.find(before).unwrap_or_else(|| panic!("the report never says {before:?}")) + before.len();
    let len = text[start..].find(after).unwrap_or_else(|| panic!("nothing ends {before:?} with {after:?}"));
    &text[start..start + len]
}

/// The report's cell is the file's: the same text, or the file's number rounded to the
/// decimals the report shows.
fn same_number_or_text(shown: &str, value: &str) -> bool {
    if shown == value {
        return true;
    }
    let decimals = shown.split_once('.').map_or(0, |(_, d)| d.len());
    matches!(value.parse::<f64>(), Ok(v) if shown.parse::<f64>().is_ok() && format!("{v:.decimals$}") == shown)
}

/// Nearest-rank percentile, as the report computes it.
/// The `p`th percentile of latencies in ms as the report computes them: an HdrHistogram of
/// the microseconds the CSV holds.
fn hdr(ms: &[f64], p: f64) -> f64 {
    let latencies: campus_sim::load::Latencies = ms.iter().map(|v| Duration::from_micros((v * 1000.0).round() as u64)).collect();
    latencies.at(p / 100.0).as_secs_f64() * 1000.0
}

/// Orders accepted while Inventory was away: accepted at the first sample with it back minus
/// accepted at the first sample with it down.
fn accepted_while_down(table: &Table, up: &str, accepted: &str) -> u64 {
    let (up, accepted) = (table.col(up), table.col(accepted));
    let rows: Vec<(bool, u64)> = table.rows.iter().map(|r| (&r[up] == "1", r[accepted].parse().unwrap())).collect();
    let down = rows.iter().position(|(up, _)| !up).expect("a sample with Inventory down");
    let back = rows[down..].iter().find(|(up, _)| *up).expect("a sample with Inventory back");
    back.1 - rows[down].1
}

#[test]
fn every_number_the_report_quotes_is_recomputed_from_its_csv_files() {
    let out_dir = scratch_dir("agrees");
    run_passing(&[], &out_dir);
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let csv = |name: &str| Table::read(out_dir.join(name));

    // Every table whose header is a CSV file's is made of that file's rows.
    let mut files_shown = 0;
    for file in ["sync_rest_summary.csv", "sync_rest_left_behind.csv", "async_rabbitmq_summary.csv", "streaming_kafka_summary.csv"] {
        let t = csv(file);
        let header = format!("| {} |", t.header.iter().collect::<Vec<_>>().join(" | "));
        let table = quoted(&report, &header, "\n\n");
        let lines: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(lines.len(), t.rows.len(), "{file}: the report's table has other rows");
        for (line, row) in lines.iter().zip(&t.rows) {
            let shown: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(shown.len(), row.len(), "{file}: {line}");
            for (cell, value) in shown.iter().zip(row) {
                assert!(same_number_or_text(cell, value), "{file}: the report shows {cell:?} where the file has {value:?}: {line}");
            }
        }
        files_shown += 1;
    }
    assert_eq!(files_shown, 4);

    // A simulated run's sections say nothing only a real run did.
    for real_only in ["SIGKILL", "kafka-consumer-groups.sh", "rabbitmqctl", "real Kafka"] {
        assert!(!report.contains(real_only), "the simulated report says {real_only:?}");
    }

    // Part A: the baseline's percentiles, from the requests themselves.
    let requests = csv("sync_rest_requests.csv");
    let latencies = |experiment: &str, protocol: &str| {
        let mut l: Vec<f64> = requests
            .rows
            .iter()
            .filter(|r| &r[0] == experiment && &r[requests.col("protocol")] == protocol)
            .map(|r| r[requests.col("latency_ms")].parse().unwrap())
            .collect();
        l.sort_by(f64::total_cmp);
        l
    };
    let baseline = latencies("baseline", "rest");
    let (p50, p99) = (hdr(&baseline, 50.0), hdr(&baseline, 99.0));
    assert_eq!(quoted(&report, "answered 201; p50 ", ","), format!("{p50:.1} ms"));
    assert_eq!(quoted(&report, &format!("p50 {p50:.1} ms, p99 "), ","), format!("{p99:.1} ms"));

    // Part A over both protocols: the side-by-side row of each experiment from the requests,
    // the bytes per request from the summary, and the count of experiments answered alike.
    let statuses = |experiment: &str, protocol: &str| {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in requests.rows.iter().filter(|r| &r[0] == experiment && &r[requests.col("protocol")] == protocol) {
            *counts.entry(&r[requests.col("status")]).or_default() += 1;
        }
        counts.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(" ")
    };
    let experiments = ["baseline", "open-loop", "delay", "open-delay", "timeout", "timeout-after-reserve", "failure-down", "failure-5xx"];
    for experiment in experiments {
        let (rest, grpc) = (latencies(experiment, "rest"), latencies(experiment, "grpc"));
        let row = format!(
            "| {experiment} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            hdr(&rest, 50.0),
            hdr(&grpc, 50.0),
            hdr(&rest, 99.0),
            hdr(&grpc, 99.0),
            statuses(experiment, "rest"),
            statuses(experiment, "grpc")
        );
        assert!(report.contains(&row), "the side-by-side table lacks {row:?}");
    }
    let alike = experiments.iter().filter(|e| statuses(e, "rest") == statuses(e, "grpc")).count();
    assert!(report.contains(&format!("All {alike} experiments got the same answers over both protocols")), "{alike} alike");
    let sums = csv("sync_rest_summary.csv");
    let bytes = |protocol: &str| {
        let row = sums.rows.iter().find(|r| &r[0] == "baseline" && &r[sums.col("protocol")] == protocol).unwrap();
        row[sums.col("request_bytes")].parse::<f64>().unwrap()
    };
    let said = format!("An order's request is {:.1} bytes of JSON over REST and {:.1} bytes of protobuf", bytes("rest"), bytes("grpc"));
    assert!(report.contains(&said), "the report does not say {said:?}");
    let grpc_row = quoted(&report, "| Part A over gRPC instead of REST | ", " |");
    let grpc_p50 = hdr(&latencies("baseline", "grpc"), 50.0);
    let grpc_p50 = if grpc_p50 < 10.0 { format!("{grpc_p50:.1} ms") } else { format!("{grpc_p50:.0} ms") };
    assert!(grpc_row.starts_with(&format!("the same answers in {alike} of 8 experiments; baseline p50 {grpc_p50}")), "{grpc_row}");

    // Part B's outage: the backlog's peak and when, the orders taken meanwhile.
    let backlog = csv("async_rabbitmq_backlog.csv");
    let depth = backlog.col("queue_depth");
    let peak = backlog.rows.iter().max_by_key(|r| r[depth].parse::<u64>().unwrap()).unwrap();
    let at: f64 = peak[0].parse().unwrap();
    assert_eq!(quoted(&report, "`OrderPlaced` grew to ", " messages"), &peak[depth]);
    assert_eq!(quoted(&report, &format!("grew to {} messages (at ", &peak[depth]), " s)"), format!("{at:.1}"));
    let taken_b = accepted_while_down(&backlog, "inventory_up", "accepted");
    assert_eq!(quoted(&report, "Order kept answering 202 (", " orders accepted while Inventory was down"), taken_b.to_string());

    // Part C: the lag's peak over both topics, the replay's equal metrics, the failure rate,
    // the outage's orders.
    let lag = csv("streaming_kafka_lag.csv");
    let mut per_second: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &lag.rows {
        *per_second.entry(r[0].to_owned()).or_default() += r[lag.col("lag")].parse::<u64>().unwrap();
    }
    let lag_peak = per_second.values().max().unwrap();
    assert_eq!(quoted(&report, "Its lag peaked at ", " records"), lag_peak.to_string());
    let replay = csv("streaming_kafka_replay.csv");
    let equal = replay.rows.iter().filter(|r| &r[replay.col("equal")] == "true").count();
    assert_eq!(
        quoted(&report, "a fresh Analytics read both topics again. ", " metrics equal"),
        format!("{equal} of {}", replay.rows.len())
    );
    let metrics = csv("streaming_kafka_metrics.csv");
    let sum = |c: &str| metrics.rows.iter().map(|r| r[metrics.col(c)].parse::<u64>().unwrap()).sum::<u64>();
    let rate = 100.0 * sum("failed") as f64 / sum("orders") as f64;
    assert_eq!(quoted(&report, "failure rate ", "% overall"), format!("{rate:.2}"));
    let outage = csv("streaming_kafka_outage.csv");
    let taken_c = accepted_while_down(&outage, "inventory_up", "produced");
    assert_eq!(quoted(&report, "The broker went on accepting: ", " events were appended"), taken_c.to_string());

    // The comparison: what it quotes from each part's rows.
    let compare = quoted(&report, "## The three models side by side", "<!-- end compare -->");
    let summary = |file: &str, experiment: &str, column: &str| {
        let t = csv(file);
        let row = t.rows.iter().find(|r| &r[0] == experiment).unwrap_or_else(|| panic!("{file}: no {experiment}"));
        row[t.col(column)].to_owned()
    };
    // Accept and completion under one open loop, from each order's row: the comparison's two
    // rows (p50 · p99; B's and C's completion over the orders meant to arrive up to 1 s before
    // the outage), the table of every percentile, and Part A's requests in flight.
    let load = |file: &str, experiment: &str, over: &str, column: &str, before_s: f64| -> Vec<f64> {
        let t = csv(file);
        let (intended, c) = (t.col("intended_ms"), t.col(column));
        t.rows
            .iter()
            .filter(|r| &r[0] == experiment && &r[t.col("over")] == over && r[intended].parse::<f64>().unwrap() < before_s * 1e3)
            .filter_map(|r| r[c].parse::<f64>().ok())
            .collect()
    };
    let two = |v: &[f64]| format!("{} · {}", ms_text(hdr(v, 50.0)), ms_text(hdr(v, 99.0)));
    let down_s = |file: &str, up: &str| {
        let t = csv(file);
        let at = t.rows.iter().find(|r| &r[t.col(up)] == "0").unwrap();
        at[0].parse::<f64>().unwrap()
    };
    let (lead_b, lead_c) =
        (down_s("async_rabbitmq_backlog.csv", "inventory_up") - 1.0, down_s("streaming_kafka_outage.csv", "inventory_up") - 1.0);
    let inf = f64::INFINITY;
    let cells = |column: &str, before: [f64; 3]| -> [String; 3] {
        [
            two(&load("sync_rest_load.csv", "open-loop", "rest", column, before[0])),
            two(&load("async_rabbitmq_load.csv", "outage", "amqp", column, before[1])),
            two(&load("streaming_kafka_load.csv", "outage", "kafka", column, before[2])),
        ]
    };
    let [a, b, c] = cells("accept_ms", [inf; 3]);
    assert_eq!(
        quoted(compare, "| accept latency, 20 orders/s arriving regardless (p50 · p99 from the intended start) | ", " |\n"),
        format!("{a} — the answer is the outcome | {b} — 202, stored and queued | {c} — appended to the log")
    );
    let [a, b, c] = cells("completion_ms", [inf, lead_b, lead_c]);
    assert_eq!(
        quoted(compare, "| completion latency, same load, normal operation (p50 · p99) | ", " |\n"),
        format!("{a} (in the answer) | {b} — to Notification's confirmation | {c} — to Analytics counting the outcome")
    );
    let five = |v: &[f64]| {
        let max = v.iter().copied().fold(0.0, f64::max);
        format!("{:.1} · {:.1} · {:.1} · {:.1} · {max:.1}", hdr(v, 50.0), hdr(v, 90.0), hdr(v, 99.0), hdr(v, 99.9))
    };
    for (file, model, experiment, over) in [
        ("sync_rest_load.csv", "sync-rest", "open-delay", "rest"),
        ("async_rabbitmq_load.csv", "async-rabbitmq", "outage", "amqp"),
        ("streaming_kafka_load.csv", "streaming-kafka", "outage", "kafka"),
    ] {
        let (a, c) = (load(file, experiment, over, "accept_ms", inf), load(file, experiment, over, "completion_ms", inf));
        let row = format!("| {model} | `{experiment}` | {over} |");
        let line = quoted(compare, &row, "\n");
        let want = format!("| {} | {} | {} | {} |", a.len(), c.len(), five(&a), five(&c));
        assert!(line.ends_with(&want), "{row}{line} does not end {want}");
    }
    let spans: Vec<(f64, f64)> = {
        let t = csv("sync_rest_load.csv");
        t.rows
            .iter()
            .filter(|r| &r[0] == "open-delay" && &r[t.col("over")] == "rest")
            .map(|r| {
                let start: f64 = r[t.col("intended_ms")].parse().unwrap();
                (start, start + r[t.col("accept_ms")].parse::<f64>().unwrap())
            })
            .collect()
    };
    let peak = spans.iter().map(|(at, _)| spans.iter().filter(|(s, e)| s <= at && at < e).count()).max().unwrap();
    assert!(report.contains(&format!("and at most {peak} requests in flight at Order at once")), "peak in flight {peak}");
    let throughput = quoted(compare, "| throughput (virtual time) | ", " |\n");
    let rest_rps: f64 = summary("sync_rest_summary.csv", "baseline", "throughput_rps").parse().unwrap();
    let open_rps: f64 = summary("sync_rest_summary.csv", "open-loop", "throughput_rps").parse().unwrap();
    assert!(
        throughput.starts_with(&format!("{open_rps:.1} orders/s decided in `open-loop`"))
            && throughput.contains(&format!("; {rest_rps:.0} orders/s in `baseline`")),
        "{throughput}"
    );
    let left = csv("sync_rest_left_behind.csv");
    let after = left.rows.iter().find(|r| &r[0] == "timeout-after-reserve").expect("a timeout-after-reserve row");
    let said = format!("{} answers of 504 left {} units taken", &after[left.col("answered_504")], &after[left.col("units_left_behind")]);
    assert!(compare.contains(&said), "the comparison does not say {said:?}");
    let away = quoted(compare, "| Inventory away | ", " |\n");
    assert!(away.contains(&format!("{taken_b} orders taken")) && away.contains(&format!("{taken_c} orders taken")), "{away}");
    let down_over_rest = || requests.rows.iter().filter(|r| &r[0] == "failure-down" && &r[requests.col("protocol")] == "rest");
    let down = down_over_rest().count();
    let refused = down_over_rest().filter(|r| !r[requests.col("status")].starts_with('2')).count();
    assert!(away.starts_with(&format!("refused: {refused} of {down} orders")), "{away}");

    // The broker restarts: the recovery split into the client's retry wait and what came after,
    // each bound read off the samples around the broker's recorded return.
    for (file, summary_file, counter, verb) in [
        ("async_rabbitmq_broker_restart.csv", "async_rabbitmq_summary.csv", "published", "published"),
        ("streaming_kafka_broker_restart.csv", "streaming_kafka_summary.csv", "produced", "appended"),
    ] {
        let back: f64 = summary(summary_file, "broker-restart", "down_until_s").parse().unwrap();
        let t = csv(file);
        let samples: Vec<(f64, u64)> =
            t.rows.iter().map(|r| (r[t.col("t_s")].parse().unwrap(), r[t.col(counter)].parse().unwrap())).collect();
        let at_return = samples.iter().rfind(|(at, _)| *at <= back).unwrap().1;
        let moved = samples.iter().position(|(at, n)| *at > back && *n > at_return).unwrap();
        let (not_yet, by) = (samples[moved - 1].0.max(back) - back, samples[moved].0 - back);
        let said = format!("it had not {verb} again {not_yet:.2} s after the return and had by {by:.2} s");
        assert!(report.contains(&said), "{file}: the report does not say {said:?}");
        let wait: f64 = summary(summary_file, "broker-restart", "retry_wait_s").parse().unwrap();
        assert!((wait - by).abs() < 0.005, "{summary_file}: retry_wait_s {wait}, the samples {by}");
    }
}

#[test]
fn the_real_graded_run_says_how_to_start_brokers_it_cannot_reach() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = campus_sim()
        .args(["--real-brokers", "--out"])
        .arg(scratch_dir("preflight"))
        .env("AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"))
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("RabbitMQ is not reachable at 127.0.0.1:{closed}")), "{err}");
    assert!(err.contains(&format!("Kafka is not reachable at 127.0.0.1:{closed}")), "{err}");
    assert!(err.contains("scripts/brokers.sh up"), "{err}");
    assert!(!String::from_utf8(out.stdout).unwrap().contains("Part A"), "nothing starts before the brokers are there");
}

#[test]
fn logs_written_to_a_pipe_or_file_carry_no_colour_codes() {
    let out = campus_sim()
        .args(["sync-rest", "--requests", "20", "--out"])
        .arg(scratch_dir("no-colour"))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("DEBUG"), "the debug logs are there:\n{err}");
    assert!(!err.contains('\x1b'), "no ANSI escape in a log that is not a terminal:\n{err}");
}

#[test]
fn a_real_part_says_how_to_start_its_broker_before_it_prints_or_writes_anything() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for (part, variable, name, up) in
        [("async-rabbitmq", "AMQP_URL", "RabbitMQ", "up rabbitmq"), ("streaming-kafka", "KAFKA_BOOTSTRAP_SERVERS", "Kafka", "up kafka")]
    {
        let address =
            if part == "async-rabbitmq" { format!("amqp://guest:guest@127.0.0.1:{closed}/%2f") } else { format!("127.0.0.1:{closed}") };
        let out_dir = scratch_dir(&format!("preflight-{part}"));
        let out = campus_sim().args([part, "--real-brokers", "--out"]).arg(&out_dir).env(variable, address).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("{name} is not reachable at 127.0.0.1:{closed}")), "{err}");
        assert!(err.contains(&format!("scripts/brokers.sh {up}")), "{err}");
        assert!(out.stdout.is_empty(), "{part}: no header before the refusal");
        assert!(!out_dir.exists(), "{part}: no output directory left behind");
    }
}

#[test]
fn a_real_cluster_run_says_how_to_start_the_cluster_before_it_prints_or_writes_anything() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The clustered experiments, and Part C's schedules played on the Kafka cluster.
    for command in [
        &["cluster", "--real-brokers", "--model", "streaming-kafka"][..],
        &["--real-brokers", "explore", "--model", "streaming-kafka", "--cluster"],
    ] {
        let out_dir = scratch_dir("preflight-cluster");
        let out = campus_sim()
            .args(command)
            .arg("--out")
            .arg(&out_dir)
            .env("CAMPUS_CLUSTER_BOOTSTRAP_SERVERS", format!("127.0.0.1:{closed}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("the Kafka cluster is not reachable at 127.0.0.1:{closed}")), "{command:?}: {err}");
        assert!(err.contains("scripts/brokers.sh up --cluster"), "{command:?}: {err}");
        assert!(out.stdout.is_empty() && !out_dir.exists(), "{command:?}: nothing printed or written before the refusal");
    }
}

#[test]
fn bench_of_the_simulation_needs_no_broker_and_writes_ratios_against_its_budgets() {
    let out_dir = scratch_dir("bench-sim");
    let out = campus_sim().args(["bench", "--repeats", "1", "--out"]).arg(&out_dir).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut reader = csv::Reader::from_path(out_dir.join("bench.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[..6], ["model", "case", "metric", "ours", "floor", "ratio"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let budgets: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[2] == "wall_s").collect();
    assert_eq!(budgets.len(), 2, "the outage and the 10k events each against the 1 s budget: {rows:?}");
    for r in budgets {
        let (ours, ratio): (f64, f64) = (r[3].parse().unwrap(), r[5].parse().unwrap());
        assert!(ours > 0.0 && (ratio - ours).abs() < 0.01, "a wall time is its own ratio to 1 s: {r:?}");
    }
    let explored: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[2] == "schedules_per_wall_s").collect();
    assert_eq!(explored.len(), 3, "explore's speed for each model: {rows:?}");
    for r in &explored {
        let (ours, floor, ratio): (f64, f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap(), r[5].parse().unwrap());
        assert!(ours > 0.0 && floor == 5000.0 && (ratio - ours / floor).abs() < 0.01, "schedules/s against 5,000: {r:?}");
    }
    // Parts B and C against Part A's rate of the same run: its floor is that rate.
    let part_a: f64 = explored.iter().find(|r| r[1].starts_with("explore sync-rest")).unwrap()[3].parse().unwrap();
    let against_a: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[2] == "schedules_per_wall_s_vs_sync_rest").collect();
    let cases: Vec<&str> = against_a.iter().map(|r| r[1].split(' ').nth(1).unwrap()).collect();
    assert_eq!(cases, ["async-rabbitmq", "streaming-kafka"], "{rows:?}");
    for r in against_a {
        let (ours, floor, ratio): (f64, f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap(), r[5].parse().unwrap());
        assert!(floor == part_a && (ratio - ours / part_a).abs() < 0.01, "schedules/s against Part A's {part_a}: {r:?}");
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Benchmarks"), "{report}");
}

#[test]
fn bench_memory_reads_each_service_processs_memory_after_every_tenth_of_the_orders() {
    let out_dir = scratch_dir("memory");
    let out =
        campus_sim().args(["--real-brokers", "bench", "--model", "sync-rest", "--memory", "2000", "--out"]).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let memory = Table::read(out_dir.join("memory.csv"));
    let (service, orders, rss, peak) = (memory.col("service"), memory.col("orders"), memory.col("rss_mb"), memory.col("peak_rss_mb"));
    for name in ["order", "inventory", "notification"] {
        let rows: Vec<&csv::StringRecord> = memory.rows.iter().filter(|r| &r[service] == name).collect();
        let steps: Vec<u64> = rows.iter().map(|r| r[orders].parse().unwrap()).collect();
        assert_eq!(steps, (1..=10).map(|i| i * 200).collect::<Vec<u64>>(), "{name}");
        for r in rows {
            let (now, high): (f64, f64) = (r[rss].parse().unwrap(), r[peak].parse().unwrap());
            assert!(now > 1.0 && high >= now, "{name}: {now} MiB now, {high} MiB at the peak");
        }
    }
}

#[test]
fn bench_of_a_real_transport_asks_for_real_brokers() {
    for args in [&["bench", "--model", "async-rabbitmq"][..], &["bench", "--end-to-end"]] {
        let out = campus_sim().args(args).arg("--out").arg(scratch_dir("bench-real")).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8(out.stderr).unwrap().contains("add --real-brokers"), "{args:?}");
    }
}
