#!/usr/bin/env bash
# The one test command (README, .ci/run):
#   1. start the real brokers (installs them on a new machine; see scripts/brokers.sh),
#   2. run every test of the workspace: simulation specs, real-socket and real-process tests,
#   3. run the graded Part A experiments for real (separate processes, loopback sockets) and
#      check their invariants; the run exits non-zero if any check fails.
# Safe to re-run. Output of step 3 goes to target/test-out/, not to out/.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "brokers"
scripts/brokers.sh up

step "cargo test (release)"
cargo test --release --workspace --locked

step "Part A, real processes and sockets"
cargo run --release --locked --quiet -- sync-rest --real-brokers --out target/test-out

step "done"
