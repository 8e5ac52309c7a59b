#!/usr/bin/env bash
# Serve soak (issue 19): for each model directory, start `target/release/retort serve` on a free
# loopback port, run crates/retort-cli/examples/soak.rs against it for DURATION seconds (a steady
# RATE requests/s of one text each, cycled from DATA, plus a burst of BURST_REQUESTS requests over
# BURST_CONCURRENCY connections every BURST_EVERY seconds), then stop the server with SIGTERM and
# check that it exits cleanly. Every INTERVAL seconds the soak prints a JSON line (requests,
# errors, p50/p99/max latency, the server's RSS); the last line sums up the run (RSS growth after
# warm-up, errors). The lines go to runs/soak/<name>.jsonl, the server's stderr to
# runs/soak/<name>.server.log, <name> from the model directory (runs/x/best -> x-best).
#
# Takes DURATION seconds per model (default 1800 = 30 minutes each) plus the build and a few
# seconds of start-up and shutdown. Fails if any request failed or a server did not stop.
#
#   scripts/soak_serve.sh MODEL_DIR [MODEL_DIR...]
#   DURATION=20 INTERVAL=5 scripts/soak_serve.sh tests/fixtures/tiny-bert     (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1800}
RATE=${RATE:-20}
INTERVAL=${INTERVAL:-60}
BURST_EVERY=${BURST_EVERY:-120}
BURST_REQUESTS=${BURST_REQUESTS:-400}
BURST_CONCURRENCY=${BURST_CONCURRENCY:-16}
DATA=${DATA:-../shared/data/sst2/dev.tsv}
ROUTE=${ROUTE:-/v1/classify}
[ $# -gt 0 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

cargo build --release -q -p retort-cli --bin retort --example soak
mkdir -p runs/soak
pid=
trap '[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' EXIT
failed=0
for model in "$@"; do
  name=$(basename "$model")
  case $name in best | last | final) name=$(basename "$(dirname "$model")")-$name ;; esac
  out=runs/soak/$name.jsonl
  log=runs/soak/$name.server.log
  : >"$log"
  target/release/retort serve --model "$model" --host 127.0.0.1 --port 0 2>"$log" &
  pid=$!
  until addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | sed 's|.*http://||'); do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
  done
  echo "== $model: $DURATION s at $RATE req/s, bursts of $BURST_REQUESTS every $BURST_EVERY s ($addr, pid $pid) -> $out"
  status=0
  target/release/examples/soak --addr "$addr" --data "$DATA" --route "$ROUTE" \
    --duration-s "$DURATION" --rate "$RATE" --interval-s "$INTERVAL" --pid "$pid" \
    --burst-every-s "$BURST_EVERY" --burst-requests "$BURST_REQUESTS" \
    --burst-concurrency "$BURST_CONCURRENCY" | tee "$out" || status=$?
  [ "$status" -eq 0 ] || { echo "soak of $model failed (exit $status)" >&2; failed=1; }
  # The server must stop by itself on SIGTERM (its shutdown grace is 10 s by default).
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "server for $model still running 30 s after SIGTERM: killed" >&2
    kill -KILL "$pid"
    failed=1
  fi
  server_status=0
  wait "$pid" || server_status=$?
  pid=
  [ "$server_status" -eq 0 ] || { echo "server for $model exited with $server_status" >&2; failed=1; }
done
exit $failed
