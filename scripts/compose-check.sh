#!/usr/bin/env bash
# Checks every Compose file under compose/ with both Compose generations, without a Docker
# engine:
#   - Compose v1: Debian's docker-compose 1.29 (`docker-compose config -q`), installed with apt
#     if missing (root or sudo);
#   - Compose v2: compose-go, the loader `docker compose` itself uses (scripts/compose-check/,
#     a small Go program; Go fetches its modules once).
# Exits non-zero, naming the file, if either refuses one. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v docker-compose >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
command -v go >/dev/null || { echo "compose-check: Go is needed for the Compose v2 check" >&2; exit 1; }

files=(compose/*/docker-compose.yml)
for file in "${files[@]}"; do
  docker-compose -f "$file" config -q
  echo "compose v1 ($(docker-compose version --short)): $file: ok"
done
(cd scripts/compose-check && go build -o "$OLDPWD/target/compose-check" .)
target/compose-check "${files[@]}"
