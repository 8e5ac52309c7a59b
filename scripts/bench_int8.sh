#!/usr/bin/env bash
# int8 vs f32 on SST-2 dev: exports each model with --quantize int8 into $OUT, then runs
# `retort eval` on the f32 original and the int8 export, interleaved, and prints accuracy
# and speed (sequences/s, tokenisation included).
#
#   scripts/bench_int8.sh [MODEL_DIR...]   (default: runs/sst2-teacher/best runs/sst2-student-a/best)
#   OUT=target/bench-int8 SST2=../shared/data/sst2 scripts/bench_int8.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-int8}
DATA=${SST2:-../shared/data/sst2}/dev.tsv
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(runs/sst2-teacher/best runs/sst2-student-a/best)

cargo build --release -q -p retort-cli
R=target/release/retort
for model in "${MODELS[@]}"; do
  q="$OUT/$(echo "$model" | tr / _)-int8"
  $R export --model "$model" --out "$q" --quantize int8 >/dev/null
  echo "== $model  (f32: $(du -sh "$model/model.safetensors" | cut -f1), int8: $(du -sh "$q/model.safetensors" | cut -f1))"
  for dir in "$model" "$q" "$model" "$q"; do
    printf '%-45s ' "$dir"
    $R eval --model "$dir" --data "$DATA" --json
  done
done
