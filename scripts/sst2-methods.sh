#!/usr/bin/env bash
# Issue 17's ablation: student A's recipe (configs/sst2-distill.toml: teacher layers 1, 3, 5 of the
# MiniLM teacher, 1 epoch) trained once per method and seed, each row changing one thing:
#
#   baseline        hard_ce 0.5 + soft_kl 0.5 at T = 2 (student A)
#   logistic        hard_ce 0.5 + logistic 0.5 (the logit loss instead of soft_kl)
#   confidence      hard_ce 0.5 + soft_kl 0.5 weighted per row by the teacher's confidence
#   T-schedule      the baseline with T going from 8 to 1 on a cosine over the run
#   two-teachers    the baseline's targets from two teachers, weight 1 each: runs/sst2-teacher and $SECOND
#                   (default runs/sst2-teacher-s43/best: configs/sst2-teacher.toml at train.seed=43)
#   mutual          deep mutual learning: the teacher trains too, on hard_ce + soft_kl toward the student
#                   (its best on the held-out sentences is runs/methods/mutual-s<seed>/peer1, scored on
#                   dev in peer1-dev.json)
#   mutual-3        the same with three models: the student, the teacher and $SECOND, each learning from
#                   the mean of the other two (peer1 and peer2, scored as above)
#   adversarial     the baseline + adversarial_kl 0.5 (epsilon 0.5, 1 step of ascent per batch)
#
# The held-out 2,000 training sentences (runs/sst2-split, scripts/tsv_split.py) choose each best/;
# SST-2 dev chooses nothing and is what the table reports (mean, min and max over the seeds).
# Needs runs/sst2-teacher/best (scripts/demo.sh) and, for two-teachers, $SECOND.
# Runs go to runs/methods/<row>-s<seed>; a run whose dev.json exists is not run again.
# SEEDS (default "42 43 44") and ROWS (default: all) choose what runs; extra arguments are --set
# overrides for every run, e.g. train.max_steps=100 for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2="${SST2:-../shared/data/sst2}"
SPLIT="${SPLIT:-runs/sst2-split}"
RETORT="${RETORT:-target/release/retort}"
SEEDS="${SEEDS:-42 43 44}"
SECOND="${SECOND:-runs/sst2-teacher-s43/best}"
[[ -f "$SPLIT/train.tsv" && -f "$SPLIT/heldout.tsv" ]] || {
    echo "methods: no $SPLIT/{train,heldout}.tsv (python3 scripts/tsv_split.py $SST2/train.tsv $SPLIT --heldout 2000)" >&2; exit 1; }
[[ -f runs/sst2-teacher/best/model.safetensors ]] || { echo "methods: no teacher at runs/sst2-teacher/best (run scripts/demo.sh first)" >&2; exit 1; }
command -v jq >/dev/null || { echo "methods: jq is needed (apt-get install jq)" >&2; exit 1; }
[[ "$RETORT" != target/release/retort ]] || cargo build --release --locked -q

COMMON=(--set "data.train=$SPLIT/train.tsv" --set "data.dev=$SPLIT/heldout.tsv" --set train.eval_every=500)
for kv in "$@"; do COMMON+=(--set "$kv"); done

# Each row: name|--set overrides on top of configs/sst2-distill.toml (split at spaces; no globbing).
set -f
declare -A ROW=(
    [baseline]=""
    [logistic]='distill.terms=[{kind="hard_ce",weight=0.5},{kind="logistic",weight=0.5}]'
    [confidence]='distill.terms=[{kind="hard_ce",weight=0.5},{kind="soft_kl",weight=0.5,weighting="teacher_confidence"}]'
    [T-schedule]='distill.temperature={start=8.0,end=1.0,shape="cosine"}'
    [two-teachers]="teacher.extra=[{dir=\"$SECOND\",weight=1.0}]"
    [mutual]='distill.mutual=true'
    [mutual-3]="distill.mutual=true distill.peers=[{dir=\"$SECOND\"}]"
    [adversarial]='distill.terms=[{kind="hard_ce",weight=0.5},{kind="soft_kl",weight=0.5},{kind="adversarial_kl",weight=0.5}]'
)
ORDER=(baseline logistic confidence T-schedule two-teachers mutual mutual-3 adversarial)
ROWS="${ROWS:-${ORDER[*]}}"

for name in $ROWS; do
    for seed in $SEEDS; do
        dir="runs/methods/$name-s$seed"
        [[ -f "$dir/dev.json" ]] && { echo "== $name seed $seed: done"; continue; }
        sets=("${COMMON[@]}" --set "train.seed=$seed" --set "output.dir=$dir")
        for kv in ${ROW[$name]}; do sets+=(--set "$kv"); done
        if [[ ! -f "$dir/summary.json" ]]; then
            echo "== $name seed $seed: $RETORT distill --config configs/sst2-distill.toml ${sets[*]}"
            $RETORT distill --config configs/sst2-distill.toml "${sets[@]}"
        fi
        $RETORT eval --model "$dir/best" --data "$SST2/dev.tsv" --json > "$dir/dev.json.tmp"
        mv "$dir/dev.json.tmp" "$dir/dev.json"
    done
done

# Mutual learning's peers, each at its best, on dev (globbing is off: their directories come
# from the summaries).
for name in $ROWS; do
    for seed in $SEEDS; do
        summary="runs/methods/$name-s$seed/summary.json"
        [[ -f "$summary" ]] || continue
        for peer in $(jq -r '.peers[]?.dir' "$summary"); do
            [[ -f "$peer-dev.json" ]] || $RETORT eval --model "$peer" --data "$SST2/dev.tsv" --json > "$peer-dev.json"
        done
    done
done

echo
echo "| method | seeds | dev accuracy mean | min | max | of teacher (mean) | training s (mean) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
teacher=$($RETORT eval --model runs/sst2-teacher/best --data "$SST2/dev.tsv" --json | jq .scores.values.accuracy)
for name in $ROWS; do
    for seed in $SEEDS; do
        dir="runs/methods/$name-s$seed"
        [[ -f "$dir/dev.json" ]] || continue
        echo "$(jq .scores.values.accuracy "$dir/dev.json") $(jq .run.seconds "$dir/summary.json")"
    done | awk -v name="$name" -v t="$teacher" '
        { n++; s += $1; secs += $2; if (n == 1 || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1 }
        END { if (n) printf "| %s | %d | %.4f | %.4f | %.4f | %.1f%% | %.0f |\n", name, n, s/n, lo, hi, 100*s/n/t, secs/n }'
done
echo "(teacher runs/sst2-teacher/best: dev $teacher)"
for name in mutual mutual-3; do
    for seed in $SEEDS; do
        summary="runs/methods/$name-s$seed/summary.json"
        [[ -f "$summary" ]] || continue
        jq -r '.peers[] | "\(.name) \(.from) \(.dir) \(.score_before) \(.best_score) \(.best_step)"' "$summary" |
        while read -r peer from pdir before best step; do
            [[ -f "$pdir-dev.json" ]] || continue
            echo "($name seed $seed: $peer from $from: held-out $before before, best $best at step $step; dev at its best $(jq .scores.values.accuracy "$pdir-dev.json"))"
        done
    done
done
exit 0
