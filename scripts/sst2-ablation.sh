#!/usr/bin/env bash
# Student B on SST-2 and its ablation table (issue 3): the student of configs/sst2-student-b.toml
# (teacher layers 1, 3, 5, each with 8 attention heads and 256 feed-forward neurons, 9,000 tokens) trained several times,
# each row changing one ingredient. Rows without augmentation train 1 epoch; the last row is
# student B itself (x4 augmented transfer set, 2 epochs):
#
#   hard                 hard_ce only (the pruned student fine-tuned alone, no teacher)
#   soft_kl              soft_kl only (T = 2)
#   soft_kl+hard         soft_kl 0.5 + hard_ce 0.5
#   +intermediate        soft_kl+hard + hidden_mse and attention_kl on teacher layers 1,3,5 (the
#                        teacher runs online at every step). These terms compare token by token,
#                        so this row keeps the teacher's whole vocabulary (keep_tokens = 0).
#   +augmentation        soft_kl+hard + the x4 augmented transfer set, 2 epochs: student B itself
#   +intermediate+aug    both (optional: pass FULL=1; slow, the teacher runs online on 5x the data)
#
# Needs the teacher at runs/sst2-teacher/best (scripts/demo.sh makes it) and jq for the table.
# Runs go to runs/ablation/<row>; a row whose summary.json exists is not run again.
# Data: $SST2 (default ../shared/data/sst2). Extra arguments are --set overrides for every row,
# e.g. scripts/sst2-ablation.sh train.max_steps=100 for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2="${SST2:-../shared/data/sst2}"
[[ -f "$SST2/train.tsv" && -f "$SST2/dev.tsv" ]] || { echo "ablation: no $SST2/{train,dev}.tsv (set SST2=/path/to/sst2)" >&2; exit 1; }
[[ -f runs/sst2-teacher/best/model.safetensors ]] || { echo "ablation: no teacher at runs/sst2-teacher/best (run scripts/demo.sh first)" >&2; exit 1; }
command -v jq >/dev/null || { echo "ablation: jq is needed for the table (apt-get install jq)" >&2; exit 1; }

RETORT="${RETORT:-target/release/retort}"
[[ "$RETORT" != target/release/retort ]] || cargo build --release --locked -q
COMMON=(--set "data.train=$SST2/train.tsv" --set "data.dev=$SST2/dev.tsv")
for kv in "$@"; do COMMON+=(--set "$kv"); done

# Each row: name, then its --set overrides on top of configs/sst2-student-b.toml.
# Term lists are TOML inline arrays without spaces (the rows are split at spaces; globbing is off).
set -f
INTERMEDIATE='distill.terms=[{kind="hard_ce",weight=0.5},{kind="soft_kl",weight=0.5},{kind="hidden_mse",weight=1},{kind="attention_kl",weight=1}] student.keep_tokens=0'
NO_AUG="augment.multiplier=0 train.epochs=1"
ROWS=(
    "hard|$NO_AUG distill.terms=[{kind=\"hard_ce\",weight=1}]"
    "soft_kl|$NO_AUG distill.terms=[{kind=\"soft_kl\",weight=1}]"
    "soft_kl+hard|$NO_AUG"
    "+intermediate|$NO_AUG $INTERMEDIATE"
    "+augmentation|"
)
[[ "${FULL:-0}" == 1 ]] && ROWS+=("+intermediate+aug|$INTERMEDIATE")

for row in "${ROWS[@]}"; do
    name="${row%%|*}"
    dir="runs/ablation/$name"
    [[ -f "$dir/summary.json" ]] && { echo "== $name: done ($dir/summary.json)"; continue; }
    sets=("${COMMON[@]}" --set "output.dir=$dir")
    for kv in ${row#*|}; do sets+=(--set "$kv"); done
    echo "== $name: $RETORT distill --config configs/sst2-student-b.toml ${sets[*]}"
    $RETORT distill --config configs/sst2-student-b.toml "${sets[@]}"
done

echo
echo "| row | transfer examples (augmented) | steps | best dev acc | % of teacher | teacher phase (s) | training (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    name="${row%%|*}"
    jq -r --arg name "$name" '"| \($name) | \(.transfer_examples) (\(.augmented_examples)) | \(.run.steps) | \(.run.best_score * 10000 | round / 100)% | \(.run.best_score / .teacher_score * 1000 | round / 10)% | \(.teacher_phase_seconds | round) | \(.run.seconds | round) |"' \
        "runs/ablation/$name/summary.json"
done
