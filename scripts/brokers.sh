#!/usr/bin/env bash
# Install, start, stop and check the real brokers on a machine without Docker.
#
#   scripts/brokers.sh up [rabbitmq|kafka|all]     install what is missing, start, wait until ready
#   scripts/brokers.sh down [rabbitmq|kafka|all]   stop
#   scripts/brokers.sh status                      say what runs, exit 1 if something is down
#   scripts/brokers.sh pause rabbitmq              a broker outage: `rabbitmqctl stop_app` (the node
#                                                  stays up, every connection is closed)
#   scripts/brokers.sh resume rabbitmq             `rabbitmqctl start_app`, wait until it serves
#   scripts/brokers.sh freeze rabbitmq             a hung broker: its node SIGSTOPped (connections
#                                                  stay open, nothing answers)
#   scripts/brokers.sh thaw rabbitmq               SIGCONT, wait until it serves
#   scripts/brokers.sh freeze kafka                a hung broker: the Kafka JVM SIGSTOPped
#   scripts/brokers.sh thaw kafka                  SIGCONT, wait until it serves
#   scripts/brokers.sh kill kafka                  a broker crash: SIGKILL the Kafka JVM (`up kafka`
#                                                  starts it again and waits until it serves)
#   scripts/brokers.sh which kafka-consumer-groups.sh
#                                                  print the path of Kafka's own tool (installed
#                                                  with the jars; runs Kafka's ConsumerGroupCommand)
#   scripts/brokers.sh up|down|status --cluster    the clustered deployment: a 3-node RabbitMQ
#                                                  cluster (AMQP 127.0.0.1:5681-5683), 3 Kafka
#                                                  brokers (127.0.0.1:19092-19094, replication 3,
#                                                  min.insync.replicas 2) and PostgreSQL
#                                                  (postgres://campus:campus@127.0.0.1:5432/campus)
#   scripts/brokers.sh up|down postgres            PostgreSQL alone (Debian's package)
#   scripts/brokers.sh kill rabbitmq-node N        a node loss: SIGKILL cluster node N (1-3);
#   scripts/brokers.sh kill kafka-node N           `up --cluster` starts it again and waits
#   scripts/brokers.sh which kafka-libs            fetch Kafka's jars if needed, print their directory
#   scripts/brokers.sh purge [--all]               stop everything (scripts/docker.sh's engine too) and
#                                                  remove what the scripts installed: the Debian packages
#                                                  they added (listed in their ledger), Kafka's jars and
#                                                  data, the cluster's directories, PostgreSQL's campus
#                                                  role and database, the Docker engine's images. --all
#                                                  also removes RabbitMQ, PostgreSQL and Docker when they
#                                                  were there before the scripts ran: a new machine again.
#
# Safe to run twice: every step checks before it acts. Everything is bound to 127.0.0.1.
# RabbitMQ comes from Debian's `rabbitmq-server` package; Apache Kafka (KRaft, single node) runs
# from its jars, fetched once with Maven into $CAMPUS_BROKER_HOME (default ~/.cache/campus-sim),
# outside the clone so CI re-runs do not download again. Every Debian package the scripts add is
# written to $CAMPUS_BROKER_HOME/installed-packages, the list `purge` removes.
set -Eeuo pipefail
SCRIPT_NAME=brokers
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KAFKA_HOME="$HOME_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$HOME_DIR/kafka-data"
KAFKA_LOGS="$HOME_DIR/kafka-logs"
KAFKA_PID="$HOME_DIR/kafka.pid"
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
CLUSTER_HOME="$HOME_DIR/cluster"
RABBIT_CLUSTER_AMQP=5680      # node N listens on 5680+N
RABBIT_CLUSTER_DIST=25680     # its Erlang distribution on 25680+N
RABBIT_PROMETHEUS=15692       # rabbitmq_prometheus: the single node here, cluster node N on 15692+N
KAFKA_CLUSTER_PORT=19091      # broker N on 19091+N
KAFKA_CLUSTER_CONTROLLER=19191  # its controller on 19191+N
PG_URL="postgres://campus:campus@127.0.0.1:5432/campus"

