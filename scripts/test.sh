#!/usr/bin/env bash
# The one test command (README, .ci/run):
#   1. start the real brokers (installs them on a new machine; see scripts/brokers.sh), and
#      the clustered deployment beside them: 3 RabbitMQ nodes, 3 Kafka brokers, PostgreSQL,
#      then Docker's engine and step 7's stand-in images — while cargo builds the test binaries,
#   2. run every test of the workspace: simulation specs, real-socket and real-process tests,
#      and the broker tests (marked `#[ignore]` so that a plain `cargo test` needs no broker;
#      here `--include-ignored` runs them, and they fail, never skip, if a broker is missing);
#      each package's tests are one binary (tests/main.rs, sim/tests/main.rs), built once,
#   3. the graded run, as a student runs it, in the simulation; then for real, each part as its
#      own command with the graded run's parameters, the three side by side (Part A over
#      separate processes and loopback sockets, Part B over processes and the real RabbitMQ
#      with the full 60 s outage and RabbitMQ itself stopped for 30 s, Part C over three
#      processes and the real Kafka with 10,000 events: the broker SIGKILLed mid-stream and
#      started again, Inventory SIGKILLed and restarted, poison dead-lettered, the replay reset
#      with Kafka's own kafka-consumer-groups.sh, and the same reserved/failed per minute as the
#      simulation), and beside them step 4's clustered deployment (its own brokers); each
#      run exits non-zero if any invariant check fails, and a broker the run stopped is started
#      again whatever happens,
#   3b. fifteen of explore's generated fault schedules played on real processes and in the
#      simulation, judged by the same checker (fails if either breaks an invariant): Part B's
#      six on one RabbitMQ node and four on the cluster (node 1 lost, PostgreSQL restarted),
#      Part C's four on one Kafka broker and one on the cluster (broker 1 lost) — the four runs
#      side by side, since they share no broker,
#   4. (beside step 3) the clustered deployment (`campus-sim cluster`), simulation, then real: the
#      RabbitMQ node the services use SIGKILLed under load and started again, Kafka broker 1 of 3
#      the same; Inventory's backlog drained by 1, 2 and 4 instances and once with one of them
#      SIGKILLed — Part B's sharing PostgreSQL, Part C's as members of one consumer group over 3
#      and over 6 partitions — 0 lost, 0 double (Part C: 0 out of its partition's order), or the
#      run fails,
#   5. check that the report holds all nine sections (the comparison first) and that every
#      figure was drawn,
#   6. the benchmarks against the real transports, once (they print figures; targets are not
#      asserted — timings on a shared CI machine are not a test),
#   7. the compose files on a real Docker engine (scripts/docker.sh: Debian's engine, local
#      images, nothing pulled, nothing leaving the machine), with the native brokers stopped
#      since the compose files publish the same ports: each part's services as containers,
#      Inventory killed and started, 0 lost and 0 double (tests/compose_engine.rs); then the
#      lab's broker-restart experiments and Part C's replay against the compose brokers
#      (--brokers-from compose).
# Safe to re-run. Output of steps 3-7 goes to target/test-out/, not to out/. Each step prints
# its duration, and the end a table of them all.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=()
STEP_NAME=""
STEP_START=$SECONDS
step_done() {
  [ -n "$STEP_NAME" ] || return 0
  local took=$((SECONDS - STEP_START))
  printf '<== %s: %d min %02d s\n' "$STEP_NAME" $((took / 60)) $((took % 60))
  STEPS+=("$(printf '%4d s  %s' "$took" "$STEP_NAME")")
}
step() { step_done; STEP_NAME=$*; STEP_START=$SECONDS; printf '\n==> %s\n' "$*"; }

# beside FOREGROUND FUNCTION...: runs the functions in the background, each one's output into a
# file of its own, while FOREGROUND (a function, or `:` for none) runs with its output as it
# comes; when all have ended, prints each function's output whole, in order, and fails if any
# failed. A function chains its commands with `&&` (errexit does not stop a function run in
# the background, or one whose status is tested).
beside() {
  local foreground=$1; shift
  local logs names=("$@") pids=() failed=() i
  logs=$(mktemp -d)
  for i in "${names[@]}"; do "$i" > "$logs/$i" 2>&1 & pids+=($!); done
  "$foreground" || failed+=("$foreground")
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
  for i in "${names[@]}"; do printf -- '--- %s\n' "$i"; cat "$logs/$i"; done
  rm -rf "$logs"
  [ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; return 1; }
}
# side_by_side FUNCTION...: the functions at the same time, none in the foreground. For
# experiments that share no broker (RabbitMQ's beside Kafka's): most of their time is waiting
# out the faults they inject, not the two cores.
side_by_side() { beside : "$@"; }

