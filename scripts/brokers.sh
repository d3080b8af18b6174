#!/usr/bin/env bash
# Install, start, stop and check the real brokers on a machine without Docker.
#
#   scripts/brokers.sh up [rabbitmq|kafka|all]     install what is missing, start, wait until ready
#   scripts/brokers.sh down [rabbitmq|kafka|all]   stop
#   scripts/brokers.sh status                      say what runs, exit 1 if something is down
#   scripts/brokers.sh pause rabbitmq              a broker outage: `rabbitmqctl stop_app` (the node
#                                                  stays up, every connection is closed)
#   scripts/brokers.sh resume rabbitmq             `rabbitmqctl start_app`, wait until it serves
#   scripts/brokers.sh kill kafka                  a broker crash: SIGKILL the Kafka JVM (`up kafka`
#                                                  starts it again and waits until it serves)
#   scripts/brokers.sh which kafka-consumer-groups.sh
#                                                  print the path of Kafka's own tool (installed
#                                                  with the jars; runs Kafka's ConsumerGroupCommand)
#
# Safe to run twice: every step checks before it acts. Everything is bound to 127.0.0.1.
# RabbitMQ comes from Debian's `rabbitmq-server` package; Apache Kafka (KRaft, single node) runs
# from its jars, fetched once with Maven into $CAMPUS_BROKER_HOME (default ~/.cache/campus-sim),
# outside the clone so CI re-runs do not download again.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
HOME_DIR="${CAMPUS_BROKER_HOME:-$HOME/.cache/campus-sim}"
KAFKA_HOME="$HOME_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$HOME_DIR/kafka-data"
KAFKA_LOGS="$HOME_DIR/kafka-logs"
KAFKA_PID="$HOME_DIR/kafka.pid"
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093

say() { printf 'brokers: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- RabbitMQ
rabbit_installed() { [ -x /usr/sbin/rabbitmq-server ]; }
rabbit_running() { as_root /usr/sbin/rabbitmqctl -q status >/dev/null 2>&1; }

rabbit_up() {
  if ! rabbit_installed; then
    say "installing rabbitmq-server (Debian package)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  if rabbit_running; then
    say "rabbitmq already running"
  else
    say "starting rabbitmq"
    # Loopback only: AMQP and the inter-node distribution port.
    as_root mkdir -p /etc/rabbitmq
    if ! as_root test -f /etc/rabbitmq/rabbitmq.conf || ! as_root grep -q campus-sim /etc/rabbitmq/rabbitmq.conf; then
      printf '# written by campus-sim scripts/brokers.sh\nlisteners.tcp.default = 127.0.0.1:5672\nloopback_users.guest = true\n' \
        | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
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
  say "rabbitmq ready on amqp://127.0.0.1:5672"
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
  (cd "$KAFKA_HOME" && mvn -B -q dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime) \
    || die "maven could not fetch the Kafka jars"
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

kafka_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_HOME/server.properties" <<PROPS
# written by campus-sim scripts/brokers.sh: single node, KRaft, loopback only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
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

kafka_kill() {
  kafka_running || die "kafka is not running"
  local pid; pid=$(cat "$KAFKA_PID")
  kill -9 "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$KAFKA_PID"
  say "kafka killed (SIGKILL, pid $pid)"
}

# ---------------------------------------------------------------- main
status() {
  local rc=0
  if rabbit_installed && rabbit_running; then say "rabbitmq: running"; else say "rabbitmq: down"; rc=1; fi
  if kafka_running && kafka_ready; then say "kafka: running"; else say "kafka: down"; rc=1; fi
  return $rc
}

cmd="${1:-}"; what="${2:-all}"
if [ "$cmd" = which ]; then
  [ "$what" = kafka-consumer-groups.sh ] || die "which takes kafka-consumer-groups.sh"
  kafka_fetch; kafka_tools
  echo "$KAFKA_HOME/bin/kafka-consumer-groups.sh"
  exit 0
fi
case "$what" in rabbitmq|kafka|all) ;; *) die "unknown broker '$what' (rabbitmq, kafka or all)";; esac
case "$cmd" in
  up)
    [ "$what" = kafka ] || rabbit_up
    [ "$what" = rabbitmq ] || kafka_up ;;
  down)
    [ "$what" = kafka ] || rabbit_down
    [ "$what" = rabbitmq ] || kafka_down ;;
  status) status ;;
  pause) [ "$what" = rabbitmq ] || die "pause takes rabbitmq"; rabbit_pause ;;
  resume) [ "$what" = rabbitmq ] || die "resume takes rabbitmq"; rabbit_resume ;;
  kill) [ "$what" = kafka ] || die "kill takes kafka"; kafka_kill ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