# ---------------------------------------------------------------- RabbitMQ
# A node's rabbitmq.conf: AMQP on 127.0.0.1:$1, and rabbitmq_prometheus' endpoint on
# 127.0.0.1:$2 (`/metrics`: queue depths, consumers, redeliveries, as RabbitMQ counts them).
rabbit_conf() {
  printf '# written by campus-sim scripts/brokers.sh\nlisteners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$1"
  printf 'prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = %s\n' "$2"
}
# The plugins a node starts with (an Erlang term; `%%` starts a comment).
rabbit_plugins() { printf '%%%% written by campus-sim scripts/brokers.sh\n[rabbitmq_prometheus].\n'; }

rabbit_installed() { [ -x /usr/sbin/rabbitmq-server ]; }
rabbit_running() { as_root /usr/sbin/rabbitmqctl -q status >/dev/null 2>&1; }
# The node's Erlang VM answers, whether its app runs or not.
rabbit_node_up() { as_root /usr/sbin/rabbitmqctl -q ping >/dev/null 2>&1; }

rabbit_install() { rabbit_installed || apt_install RabbitMQ rabbitmq-server; }

rabbit_up() {
  rabbit_install
  epmd_loopback
  if rabbit_running; then
    say "rabbitmq already running"
  elif rabbit_node_up; then
    # The node answers but its app is stopped (`pause`, or a lab run killed before it resumed
    # it): start the app rather than a second node, which would wait for a startup that never comes.
    say "rabbitmq's node runs with its app stopped: start_app"
    as_root /usr/sbin/rabbitmqctl -q start_app >/dev/null
  else
    say "starting rabbitmq"
    # Loopback only: AMQP, the Prometheus endpoint and the inter-node distribution port.
    as_root mkdir -p /etc/rabbitmq
    if ! as_root test -f /etc/rabbitmq/rabbitmq.conf || ! as_root grep -q 'prometheus.tcp.ip' /etc/rabbitmq/rabbitmq.conf; then
      rabbit_conf 5672 "$RABBIT_PROMETHEUS" | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    fi
    if ! as_root test -f /etc/rabbitmq/enabled_plugins || ! as_root grep -q campus-sim /etc/rabbitmq/enabled_plugins; then
      rabbit_plugins | as_root tee /etc/rabbitmq/enabled_plugins >/dev/null
    fi
    if ! as_root test -f /etc/rabbitmq/rabbitmq-env.conf || ! as_root grep -q campus-sim /etc/rabbitmq/rabbitmq-env.conf; then
      printf '# written by campus-sim scripts/brokers.sh\nNODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\nERL_EPMD_ADDRESS=127.0.0.1\n' \
        | as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
    fi
    as_root /usr/sbin/rabbitmq-server -detached
  fi
  # `await_startup` fails at once while the node has not yet registered with epmd: retry until a deadline.
  local deadline=$((SECONDS + 120))
  until as_root timeout 60 /usr/sbin/rabbitmqctl -q await_startup >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "rabbitmq did not start within 120 s (see /var/log/rabbitmq)"
    sleep 1
  done
  port_open 5672 || die "rabbitmq runs but 127.0.0.1:5672 is closed"
  if port_open "$RABBIT_PROMETHEUS"; then
    say "rabbitmq ready on amqp://127.0.0.1:5672, its metrics on http://127.0.0.1:$RABBIT_PROMETHEUS/metrics"
  else
    say "rabbitmq ready on amqp://127.0.0.1:5672 (no metrics endpoint: started before the scripts enabled rabbitmq_prometheus; '$0 down' then 'up' enables it)"
  fi
}

rabbit_pause() {
  rabbit_running || die "rabbitmq is not running"
  as_root /usr/sbin/rabbitmqctl -q stop_app >/dev/null
  say "rabbitmq paused (stop_app): connections closed, AMQP refused"
}

rabbit_resume() {
  as_root /usr/sbin/rabbitmqctl -q start_app >/dev/null
  as_root timeout 60 /usr/sbin/rabbitmqctl -q await_startup >/dev/null 2>&1 || die "rabbitmq did not start its app again"
  local deadline=$((SECONDS + 60))
  until port_open 5672; do
    [ "$SECONDS" -lt "$deadline" ] || die "rabbitmq's app started but 127.0.0.1:5672 stays closed"
    sleep 0.2
  done
  say "rabbitmq resumed (start_app) on amqp://127.0.0.1:5672"
}

# The single node's Erlang VM (the pid file rabbitmq-server writes for NODENAME rabbit@localhost).
RABBIT_PID_FILE=/var/lib/rabbitmq/mnesia/rabbit@localhost.pid

