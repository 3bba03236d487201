#!/usr/bin/env bash
# Load benchmark of the sign-in flows (benches/flows.rs) on SQLite, then on Postgres.
# Usage: benches/flows.sh [seconds-per-scenario]
# `cargo bench` builds the release binary (target/release/latchkey) before running the bench,
# which starts it as a separate process. Everything else is set with BENCH_* variables
# (listed at the top of benches/flows.rs); BENCH_BACKENDS=sqlite narrows a run (benches/peer.sh
# compares both with node-oidc-provider).
# Figures go to stdout and benches/results/flows-<date>-<backend>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_SECONDS="${1:-${BENCH_SECONDS:-10}}"
cargo build --release --quiet
cargo bench --quiet --bench flows --no-run
for BACKEND in ${BENCH_BACKENDS:-sqlite postgres}; do
  BENCH_BACKEND="$BACKEND" cargo bench --quiet --bench flows
done
