#!/usr/bin/env bash
# node-oidc-provider (benches/peer, configured like Latchkey) beside Latchkey on SQLite and on
# Postgres: the flows that need no real sign-in, (b) code flow with a session, (c) refresh with
# rotation and (cc) client_credentials, then one Markdown table of throughput and server CPU per
# operation for docs/benchmarks.md.
# Usage: benches/peer.sh [seconds-per-scenario]
# `cargo bench` builds the release binary it starts; the bench installs the peer's npm packages
# into benches/peer/node_modules on first use.
# BENCH_BACKEND (default node,sqlite,postgres) and BENCH_SCENARIOS (default b,c,cc) narrow a
# run; every other BENCH_* variable of benches/flows.rs applies too.
# Figures go to stdout, benches/results/flows-<date>-<backend>.txt and
# benches/results/compare-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_SECONDS="${1:-${BENCH_SECONDS:-10}}"
export BENCH_BACKEND="${BENCH_BACKEND:-node,sqlite,postgres}"
export BENCH_SCENARIOS="${BENCH_SCENARIOS:-b,c,cc}"
cargo bench --quiet --bench flows