# The Docker engine of step 7 never outlives the script, whatever happens.
cleanup() { [ "${DOCKER_STARTED:-no}" = no ] || scripts/docker.sh down || true; }
trap cleanup EXIT

step "cargo fmt --check (rustfmt.toml)"
cargo fmt --all -- --check

step "compose files, checked with Compose v1 (docker-compose 1.29) and v2 (compose-go)"
scripts/compose-check.sh

step "brokers and Docker's engine, and beside them the build of every test binary"
# While cargo compiles, the brokers start (most of it waiting for the JVMs and Erlang), then
# Docker's engine and the images of step 7 that need no cargo build (on a new machine: their
# installation, a debootstrap and Jaeger's Go build, minutes that now hide behind the build).
# Their output is printed when both are done, the build's as it goes. The engine idles until
# step 7 and is stopped at the end whatever happens.
build_tests() { cargo test --release --workspace --locked --no-run; }
brokers_and_docker() {
  scripts/brokers.sh up && scripts/brokers.sh up --cluster && scripts/docker.sh up && scripts/docker.sh stand-ins
}
DOCKER_STARTED=yes
beside build_tests brokers_and_docker

step "cargo test (release), broker tests included (the compose ones run in step 7)"
cargo test --release --workspace --locked --exclude campus-sim -- --include-ignored --skip docker_compose_
# The lab's tests on four threads: most of their time is real brokers' faults waited out, and
# the tests that stop, kill or freeze the one RabbitMQ or Kafka hold it alone
# (sim/tests/brokers.rs), so two threads left one waiting on a Kafka test while it could have
# run a RabbitMQ one.
cargo test --release --locked -p campus-sim -- --include-ignored --test-threads 4

rm -rf target/test-out

step "graded run, simulation"
cargo run --release --locked --quiet -- --out target/test-out

step "graded run, real processes and brokers (60 s outage included), each part beside the others and beside the clustered deployment"
# The graded run's three parts, each as `campus-sim <part> --real-brokers` (the graded run's own
# parameters), and the clustered deployment (simulation, then real), at the same time into one
# --out: a run writes its files under the directory's lock, so none loses another's sections.
# They share no broker (the cluster's nodes are not the single ones) and most of their time is
# the faults' waits; their latencies, measured side by side, are not a lone run's (the graded
# run a student runs, `campus-sim --real-brokers`, runs the parts one after the other).
graded_part() { cargo run --release --locked --quiet -- "$1" --real-brokers --out target/test-out; }
graded_sync_rest() { graded_part sync-rest; }
graded_async_rabbitmq() { graded_part async-rabbitmq; }
graded_streaming_kafka() { graded_part streaming-kafka; }
clustered() {
  cargo run --release --locked --quiet -- cluster --out target/test-out &&
  cargo run --release --locked --quiet -- cluster --real-brokers --out target/test-out
}
side_by_side graded_sync_rest graded_async_rabbitmq graded_streaming_kafka clustered

step "explore's schedules on the real deployment: async-rabbitmq 6 of seed 7 on one node, 4 of seed 2026 on the cluster; streaming-kafka 4 of seed 7, 1 of seed 7 on the cluster (all four side by side: they share no broker)"
explore_real() { cargo run --release --locked --quiet -- --real-brokers --seed "$1" explore --model "$2" --cases "$3" "${@:5}" --out "target/test-out/explore/$4"; }
explore_rabbitmq() { explore_real 7 async-rabbitmq 6 async-rabbitmq; }
explore_rabbitmq_cluster() { explore_real 2026 async-rabbitmq 4 async-rabbitmq-cluster --cluster; }
explore_kafka() { explore_real 7 streaming-kafka 4 streaming-kafka; }
explore_kafka_cluster() { explore_real 7 streaming-kafka 1 streaming-kafka-cluster --cluster; }
side_by_side explore_rabbitmq explore_rabbitmq_cluster explore_kafka explore_kafka_cluster

step "report and figures"
for part in sync-rest async-rabbitmq streaming-kafka cluster; do
  for mode in sim real; do
    grep -q -- "<!-- begin $part/$mode -->" target/test-out/report.md || { echo "report.md lacks $part/$mode"; exit 1; }
  done
done
grep -q -- "<!-- begin compare -->" target/test-out/report.md || { echo "report.md lacks the three models side by side"; exit 1; }
for mode in sim real; do
  grep -q -- "^### $mode" target/test-out/report.md || { echo "report.md compares no $mode runs"; exit 1; }
  for figure in compare_outage sync_rest_latency async_rabbitmq_backlog async_rabbitmq_broker_restart streaming_kafka_lag streaming_kafka_replay streaming_kafka_broker_restart streaming_kafka_outage \
                cluster_scale_out cluster_scale_out_kafka; do
    file="target/test-out/${figure}_${mode}.svg"
    grep -q "<polyline\|<circle" "$file" || { echo "$file is missing or draws nothing"; exit 1; }
    grep -q "(${figure}_${mode}.svg)" target/test-out/report.md || { echo "report.md does not show $file"; exit 1; }
  done