rabbit_freeze() {
  rabbit_running || die "rabbitmq is not running"
  local pid; pid=$(as_root cat "$RABBIT_PID_FILE")
  as_root kill -STOP "$pid"
  say "rabbitmq frozen (SIGSTOP, pid $pid): connections open, nothing answers"
}

rabbit_thaw() {
  as_root test -f "$RABBIT_PID_FILE" || die "rabbitmq is not running"
  local pid; pid=$(as_root cat "$RABBIT_PID_FILE")
  as_root kill -CONT "$pid"
  as_root timeout 60 /usr/sbin/rabbitmqctl -q await_startup >/dev/null 2>&1 || die "rabbitmq did not answer again after SIGCONT"
  say "rabbitmq thawed (SIGCONT, pid $pid)"
}

rabbit_down() {
  if rabbit_installed && rabbit_running; then
    as_root /usr/sbin/rabbitmqctl -q stop && say "rabbitmq stopped"
  else
    say "rabbitmq not running"
  fi
}

# ---------------------------------------------------------------- Kafka
kafka_cp() { echo "$KAFKA_LIBS/*"; }

kafka_java() {
  java -Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
    -cp "$(kafka_cp)" "$@"
}

kafka_fetch() {
  if [ -f "$KAFKA_LIBS/.complete" ]; then return; fi
  command -v java >/dev/null || die "java (17+) is needed for Kafka"
  command -v mvn >/dev/null || die "maven is needed to fetch the Kafka jars"
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven (once)"
  mkdir -p "$KAFKA_HOME"
  cat >"$KAFKA_HOME/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>campus-sim</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$KAFKA_LIBS"
  (cd "$KAFKA_HOME" && mvn -B -q -Dmaven.repo.local="$HOME_DIR/m2" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime) \
    >"$KAFKA_HOME/maven.log" 2>&1 || die "maven could not fetch the Kafka jars (see $KAFKA_HOME/maven.log)"
  touch "$KAFKA_LIBS/.complete"
}

# Kafka's distribution starts its tools through bin/*.sh wrappers around kafka-run-class.sh; the
# jars from Maven come without them, so write the one the lab uses: the same class, the same
# arguments as the distribution's kafka-consumer-groups.sh.
kafka_tools() {
  mkdir -p "$KAFKA_HOME/bin"
  local tool="$KAFKA_HOME/bin/kafka-consumer-groups.sh"
  [ -x "$tool" ] && return
  cat >"$tool" <<TOOL
#!/usr/bin/env bash
# Apache Kafka $KAFKA_VERSION's kafka-consumer-groups.sh, written by campus-sim's scripts/brokers.sh.
exec java -Xmx256m -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" \
  -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "\$@"
TOOL
  chmod +x "$tool"
}

# What every broker of the lab has in common, the single one and the cluster's. A transaction
# left open by a SIGKILLed writer is aborted within a second of its timeout (Kafka looks every
# 10 s by default): until then readers of its partitions see nothing past it (docs/cluster.md).
kafka_shared_props() {
  cat <<'PROPS'
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.partitions=3
offsets.topic.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
PROPS
}

kafka_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_HOME/server.properties" <<PROPS
# written by campus-sim scripts/brokers.sh: single node, KRaft, loopback only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
log.dirs=$KAFKA_DATA
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
$(kafka_shared_props)
PROPS
  cat >"$KAFKA_HOME/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
L4J
}

kafka_running() { [ -f "$KAFKA_PID" ] && kill -0 "$(cat "$KAFKA_PID")" 2>/dev/null; }

