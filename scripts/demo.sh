#!/usr/bin/env bash
# The main job of README.md, on SST-2 (GLUE), data read from $SST2 (default ../shared/data/sst2).
# Today: fetches all-MiniLM-L6-v2, shows what it is, and scores it on the dev set.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2="${SST2:-../shared/data/sst2}"
[[ -f "$SST2/dev.tsv" ]] || { echo "demo: no $SST2/dev.tsv (set SST2=/path/to/sst2)" >&2; exit 1; }

cargo build --release --locked -q
MODEL="$(scripts/fetch-models.sh)"
RETORT=target/release/retort

echo "== retort inspect --model $MODEL"
$RETORT inspect --model "$MODEL"
echo
echo "== retort eval --model $MODEL --data $SST2/dev.tsv"
$RETORT eval --model "$MODEL" --data "$SST2/dev.tsv"
