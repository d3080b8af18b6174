#!/usr/bin/env bash
# The stand-in's entry point, as the official image's: every KAFKA_* variable becomes a line of
# server.properties (KAFKA_FOO_BAR → foo.bar; a double underscore → _, a triple → -), storage
# is formatted once with CLUSTER_ID (the official image's default if unset), then the broker
# runs in the foreground.
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
for var in $(compgen -e); do
  case "$var" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|KAFKA_DEBUG) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${var#KAFKA_}; key=${key,,}; key=${key//___/-}; key=${key//__/@}; key=${key//_/.}; key=${key//@/_}
  printf '%s=%s\n' "$key" "${!var}" >>"$props"
done
grep -q '^log\.dirs=' "$props" || echo "log.dirs=/tmp/kraft-combined-logs" >>"$props"
/opt/kafka/bin/kafka-storage.sh format -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$props" --ignore-formatted >/dev/null
# shellcheck disable=SC2086 # the options are words
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties -cp "/opt/kafka/libs/*" kafka.Kafka "$props"