done
for figure in cluster_node_loss cluster_node_loss_kafka; do
  for mode in sim real; do
    grep -q "<polyline\|<circle" "target/test-out/${figure}_${mode}.svg" || { echo "${figure}_${mode}.svg is missing or draws nothing"; exit 1; }
  done
done
grep -q -- "<!-- begin traces -->" target/test-out/report.md || { echo "report.md lacks the traces section"; exit 1; }
for model in sync-rest async-rabbitmq streaming-kafka; do
  for mode in sim real; do
    grep -q "^### $model ($mode)" target/test-out/report.md || { echo "report.md traces no $model in $mode"; exit 1; }
    test -s "target/test-out/traces_${model}_${mode}.jsonl" || { echo "traces_${model}_${mode}.jsonl is missing or empty"; exit 1; }
    for which in typical caught; do
      file="target/test-out/trace_${model}_${mode}_${which}.svg"
      grep -q "<rect x=" "$file" || { echo "$file is missing or draws nothing"; exit 1; }
      grep -q "(trace_${model}_${mode}_${which}.svg)" target/test-out/report.md || { echo "report.md does not show $file"; exit 1; }
    done
  done
done
if grep -qF -- "**FAILED**" target/test-out/report.md; then echo "report.md records failed checks"; exit 1; fi
grep -q 'reset to the beginning with `kafka-consumer-groups.sh --bootstrap-server' target/test-out/report.md \
  || { echo "report.md: the real replay did not use kafka-consumer-groups.sh"; exit 1; }
grep -q "per minute differ in 0 of" target/test-out/report.md || { echo "report.md: sim and real Part C not compared, or they differ"; exit 1; }
echo "report.md: 10 sections, 38 figures, every check passed"

step "benchmarks against the real transports (one round each; figures, not pass/fail)"
cargo run --release --locked --quiet -- --real-brokers bench --repeats 1 --out target/test-out
grep -q "^streaming-kafka," target/test-out/bench.csv || { echo "bench.csv lacks the Kafka case"; exit 1; }
for prefetch in 1 10 50; do   # Part B's curve over the prefetch window
  grep -q "^async-rabbitmq,\"[^\"]*prefetch $prefetch\"" target/test-out/bench.csv || { echo "bench.csv lacks Part B at prefetch $prefetch"; exit 1; }
done

step "compose on a real Docker engine: the services' image (the engine and the rest: step 1)"
export CAMPUS_COMPOSE=docker-compose   # Compose v1, Debian's; the lab's compose commands use it too
scripts/brokers.sh down        # the compose files publish the native brokers' ports
scripts/docker.sh up
scripts/docker.sh images

step "compose: each part's services as containers, Inventory killed and started (tests/compose_engine.rs)"
cargo test --release --locked --test specs -- --include-ignored compose_engine::

step "compose: the lab's broker restarts and Part C's replay against the compose brokers (--brokers-from compose)"
rabbit=compose/async-rabbitmq/docker-compose.yml kafka=compose/streaming-kafka/docker-compose.yml
docker-compose -f "$rabbit" up -d rabbitmq
docker-compose -f "$kafka" up -d kafka
compose_rabbitmq() {
  cargo run --release --locked --quiet -- async-rabbitmq --real-brokers --brokers-from compose --experiment broker-restart --out target/test-out/compose
}
compose_kafka() {
  cargo run --release --locked --quiet -- streaming-kafka --real-brokers --brokers-from compose --experiment broker-restart --out target/test-out/compose &&
  cargo run --release --locked --quiet -- streaming-kafka --real-brokers --brokers-from compose --experiment replay --out target/test-out/compose
}
side_by_side compose_rabbitmq compose_kafka
grep -q "reset to the beginning with \`docker-compose -f $kafka exec -T kafka /opt/kafka/bin/kafka-consumer-groups.sh" target/test-out/compose/report.md \
  || { echo "report.md: the compose replay did not use kafka-consumer-groups.sh in the Kafka container"; exit 1; }
docker-compose -f "$rabbit" down -v
docker-compose -f "$kafka" down -v
scripts/docker.sh down
DOCKER_STARTED=no

step_done
printf '\n==> done in %d min %02d s\n' $((SECONDS / 60)) $((SECONDS % 60))
printf '%s\n' "${STEPS[@]}"
