# A local stand-in for the official `jaegertracing/jaeger` image (Jaeger v2, all in one: an
# OpenTelemetry collector receiving OTLP on 4317/4318, traces kept in memory, the query API on
# 16686, its health on 13133), for machines that cannot reach the public image registry
# (scripts/docker.sh images): Jaeger built from its Go module (scripts/jaeger/go.mod pins it),
# started as the official image starts it, and wget for the compose files' health check (the
# official image has busybox's). Built from source, it serves the query API (/api/services,
# /api/traces) but no UI: where the UI goes, a placeholder page. With the public registry, the
# official image has the UI.
FROM debian:bookworm-slim
LABEL org.campus-sim.stand-in="jaegertracing/jaeger:2.12.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY jaeger /cmd/jaeger/jaeger-linux
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 13133 16686
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
