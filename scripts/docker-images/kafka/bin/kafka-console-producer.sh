#!/usr/bin/env bash
# Apache Kafka's kafka-console-producer.sh, as the official image ships it: the same class, the same arguments.
exec java -Xmx256m -Djava.awt.headless=true -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties -cp "/opt/kafka/libs/*" kafka.tools.ConsoleProducer "$@"
