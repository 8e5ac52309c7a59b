#!/usr/bin/env bash
# Issue 17, method 6: one multi-task student (configs/sst2-conll-multitask.toml: SST-2 sentiment and
# CoNLL-2003 NER, one encoder of teacher layers 1, 3, 5 and a head per task) against two single-task
# students given the same recipe and the same batches of their task:
#
#   sst2    configs/sst2-distill.toml on runs/sst2-split (issue 17's baseline row: runs/methods/baseline-s<seed>,
#           shared with scripts/sst2-methods.sh): 1 epoch, 2,043 batches
#   ner     configs/conll-distill.toml with the multi-task run's terms (hard_ce 0.5 + soft_kl 0.5, T = 2),
#           lr 5e-5 and its 1,022 CoNLL batches (train.max_steps), from the CoNLL teacher's layers 1, 3, 5
#   both    configs/sst2-conll-multitask.toml
#
# Held-out SST-2 training sentences and CoNLL valid choose the checkpoints (the multi-task run: their
# mean); SST-2 dev and CoNLL test, which choose nothing, are reported (mean, min and max over SEEDS).
# Needs runs/sst2-teacher/best, runs/conll-teacher/best and runs/sst2-split (see the config's header).
# A run whose eval files exist is not run again; extra arguments are --set overrides for every run.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2="${SST2:-../shared/data/sst2}"
CONLL="${CONLL:-../shared/data/conll2003}"
SPLIT="${SPLIT:-runs/sst2-split}"
RETORT="${RETORT:-target/release/retort}"
SEEDS="${SEEDS:-42 43 44}"
for need in runs/sst2-teacher/best runs/conll-teacher/best "$SPLIT/heldout.tsv"; do
    [[ -e "$need" ]] || { echo "multitask: $need is missing (see configs/sst2-conll-multitask.toml)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "multitask: jq is needed (apt-get install jq)" >&2; exit 1; }
[[ "$RETORT" != target/release/retort ]] || cargo build --release --locked -q
EXTRA=()
for kv in "$@"; do EXTRA+=(--set "$kv"); done

# eval MODEL DATA OUT [MAX_LEN]: the scores as JSON, written once.
evaluate() {
    [[ -f "$3" ]] && return 0
    $RETORT eval --model "$1" --data "$2" --max-len "${4:-128}" --json > "$3.tmp"
    mv "$3.tmp" "$3"
}

for seed in $SEEDS; do
    dir="runs/methods/baseline-s$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
        echo "== sst2 seed $seed"
        $RETORT distill --config configs/sst2-distill.toml --set "data.train=$SPLIT/train.tsv" \
            --set "data.dev=$SPLIT/heldout.tsv" --set train.eval_every=500 --set "train.seed=$seed" \
            --set "output.dir=$dir" "${EXTRA[@]}"
    fi
    evaluate "$dir/best" "$SST2/dev.tsv" "$dir/dev.json"

    dir="runs/multitask/ner-s$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
        echo "== ner seed $seed"
        $RETORT distill --config configs/conll-distill.toml \
            --set 'distill.terms=[{kind="hard_ce",weight=0.5},{kind="soft_kl",weight=0.5}]' \
            --set distill.temperature=2.0 --set train.epochs=0 --set train.max_steps=1022 \
            --set train.lr=5e-5 --set train.warmup_ratio=0.06 --set train.eval_every=500 \
            --set "train.seed=$seed" --set "output.dir=$dir" "${EXTRA[@]}"
    fi
    evaluate "$dir/best" "$CONLL/test.txt" "$dir/test.json" 192

    dir="runs/multitask/both-s$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
        echo "== both seed $seed"
        $RETORT distill --config configs/sst2-conll-multitask.toml --set "train.seed=$seed" \
            --set "output.dir=$dir" "${EXTRA[@]}"
    fi
    evaluate "$dir/best" "$SST2/dev.tsv" "$dir/dev.json"
    evaluate "$dir/best-ner" "$CONLL/test.txt" "$dir/test.json" 192
done

# mean min max of the numbers on stdin
stats() { awk '{ n++; s += $1; if (n == 1 || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1 }
    END { printf "%.4f (%.4f–%.4f)", s/n, lo, hi }'; }
per_seed() { for seed in $SEEDS; do jq "$2" "${1/SEED/$seed}"; done; }
echo
echo "| student | parameters | SST-2 dev accuracy | CoNLL test entity F1 | training s (mean) |"
echo "|---|---:|---:|---:|---:|"
sst2_s=$(per_seed runs/methods/baseline-sSEED/summary.json .run.seconds | stats | cut -d' ' -f1)
ner_s=$(per_seed runs/multitask/ner-sSEED/summary.json .run.seconds | stats | cut -d' ' -f1)
echo "| SST-2 alone | $(jq .student_parameters runs/methods/baseline-s${SEEDS%% *}/summary.json) | $(per_seed runs/methods/baseline-sSEED/dev.json .scores.values.accuracy | stats) | – | $sst2_s |"
echo "| NER alone | $(jq .student_parameters runs/multitask/ner-s${SEEDS%% *}/summary.json) | – | $(per_seed runs/multitask/ner-sSEED/test.json .scores.values.entity_f1 | stats) | $ner_s |"
echo "| both, one student | $(jq .student_parameters runs/multitask/both-s${SEEDS%% *}/summary.json) | $(per_seed runs/multitask/both-sSEED/dev.json .scores.values.accuracy | stats) | $(per_seed runs/multitask/both-sSEED/test.json .scores.values.entity_f1 | stats) | $(per_seed runs/multitask/both-sSEED/summary.json .run.seconds | stats | cut -d' ' -f1) |"
echo "(teachers: SST-2 dev $($RETORT eval --model runs/sst2-teacher/best --data "$SST2/dev.tsv" --json | jq .scores.values.accuracy), CoNLL test $($RETORT eval --model runs/conll-teacher/best --data "$CONLL/test.txt" --max-len 192 --json | jq .scores.values.entity_f1))"
