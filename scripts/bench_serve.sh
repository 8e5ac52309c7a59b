#!/usr/bin/env bash
# Serve load test: for each model, start `retort serve` on a free loopback port, send
# REQUESTS single-text requests (SST-2 dev sentences, cycled) from CONCURRENCY connections,
# print the report (requests/s, p50/p99 ms), stop the server with SIGTERM.
#
#   scripts/bench_serve.sh [MODEL_DIR...]     (default: runs/sst2-student-a/best runs/sst2-teacher/best)
#   REQUESTS=2000 CONCURRENCY=16 SST2=../shared/data/sst2 scripts/bench_serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-2000}
CONCURRENCY=${CONCURRENCY:-16}
DATA=${SST2:-../shared/data/sst2}/dev.tsv
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(runs/sst2-student-a/best runs/sst2-teacher/best)

cargo build --release -q -p retort-cli --bin retort --example load_test
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
for model in "${MODELS[@]}"; do
  target/release/retort serve --model "$model" --port 0 2>"$LOG" &
  pid=$!
  until addr=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | sed 's|.*http://||'); do
    kill -0 $pid 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.2
  done
  echo "== $model ($REQUESTS requests, concurrency $CONCURRENCY, $(nproc) cores)"
  target/release/examples/load_test --addr "$addr" --data "$DATA" \
    --requests "$REQUESTS" --concurrency "$CONCURRENCY"
  curl -s "http://$addr/metrics" | grep -E '^retort_batch_size_(sum|count)' || true
  kill -TERM $pid
  wait $pid
done
