# A local stand-in for the official `rabbitmq:3.10-management` image, for machines that cannot
# reach the public image registry (scripts/docker.sh images). Debian's RabbitMQ 3.10 with the
# management plugin, configured as the official image is where the compose file relies on it:
# AMQP on 5672, the management UI on 15672, Prometheus metrics on 15692 (rabbitmq_prometheus, as
# the official image enables it), and guest allowed from other containers.
FROM debian:bookworm
LABEL org.campus-sim.stand-in="rabbitmq:3.10-management"
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null \
 && printf 'loopback_users.guest = false\nlisteners.tcp.default = 5672\nmanagement.tcp.port = 15672\n' >/etc/rabbitmq/rabbitmq.conf
EXPOSE 5672 15672 15692
# The Debian wrapper runs the node as the rabbitmq user, like the official image.
CMD ["rabbitmq-server"]
