#!/usr/bin/env bash
# A Docker engine for the compose files on a machine like this project's CI: Debian, root, no
# way to the public image registry, and nothing that may leave the machine.
#
#   scripts/docker.sh up        install Debian's docker.io and docker-compose (Compose v1) if
#                               missing, start the engine, its DNS responder and its firewall rule
#   scripts/docker.sh images [--rebuild]
#                               make locally, under the names the compose files use, every image
#                               they need: debian:bookworm(-slim), rabbitmq:3.10-management,
#                               apache/kafka:3.9.1, prom/prometheus:v2.42.0 and
#                               jaegertracing/jaeger:2.12.0 (stand-ins; Prometheus and Jaeger for
#                               the compose files' observability profile, Jaeger built with Go), and
#                               campus:local, the services' image, from the production binary
#                               `campus` (built here with cargo, target/release/campus, as part of
#                               the workspace's build; the image always remade)
#   scripts/docker.sh stand-ins [--rebuild]
#                               the same but campus:local: the images that need no cargo build
#                               (scripts/test.sh makes them while cargo builds)
#   scripts/docker.sh down      stop the engine (and every container), the responder, the rule
#   scripts/docker.sh status    say what runs; exit 1 if the engine does not
#   scripts/docker.sh purge     down, then remove the engine's data (images, volumes)
#
# The engine (dockerd, Debian's 20.10) runs with its data under $CAMPUS_BROKER_HOME/docker, so
# it never touches another engine's, and:
#   - no forwarding (--ip-forward=false) and a DROP of anything forwarded out of the machine's
#     outside interface: containers talk to each other and to published loopback ports only;
#   - --dns on the bridge address, where scripts/docker-dns answers containers NXDOMAIN at once
#     (a stopped compose service then fails fast: Order answers 503 in milliseconds, not 504
#     after its timeout) and relays the machine's own queries (the stand-ins' builds);
#   - nothing is ever pulled: `images` builds every image the compose files name.
# Users whose Docker reaches the public registry need none of this: `docker compose up` pulls
# the official images. Safe to run twice.
set -Eeuo pipefail
SCRIPT_NAME=docker
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

DOCKER_HOME="$HOME_DIR/docker"
DOCKERD_PID="$DOCKER_HOME/dockerd.pid"
DNS_PID="$DOCKER_HOME/docker-dns.pid"
BRIDGE_IP=172.17.0.1
STAND_IN_LABEL=org.campus-sim.stand-in

engine_ready() { docker info >/dev/null 2>&1; }
ours_running() { [ -f "$DOCKERD_PID" ] && kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null; }
dns_running() { [ -f "$DNS_PID" ] && kill -0 "$(cat "$DNS_PID")" 2>/dev/null; }
outside_interface() { ip route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }' || true; }

install() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v iptables >/dev/null || missing+=(iptables)
  [ ${#missing[@]} -eq 0 ] || apt_install "Docker's engine" --no-install-recommends "${missing[@]}"
}

up() {
  install
  if ! ours_running; then
    engine_ready && die "a Docker engine this script did not start is running: use it as it is, or stop it first"
    mkdir -p "$DOCKER_HOME"
    say "starting dockerd (data in $DOCKER_HOME/data, no forwarding, DNS at $BRIDGE_IP)"
    as_root_bg dockerd --data-root "$DOCKER_HOME/data" --exec-root "$DOCKER_HOME/exec" --pidfile "$DOCKERD_PID" \
      --ip-forward=false --bip "$BRIDGE_IP/16" --dns "$BRIDGE_IP" >"$DOCKER_HOME/dockerd.log" 2>&1 </dev/null
    local deadline=$((SECONDS + 60))
    until engine_ready; do
      [ "$SECONDS" -lt "$deadline" ] || die "dockerd did not answer within 60 s (see $DOCKER_HOME/dockerd.log)"
      sleep 0.2
    done
  fi
  local out; out=$(outside_interface)
  if [ -n "$out" ] && ! as_root iptables -C DOCKER-USER -o "$out" -j DROP 2>/dev/null; then
    as_root iptables -I DOCKER-USER -o "$out" -j DROP
  fi
  if ! dns_running; then
    go_build "$ROOT/scripts/docker-dns" "$DOCKER_HOME/docker-dns"
    local upstream; upstream=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
    [ -n "$upstream" ] || die "no nameserver in /etc/resolv.conf to relay the machine's own queries to"
    as_root_bg "$DOCKER_HOME/docker-dns" "$BRIDGE_IP:53" "$upstream:53" >"$DOCKER_HOME/docker-dns.log" 2>&1 </dev/null
    echo $! >"$DNS_PID"
    local deadline=$((SECONDS + 10))
    until grep -q listening "$DOCKER_HOME/docker-dns.log" 2>/dev/null; do
      dns_running || die "the DNS responder exited: $(cat "$DOCKER_HOME/docker-dns.log")"
      [ "$SECONDS" -lt "$deadline" ] || die "the DNS responder did not start within 10 s"
      sleep 0.1
    done
  fi
  say "docker engine ready ($(docker version --format '{{.Server.Version}}'); compose: $(docker-compose version --short))"
}

down() {
  if dns_running; then as_root kill "$(cat "$DNS_PID")"; say "DNS responder stopped"; fi
  rm -f "$DNS_PID"
  if ours_running; then
    local pid; pid=$(cat "$DOCKERD_PID")
    # dockerd stops its containers (10 s grace each at most) and its containerd.
    as_root kill "$pid"
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && as_root kill -9 "$pid"
    say "dockerd stopped"
  else
    say "dockerd (ours) not running"
  fi
  local out; out=$(outside_interface)
  if [ -n "$out" ] && command -v iptables >/dev/null && as_root iptables -C DOCKER-USER -o "$out" -j DROP 2>/dev/null; then
    as_root iptables -D DOCKER-USER -o "$out" -j DROP
  fi
}

status() {
  local rc=0
  if ours_running && engine_ready; then say "dockerd: running (pid $(cat "$DOCKERD_PID"))"; else say "dockerd: down"; rc=1; fi
  if dns_running; then say "DNS responder: running"; else say "DNS responder: down"; rc=1; fi
  return $rc
}

purge() {
  down
  # What the engine left mounted (its network namespaces, overlays) goes before its directory.
  local mount
  for mount in $(awk -v home="$DOCKER_HOME" 'index($2, home) == 1 { print $2 }' /proc/mounts | sort -r); do
    as_root umount -l "$mount" || say "could not unmount $mount"
  done
  if [ -d "$DOCKER_HOME" ]; then
    as_root rm -rf "$DOCKER_HOME"
    say "removed $DOCKER_HOME (the engine's images, containers and volumes)"
  fi
}

# ---------------------------------------------------------------- images
# has_image NAME: the image exists. A stand-in is remade only with --rebuild; an image of that
# name that is not a stand-in (the official one, pulled by someone) is never replaced.
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
is_stand_in() { [ -n "$(docker image inspect --format "{{index .Config.Labels \"$STAND_IN_LABEL\"}}" "$1" 2>/dev/null || true)" ]; }
wanted() {
  local name=$1
  has_image "$name" || return 0
  if ! is_stand_in "$name"; then say "$name: present and not a stand-in: kept"; return 1; fi
  [ "$REBUILD" = yes ] || { say "$name: present"; return 1; }
}

# The Debian mirror this machine's apt uses (the stand-ins are built from it).
debian_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{ print $2 }' | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{ print $2 }' | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list*: debootstrap needs one"
  echo "$uri"
}

base_image() {
  wanted debian:bookworm || { has_image debian:bookworm-slim || docker tag debian:bookworm debian:bookworm-slim; return 0; }
  local rootfs="$DOCKER_HOME/rootfs"
  as_root rm -rf "$rootfs"
  say "debian:bookworm: debootstrap --variant=minbase bookworm (about 45 s)"
  as_root debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >"$DOCKER_HOME/debootstrap.log" 2>&1 \
    || die "debootstrap failed (see $DOCKER_HOME/debootstrap.log)"
  # apt inside the image uses the machine's own sources (bookworm, -updates, -security).
  as_root rm -f "$rootfs/etc/apt/sources.list"
  local f; for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
    [ -f "$f" ] && as_root cp "$f" "$rootfs$f"
  done
  as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  as_root tar -C "$rootfs" -c . | docker import \
    --change "LABEL $STAND_IN_LABEL=debian:bookworm" --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - debian:bookworm >/dev/null
  docker tag debian:bookworm debian:bookworm-slim
  as_root rm -rf "$rootfs"
}

# build NAME DOCKERFILE CONTEXT [OPTION...]: a build whose steps use the machine's network (apt).
build() {
  say "$1: building"
  DOCKER_BUILDKIT=0 docker build --pull=false --network host -q "${@:4}" -t "$1" -f "$2" "$3" >/dev/null || die "building $1 failed"
}

rabbitmq_image() {
  wanted rabbitmq:3.10-management || return 0
  build rabbitmq:3.10-management "$ROOT/scripts/docker-images/rabbitmq.Dockerfile" "$ROOT/scripts/docker-images"
}

# Jaeger, for the compose files' observability profile: built from its Go module (minutes the
# first time; the modules and the build cache are kept under HOME_DIR for the next).
jaeger_image() {
  wanted jaegertracing/jaeger:2.12.0 || return 0
  local context="$DOCKER_HOME/jaeger-context"
  rm -rf "$context"; mkdir -p "$context"
  say "jaeger: go build github.com/jaegertracing/jaeger/cmd/jaeger (scripts/jaeger/go.mod)"
  go_build "$ROOT/scripts/jaeger" "$context/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  build jaegertracing/jaeger:2.12.0 "$ROOT/scripts/docker-images/jaeger.Dockerfile" "$context"
  rm -rf "$context"
}

prometheus_image() {
  wanted prom/prometheus:v2.42.0 || return 0
  build prom/prometheus:v2.42.0 "$ROOT/scripts/docker-images/prometheus.Dockerfile" "$ROOT/scripts/docker-images"
}

kafka_image() {
  wanted apache/kafka:3.9.1 || return 0
  local libs; libs=$("$ROOT/scripts/brokers.sh" which kafka-libs)
  local context="$DOCKER_HOME/kafka-context"
  rm -rf "$context"; mkdir -p "$context"
  cp -r "$ROOT/scripts/docker-images/kafka/." "$context/"
  cp -r "$libs" "$context/libs"
  rm -f "$context/libs/.complete"
  build apache/kafka:3.9.1 "$ROOT/scripts/docker-images/kafka.Dockerfile" "$context"
  rm -rf "$context"
}

service_image() {
  local binary="${CARGO_TARGET_DIR:-$ROOT/target}/release/campus"
  # The workspace's build, the one `cargo run --release` and `cargo test --release --workspace`
  # leave: the server package built alone unifies its dependencies' features differently, so
  # it compiled `campus` and part of its dependencies again (about 90 s on 2 cores) only to
  # link the same binary.
  if command -v cargo >/dev/null; then
    say "campus: cargo build --release --workspace"
    (cd "$ROOT" && cargo build --release --quiet --workspace) || die "building the campus binary failed"
  fi
  [ -x "$binary" ] || die "$binary is missing: cargo build --release --workspace"
  if ! has_image campus-runtime:local || [ "$REBUILD" = yes ]; then
    build campus-runtime:local "$ROOT/compose/Dockerfile" "$ROOT" --target runtime
  fi
  local context="$DOCKER_HOME/service-context"
  rm -rf "$context"; mkdir -p "$context"
  cp "$binary" "$context/campus"
  printf 'FROM campus-runtime:local\nLABEL %s=campus:local\nCOPY campus /usr/local/bin/campus\nENTRYPOINT ["campus"]\nCMD ["--help"]\n' "$STAND_IN_LABEL" >"$context/Dockerfile"
  say "campus:local: from $binary"
  DOCKER_BUILDKIT=0 docker build -q -t campus:local "$context" >/dev/null || die "building campus:local failed"
  rm -rf "$context"
  docker image prune -f >/dev/null   # the campus:local it replaced
}

stand_ins() {
  engine_ready || die "the Docker engine is not running: scripts/docker.sh up"
  mkdir -p "$DOCKER_HOME"
  base_image
  rabbitmq_image
  kafka_image
  prometheus_image
  jaeger_image
}

images() {
  stand_ins
  service_image
  say "images ready: $(docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')"
}

REBUILD=no
cmd="${1:-}"; shift || true
case "${1:-}" in --rebuild) REBUILD=yes; shift ;; "") ;; *) die "unknown argument '$1'" ;; esac
case "$cmd" in
  up) up ;;
  images) images ;;
  stand-ins) stand_ins; say "stand-ins ready (campus:local: scripts/docker.sh images)" ;;
  down) down ;;
  status) status || exit 1 ;;
  purge) purge ;;
  help|-h|--help) sed -n '2,/^set /p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,/^set /p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; die "unknown command '$cmd'" ;;
esac