kafka_ready() {
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

kafka_up() {
  kafka_fetch
  kafka_tools
  if kafka_running; then
    say "kafka already running (pid $(cat "$KAFKA_PID"))"
  else
    if port_open "$KAFKA_PORT"; then die "127.0.0.1:$KAFKA_PORT is taken by a process this script did not start"; fi
    kafka_config
    if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
      say "formatting kafka storage"
      local id; id=$(kafka_java kafka.tools.StorageTool random-uuid)
      kafka_java kafka.tools.StorageTool format -t "$id" -c "$KAFKA_HOME/server.properties" --ignore-formatted >/dev/null
    fi
    say "starting kafka $KAFKA_VERSION"
    nohup java -Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
      -cp "$(kafka_cp)" kafka.Kafka "$KAFKA_HOME/server.properties" \
      >"$KAFKA_LOGS/stdout.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_PID"
  fi
  local deadline=$((SECONDS + 120))
  until kafka_ready; do
    kafka_running || die "kafka exited; see $KAFKA_LOGS/server.log and $KAFKA_LOGS/stdout.log"
    [ "$SECONDS" -lt "$deadline" ] || die "kafka did not answer a metadata request within 120 s"
    sleep 1
  done
  say "kafka ready on 127.0.0.1:$KAFKA_PORT"
}

kafka_down() {
  if kafka_running; then
    local pid; pid=$(cat "$KAFKA_PID")
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$KAFKA_PID"
    say "kafka stopped"
  else
    say "kafka not running"
  fi
}

kafka_freeze() {
  kafka_running || die "kafka is not running"
  local pid; pid=$(cat "$KAFKA_PID")
  kill -STOP "$pid"
  say "kafka frozen (SIGSTOP, pid $pid): connections open, nothing answers"
}

kafka_thaw() {
  [ -f "$KAFKA_PID" ] || die "kafka is not running"
  local pid; pid=$(cat "$KAFKA_PID")
  kill -CONT "$pid"
  for _ in $(seq 120); do kafka_ready && break; sleep 0.5; done
  kafka_ready || die "kafka did not answer again after SIGCONT"
  say "kafka thawed (SIGCONT, pid $pid)"
}

kafka_kill() {
  kafka_running || die "kafka is not running"
  local pid; pid=$(cat "$KAFKA_PID")
  kill -9 "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$KAFKA_PID"
  say "kafka killed (SIGKILL, pid $pid)"
}

# ---------------------------------------------------------------- epmd
# The Erlang port mapper every RabbitMQ node registers with. Debian's package may start it on
# all interfaces while installing; on loopback only unless a node already uses it.
epmd_path() { local p; for p in /usr/lib/erlang/erts-*/bin/epmd; do [ -x "$p" ] && { echo "$p"; return; }; done; }

epmd_loopback() {
  local epmd; epmd=$(epmd_path)
  [ -n "$epmd" ] || return 0
  if ! as_root "$epmd" -names >/dev/null 2>&1; then
    as_root "$epmd" -address 127.0.0.1 -daemon
  elif ! as_root "$epmd" -names 2>/dev/null | grep -q '^name ' && ss -ltn 2>/dev/null | grep -q '0.0.0.0:4369'; then
    as_root "$epmd" -kill >/dev/null 2>&1 || true
    as_root "$epmd" -address 127.0.0.1 -daemon
  fi
}

# ---------------------------------------------------------------- RabbitMQ cluster
# Three nodes beside the single one above, each with its own name, ports, data directory and
# an empty RABBITMQ_CONF_ENV_FILE (the package's rabbitmq-env.conf would pin the node name);
# joined to node 1. Quorum queues declared there get a replica on every node and keep serving
# while two of three are up.
rnode_dir() { echo "$CLUSTER_HOME/rabbit$1"; }
rnode_name() { echo "campus$1@localhost"; }
rnode_env() {
  local n=$1 dir; dir=$(rnode_dir "$1")
  echo env RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_NODENAME="$(rnode_name "$n")" \
    RABBITMQ_NODE_PORT=$((RABBIT_CLUSTER_AMQP + n)) RABBITMQ_DIST_PORT=$((RABBIT_CLUSTER_DIST + n)) \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
}
rctl() { local n=$1; shift; as_root $(rnode_env "$n") /usr/sbin/rabbitmqctl -n "$(rnode_name "$n")" "$@"; }
rnode_running() { rctl "$1" -q status >/dev/null 2>&1; }

rnode_start() {
  local n=$1 dir; dir=$(rnode_dir "$1")
  if rnode_running "$n"; then return; fi
  as_root mkdir -p "$dir/mnesia" "$dir/log"
  : | as_root tee "$dir/rabbitmq-env.conf" >/dev/null
  rabbit_conf $((RABBIT_CLUSTER_AMQP + n)) $((RABBIT_PROMETHEUS + n)) | as_root tee "$dir/rabbitmq.conf" >/dev/null
  rabbit_plugins | as_root tee "$dir/enabled_plugins" >/dev/null
  # The nodes run as the rabbitmq user: it must reach and own their directories.
  local d="$dir"; while [ "$d" != / ]; do d=$(dirname "$d"); as_root chmod o+x "$d" 2>/dev/null || true; done
  as_root chown -R rabbitmq:rabbitmq "$dir"
  say "starting rabbitmq cluster node $n ($(rnode_name "$n"), amqp 127.0.0.1:$((RABBIT_CLUSTER_AMQP + n)))"
  # The distribution port on loopback too (the inet_dist_use_interface kernel flag).
  as_root $(rnode_env "$n") RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    /usr/sbin/rabbitmq-server -detached
}

rnode_await() {
  local n=$1 deadline=$((SECONDS + 120))
  until rctl "$n" -q await_startup >/dev/null 2>&1 && port_open $((RABBIT_CLUSTER_AMQP + n)); do
    [ "$SECONDS" -lt "$deadline" ] || die "rabbitmq cluster node $n did not start within 120 s (see $(rnode_dir "$n")/log)"
    sleep 1
  done
}

rcluster_up() {
  rabbit_install
  epmd_loopback
  for n in 1 2 3; do rnode_start "$n"; done
  for n in 1 2 3; do rnode_await "$n"; done
  for n in 2 3; do
    if ! rctl 1 -q cluster_status 2>/dev/null | grep -q "$(rnode_name "$n")"; then
      say "joining node $n to the cluster"
      rctl "$n" -q stop_app >/dev/null
      rctl "$n" -q join_cluster "$(rnode_name 1)" >/dev/null
      rctl "$n" -q start_app >/dev/null
      rnode_await "$n"
    fi
  done
  local running; running=$(rctl 1 -q eval 'length(rabbit_nodes:all_running()).' 2>/dev/null || echo "none")
  [ "$running" = 3 ] || die "the rabbitmq cluster runs $running of 3 nodes (see $(rnode_dir 1)/log)"
  say "rabbitmq cluster ready: amqp://127.0.0.1:5681, :5682, :5683 (3 of 3 nodes running)"
}

rnode_kill() {
  local n=$1 pidfile; pidfile="$(rnode_dir "$n")/pid"
  as_root test -f "$pidfile" || die "rabbitmq cluster node $n is not running"
  local pid; pid=$(as_root cat "$pidfile")
  kill -9 "$pid" 2>/dev/null || die "rabbitmq cluster node $n (pid $pid) is not running"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  as_root rm -f "$pidfile"
  say "rabbitmq cluster node $n killed (SIGKILL, pid $pid)"
}

rcluster_down() {
  rabbit_installed || return 0
  for n in 3 2 1; do
    if rnode_running "$n"; then rctl "$n" -q stop >/dev/null && say "rabbitmq cluster node $n stopped"; fi
  done
}

# nodes_status LABEL RUNNING: says for nodes 1-3 whether `RUNNING N` holds; 1 if one does not.
nodes_status() {
  local label=$1 running=$2 rc=0
  for n in 1 2 3; do
    if "$running" "$n"; then say "$label $n: running"; else say "$label $n: down"; rc=1; fi
  done
  return $rc
}

# ---------------------------------------------------------------- Kafka cluster
# Three brokers, each its own JVM, config and log directory, all voters of one KRaft quorum
# (combined mode), one cluster id formatted into each.
knode_dir() { echo "$CLUSTER_HOME/kafka$1"; }
knode_pid() { echo "$(knode_dir "$1")/pid"; }
knode_running() { [ -f "$(knode_pid "$1")" ] && kill -0 "$(cat "$(knode_pid "$1")")" 2>/dev/null; }
kcluster_bootstrap() { echo "127.0.0.1:$((KAFKA_CLUSTER_PORT + 1)),127.0.0.1:$((KAFKA_CLUSTER_PORT + 2)),127.0.0.1:$((KAFKA_CLUSTER_PORT + 3))"; }

knode_config() {
  local n=$1 dir; dir=$(knode_dir "$1")
  mkdir -p "$dir/data" "$dir/logs"
  local voters="1@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER + 1)),2@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER + 2)),3@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER + 3))"
  cat >"$dir/server.properties" <<PROPS
# written by campus-sim scripts/brokers.sh: broker $n of 3, KRaft combined mode, loopback only
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((KAFKA_CLUSTER_PORT + n)),CONTROLLER://127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER + n))
advertised.listeners=PLAINTEXT://127.0.0.1:$((KAFKA_CLUSTER_PORT + n))
log.dirs=$dir/data
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
$(kafka_shared_props)
PROPS
}

kcluster_up() {
  kafka_fetch
  kafka_tools
  [ -f "$KAFKA_HOME/log4j.properties" ] || kafka_config
  local id_file="$CLUSTER_HOME/kafka-cluster-id"
  mkdir -p "$CLUSTER_HOME"
  [ -s "$id_file" ] || kafka_java kafka.tools.StorageTool random-uuid >"$id_file"
  for n in 1 2 3; do
    knode_running "$n" && continue
    if port_open $((KAFKA_CLUSTER_PORT + n)); then die "127.0.0.1:$((KAFKA_CLUSTER_PORT + n)) is taken by a process this script did not start"; fi
    knode_config "$n"
    local dir; dir=$(knode_dir "$n")
    if [ ! -f "$dir/data/meta.properties" ]; then
      kafka_java kafka.tools.StorageTool format -t "$(cat "$id_file")" -c "$dir/server.properties" --ignore-formatted >/dev/null
    fi
    say "starting kafka cluster broker $n (127.0.0.1:$((KAFKA_CLUSTER_PORT + n)))"
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
      -cp "$(kafka_cp)" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$(knode_pid "$n")"
  done
  local deadline=$((SECONDS + 180))
  for n in 1 2 3; do
    until kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$((KAFKA_CLUSTER_PORT + n))" --list >/dev/null 2>&1; do
      knode_running "$n" || die "kafka cluster broker $n exited; see $(knode_dir "$n")/logs"
      [ "$SECONDS" -lt "$deadline" ] || die "kafka cluster broker $n did not answer within 180 s"
      sleep 1
    done
  done
  say "kafka cluster ready: $(kcluster_bootstrap)"
}

knode_kill() {
  local n=$1
  knode_running "$n" || die "kafka cluster broker $n is not running"
  local pid; pid=$(cat "$(knode_pid "$n")")
  kill -9 "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$(knode_pid "$n")"
  say "kafka cluster broker $n killed (SIGKILL, pid $pid)"
}

kcluster_down() {
  for n in 1 2 3; do
    if knode_running "$n"; then
      local pid; pid=$(cat "$(knode_pid "$n")")
      kill "$pid"
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      rm -f "$(knode_pid "$n")"
      say "kafka cluster broker $n stopped"
    fi
  done
}


# ---------------------------------------------------------------- PostgreSQL
# Debian's package and its default cluster, listening on loopback only; a role and a database
# `campus` (password `campus`) for the services' shared store.
pg_version() { local d v=""; for d in /usr/lib/postgresql/*/bin/postgres; do [ -x "$d" ] && v=$(basename "$(dirname "$(dirname "$d")")"); done; echo "$v"; }
pg_running() { local v; v=$(pg_version); [ -n "$v" ] && as_root pg_ctlcluster "$v" main status >/dev/null 2>&1; }
pg_psql() { as_root su postgres -c "psql -qAtc \"$1\""; }

pg_up() {
  if [ -z "$(pg_version)" ] || ! command -v pg_ctlcluster >/dev/null; then
    apt_install PostgreSQL postgresql
  fi
  local v; v=$(pg_version)
  [ -n "$v" ] || die "postgresql is installed but no server binary was found under /usr/lib/postgresql"
  [ -d "/etc/postgresql/$v/main" ] || as_root pg_createcluster "$v" main >/dev/null
  local conf="/etc/postgresql/$v/main/conf.d/campus-sim.conf"
  if ! as_root test -f "$conf"; then
    printf "# written by campus-sim scripts/brokers.sh\nlisten_addresses = '127.0.0.1'\nport = 5432\nmax_connections = 200\n" \
      | as_root tee "$conf" >/dev/null
    pg_running && as_root pg_ctlcluster "$v" main restart
  fi
  if ! pg_running; then
    say "starting postgresql $v"
    as_root pg_ctlcluster "$v" main start
  fi
  local deadline=$((SECONDS + 60))
  until port_open 5432 && as_root su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "postgresql did not answer within 60 s (see /var/log/postgresql)"
    sleep 0.5
  done
  if [ "$(pg_psql "select 1 from pg_roles where rolname = 'campus'")" != 1 ]; then
    pg_psql "create role campus login password 'campus'" >/dev/null
  fi
  if [ "$(pg_psql "select 1 from pg_database where datname = 'campus'")" != 1 ]; then
    pg_psql "create database campus owner campus" >/dev/null
  fi
  say "postgresql ready on $(echo "$PG_URL" | sed 's#:[^:@/]*@#:***@#')"
}

pg_down() {
  if pg_running; then as_root pg_ctlcluster "$(pg_version)" main stop && say "postgresql stopped"; else say "postgresql not running"; fi
}

# ---------------------------------------------------------------- purge
# The packages `purge --all` removes even when the scripts did not install them (with what
# apt then finds unused): what a new machine lacks.
PURGE_ALL_PACKAGES="rabbitmq-server erlang-base postgresql postgresql-common docker.io containerd runc docker-compose debootstrap"

# Removes the file if the scripts wrote it (it carries their marker).
rm_ours() { if as_root test -f "$1" && as_root grep -q campus-sim "$1"; then as_root rm -f "$1"; fi; }

purge() {
  local all=$1
  say "purge: stopping everything the scripts started"
  [ ! -x "$(dirname "$0")/docker.sh" ] || "$(dirname "$0")/docker.sh" purge
  if pg_running; then
    pg_psql "drop database if exists campus" >/dev/null || say "could not drop the campus database"
    pg_psql "drop role if exists campus" >/dev/null || say "could not drop the campus role"
  fi
  kcluster_down; kafka_down
  rcluster_down; rabbit_down
  pg_down
  local epmd; epmd=$(epmd_path)
  [ -z "$epmd" ] || as_root "$epmd" -kill >/dev/null 2>&1 || true

  local packages; packages=$(ledger_packages)
  if [ "$all" = yes ]; then
    packages=$(printf '%s\n%s\n' "$packages" "$(installed_packages | grep -xE "$(echo "$PURGE_ALL_PACKAGES" | tr ' ' '|')|erlang-.*|postgresql-.*" || true)" | sort -u | sed '/^$/d')
  fi
  local purged_pg=no purged_rabbit=no
  if printf '%s\n' "$packages" | grep -qx 'postgresql-[0-9]*'; then
    purged_pg=yes
    local v; v=$(pg_version)
    [ -z "$v" ] || as_root pg_dropcluster --stop "$v" main 2>/dev/null || true
  fi
  printf '%s\n' "$packages" | grep -qx rabbitmq-server && purged_rabbit=yes
  if [ -n "$packages" ]; then
    say "purge: removing the Debian packages: $(echo $packages)"
    # shellcheck disable=SC2086 # one word per package
    as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $packages >/dev/null || die "apt-get purge failed"
    [ "$all" = no ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null || die "apt-get autoremove failed"
  else
    say "purge: no Debian package to remove (none in the ledger $LEDGER)"
  fi
  if [ "$purged_rabbit" = yes ]; then
    as_root rm -rf /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
  else
    rm_ours /etc/rabbitmq/rabbitmq.conf; rm_ours /etc/rabbitmq/rabbitmq-env.conf; rm_ours /etc/rabbitmq/enabled_plugins
  fi
  if [ "$purged_pg" = yes ]; then
    as_root rm -rf /etc/postgresql /var/lib/postgresql /var/log/postgresql
  else
    local conf; for conf in /etc/postgresql/*/main/conf.d/campus-sim.conf; do rm_ours "$conf"; done
  fi
  say "purge: removing $HOME_DIR (Kafka's jars and data, the cluster's directories, Maven's and Go's caches, the ledger)"
  as_root rm -rf "$HOME_DIR"

  local left=()
  rabbit_installed && left+=("RabbitMQ (installed before the scripts ran; --all removes it)")
  [ -z "$(pg_version)" ] || left+=("PostgreSQL (installed before the scripts ran; --all removes it)")
  command -v dockerd >/dev/null && left+=("Docker's engine (installed before the scripts ran; --all removes it)")
  if [ ${#left[@]} -eq 0 ]; then
    say "purge: done; RabbitMQ, Kafka, PostgreSQL and Docker's engine are gone: \`scripts/brokers.sh up\` installs again"
  else
    say "purge: done; kept: ${left[*]}"
  fi
}

# ---------------------------------------------------------------- main
status() {
  local rc=0
  if rabbit_installed && rabbit_running; then
    if port_open "$RABBIT_PROMETHEUS"; then
      say "rabbitmq: running (metrics on http://127.0.0.1:$RABBIT_PROMETHEUS/metrics)"
    else
      say "rabbitmq: running (no metrics endpoint: started before the scripts enabled rabbitmq_prometheus; down, then up)"
    fi
  else
    say "rabbitmq: down"; rc=1
  fi
  if kafka_running && kafka_ready; then say "kafka: running"; else say "kafka: down"; rc=1; fi
  return $rc
}

cmd="${1:-}"; shift || true
cluster=no
if [ "${1:-}" = --cluster ]; then cluster=yes; shift; fi
what="${1:-all}"
usage() { sed -n '2,/^set /p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
case "$cmd" in
  which)
    kafka_fetch; kafka_tools
    case "$what" in
      kafka-consumer-groups.sh) echo "$KAFKA_HOME/bin/kafka-consumer-groups.sh" ;;
      kafka-libs) echo "$KAFKA_LIBS" ;;
      *) die "which takes kafka-consumer-groups.sh or kafka-libs" ;;
    esac
    exit 0 ;;
  purge)
    case "$what" in all) purge no ;; --all) purge yes ;; *) die "purge takes --all or nothing" ;; esac
    exit 0 ;;
  ""|help|-h|--help) usage; [ -n "$cmd" ] || exit 2; exit 0 ;;
