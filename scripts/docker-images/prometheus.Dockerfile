# A local stand-in for the official `prom/prometheus` image, for machines that cannot reach the
# public image registry (scripts/docker.sh images): Debian's Prometheus, started as the official
# image starts it (its configuration at /etc/prometheus/prometheus.yml, its data in
# /prometheus), and wget for the compose files' health check (the official image has
# busybox's).
FROM debian:bookworm
LABEL org.campus-sim.stand-in="prom/prometheus:v2.42.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
