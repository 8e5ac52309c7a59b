#!/usr/bin/env bash
# Runs a command and samples its resident memory (VmRSS of the process) every INTERVAL seconds
# into a TSV (seconds since start, RSS in MiB), for memory-over-time records in BENCHMARKS.md
# (a leak shows as growth after warm-up). Prints the peak when the command ends and exits
# with its status.
#
#   scripts/rss_log.sh OUT.tsv [-i INTERVAL] -- COMMAND [ARGS...]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OUT.tsv [-i SECONDS] -- COMMAND [ARGS...]" >&2; exit 2; }
out=$1; shift
interval=10
if [ "$1" = "-i" ]; then interval=$2; shift 2; fi
[ "$1" = "--" ] || { echo "$0: expected -- before the command" >&2; exit 2; }
shift

"$@" &
pid=$!
start=$(date +%s.%N)
printf 't_s\trss_mib\n' >"$out"
while kill -0 "$pid" 2>/dev/null; do
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$rss_kib" ]; then
    awk -v s="$start" -v now="$(date +%s.%N)" -v k="$rss_kib" \
      'BEGIN { printf "%.0f\t%.1f\n", now - s, k / 1024 }' >>"$out"
  fi
  sleep "$interval"
done
status=0
wait "$pid" || status=$?
awk -F'\t' 'NR > 1 && $2 > max { max = $2 } END { printf "rss_log: peak %.1f MiB over %d samples\n", max, NR - 1 }' "$out" >&2
exit "$status"