esac
if [ "$cmd" = kill ] && [ "$what" != kafka ]; then
  n="${2:-}"
  case "$n" in 1|2|3) ;; *) die "kill $what takes a node number, 1 to 3";; esac
  case "$what" in rabbitmq-node) rnode_kill "$n" ;; kafka-node) knode_kill "$n" ;;
    *) die "kill takes kafka, rabbitmq-node N or kafka-node N";; esac
  exit 0
fi
if [ "$cluster" = yes ]; then
  case "$what" in rabbitmq|kafka|postgres|all) ;; *) die "unknown part of the cluster '$what' (rabbitmq, kafka, postgres or all)";; esac
  case "$cmd" in
    up)
      case "$what" in rabbitmq|all) rcluster_up ;; esac
      case "$what" in kafka|all) kcluster_up ;; esac
      case "$what" in postgres|all) pg_up ;; esac ;;
    down)
      case "$what" in rabbitmq|all) rcluster_down ;; esac
      case "$what" in kafka|all) kcluster_down ;; esac
      case "$what" in postgres|all) pg_down ;; esac ;;
    status)
      rc=0
      nodes_status "rabbitmq cluster node" rnode_running || rc=1
      nodes_status "kafka cluster broker" knode_running || rc=1
      if pg_running; then say "postgresql: running"; else say "postgresql: down"; rc=1; fi
      exit $rc ;;
    *) die "--cluster goes with up, down or status" ;;
  esac
  exit 0
