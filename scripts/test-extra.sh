#!/usr/bin/env bash
# Checks too slow for scripts/test.sh (run by hand or nightly; each bounded, together a few minutes):
#   - the edge tier at full size: Redis + 3 replicas + HAProxy, 64 closed-loop clients, 30 s
#     phases (scale-out vs 1 replica, kill -9 + Redis crash, rolling restart, live update),
#     every key computed exactly once (deploy/test/scale.py; results in target/scale/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
step() { printf '\033[1m== %s\033[0m\n' "$*"; }
cargo build --release --quiet -p cairn-cli

step "edge tier at full size (deploy/test/scale.py: 64 clients, 30 s phases)"
python3 deploy/test/scale.py --clients 64 --seconds 30

step "extra checks passed"
