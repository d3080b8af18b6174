# A local stand-in for the official `apache/kafka:3.9.1` image, for machines that cannot reach
# the public image registry (scripts/docker.sh images): a JRE 17, the Kafka jars that
# scripts/brokers.sh fetches from Maven Central, Kafka's tools under /opt/kafka/bin/, and an
# entry point that configures the broker from KAFKA_* variables as the official image does.
FROM debian:bookworm
LABEL org.campus-sim.stand-in="apache/kafka:3.9.1"
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY libs/ /opt/kafka/libs/
COPY bin/ /opt/kafka/bin/
COPY log4j.properties tools-log4j.properties /opt/kafka/config/
EXPOSE 9092
ENTRYPOINT ["/opt/kafka/bin/entrypoint.sh"]
