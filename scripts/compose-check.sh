#!/usr/bin/env bash
# Checks every Compose file under compose/ with both Compose generations, without running
# them (tests/compose_engine.rs runs them on a real engine):
#   - Compose v1: Debian's docker-compose 1.29 (`docker-compose config -q`), installed with apt
#     if missing (root or sudo; recorded in the scripts' ledger, see scripts/brokers.sh purge);
#   - Compose v2: compose-go, the loader `docker compose` itself uses (scripts/compose-check/,
#     a small Go program; Go fetches its modules once, under ~/.cache/campus-sim).
# Exits non-zero, naming the file, if either refuses one. Safe to re-run.
set -Eeuo pipefail
SCRIPT_NAME=compose-check
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

command -v docker-compose >/dev/null || apt_install "Compose v1" --no-install-recommends docker-compose

files=(compose/*/docker-compose.yml)
for file in "${files[@]}"; do
  docker-compose -f "$file" config -q
  echo "compose v1 ($(docker-compose version --short)): $file: ok"
done
go_build scripts/compose-check "$PWD/target/compose-check"
target/compose-check "${files[@]}"
