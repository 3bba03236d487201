#!/usr/bin/env bash
# Load benchmark of the sign-in flows (benches/flows.rs) on SQLite, then on Postgres.
# Usage: benches/flows.sh [seconds-per-scenario]
# `cargo bench` builds the release binary (target/release/latchkey) before running the bench,
# which starts it as a separate process. Everything else is set with BENCH_* variables
# (listed at the top of benches/flows.rs); BENCH_BACKENDS=sqlite narrows a run (benches/peer.sh
# compares both with node-oidc-provider). BENCH_SEED=1000,1000000 runs each backend on a database
# seeded with 1,000 and then 1,000,000 live grants, refresh tokens and sessions, and compares the
# CPU per operation of the two (issue 14: within 1.2×).
# Figures go to stdout and benches/results/flows-<date>-<backend>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_SECONDS="${1:-${BENCH_SECONDS:-10}}"
cargo build --release --quiet
cargo bench --quiet --bench flows --no-run
for BACKEND in ${BENCH_BACKENDS:-sqlite postgres}; do
  BENCH_BACKEND="$BACKEND" cargo bench --quiet --bench flows
done