fi
case "$what" in rabbitmq|kafka|postgres|all) ;; *) die "unknown broker '$what' (rabbitmq, kafka, postgres or all)";; esac
case "$cmd" in
  up)
    case "$what" in rabbitmq|all) rabbit_up ;; esac
    case "$what" in kafka|all) kafka_up ;; esac
    case "$what" in postgres) pg_up ;; esac ;;
  down)
    case "$what" in rabbitmq|all) rabbit_down ;; esac
    case "$what" in kafka|all) kafka_down ;; esac
    case "$what" in postgres) pg_down ;; esac ;;
  status) status || exit 1 ;;
  pause) [ "$what" = rabbitmq ] || die "pause takes rabbitmq"; rabbit_pause ;;
  resume) [ "$what" = rabbitmq ] || die "resume takes rabbitmq"; rabbit_resume ;;
  freeze) case "$what" in rabbitmq) rabbit_freeze ;; kafka) kafka_freeze ;; *) die "freeze takes rabbitmq or kafka" ;; esac ;;
  thaw) case "$what" in rabbitmq) rabbit_thaw ;; kafka) kafka_thaw ;; *) die "thaw takes rabbitmq or kafka" ;; esac ;;
  kill) [ "$what" = kafka ] || die "kill takes kafka"; kafka_kill ;;
  *) usage; die "unknown command '$cmd'" ;;
esac
