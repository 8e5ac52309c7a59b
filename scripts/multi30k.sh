#!/usr/bin/env bash
# Issue 15's runs: the Multi30k English→German teacher trained from scratch, then three students
# of configs/multi30k-distill.toml's shape (word-level, sequence-level, both), each scored on
# test_2016_flickr with beam search; val chose every checkpoint (greedy dev BLEU at each epoch).
#
#   word       hard_ce 0.5 + soft_kl 0.5 (T = 1) against the teacher run online, on the references
#   sequence   hard_ce 1.0 on the teacher's beam-5 translations of the training sources
#   both       hard_ce 0.5 + soft_kl 0.5 on the teacher's translations
#   plain      the student's shape trained on the references alone (no teacher): the baseline
#
# Every run is resumable: a run directory holding last/ is continued with --resume, one holding
# test.json is skipped. The teacher's translations are cached in runs/cache (resumable too).
# Extra arguments are --set overrides for every run (e.g. train.epochs=1 for a quick look).
# RETORT (default target/release/retort), MT (default ../shared/data/multi30k), BEAM (default 5),
# STUDENTS (default "word sequence both plain": which students, in that order), STUDENT_SET
# (space-separated --set overrides for the students only, e.g. "train.epochs=10"), STUDENT_DIR
# (default runs/multi30k-student: the students go to STUDENT_DIR-word, STUDENT_DIR-plain, ...; give
# another prefix to train a second student shape beside the first, e.g. with
# STUDENT_SET="student.hidden_size=64 student.intermediate_size=256").
set -euo pipefail
cd "$(dirname "$0")/.."
RETORT="${RETORT:-target/release/retort}"
MT="${MT:-../shared/data/multi30k}"
BEAM="${BEAM:-5}"
STUDENT_DIR="${STUDENT_DIR:-runs/multi30k-student}"
[[ "$RETORT" != target/release/retort ]] || cargo build --release --locked -q
SETS=(--set "data.train=$MT/train.en" --set "data.dev=$MT/val.en")
for kv in "$@"; do SETS+=(--set "$kv"); done
STUDENT_SETS=()
for kv in ${STUDENT_SET:-}; do STUDENT_SETS+=(--set "$kv"); done
STUDENTS="${STUDENTS:-word sequence both plain}"
# A misspelt student is refused now, not after the teacher's hours of training.
for student in $STUDENTS; do
    case $student in
        word | sequence | both | plain) ;;
        *) echo "unknown student '$student' (word, sequence, both, plain)" >&2; exit 2 ;;
    esac
done

# run COMMAND CONFIG DIR [--set ...]: trains (or resumes) into DIR, then scores DIR/best on test.
run() {
    local command=$1 config=$2 dir=$3
    shift 3
    [[ -f "$dir/test.json" ]] && { echo "== $dir: done"; return; }
    if [[ ! -f "$dir/.finished" ]]; then
        local resume=()
        [[ -d "$dir/last" ]] && resume=(--resume)
        echo "== $RETORT $command --config $config --set output.dir=$dir ${SETS[*]} $* ${resume[*]}"
        "$RETORT" "$command" --config "$config" --set "output.dir=$dir" "${SETS[@]}" "$@" "${resume[@]}"
        touch "$dir/.finished"
    fi
    "$RETORT" eval --model "$dir/best" --data "$MT/test_2016_flickr.en" --beam "$BEAM" \
        --predictions "$dir/test.hyp.de" --json > "$dir/test.json.tmp"
    mv "$dir/test.json.tmp" "$dir/test.json"
    echo "== $dir: test BLEU $(jq .scores.values.bleu "$dir/test.json")"
}

TEACHER=runs/multi30k-teacher
run train configs/multi30k-teacher.toml "$TEACHER"
D=(--set "teacher.dir=$TEACHER/best" "${STUDENT_SETS[@]}")
HARD_ONLY='distill.terms=[{kind="hard_ce",weight=1.0}]'
for student in $STUDENTS; do
    case $student in
        word) run distill configs/multi30k-distill.toml "$STUDENT_DIR-word" "${D[@]}" ;;
        sequence) run distill configs/multi30k-distill.toml "$STUDENT_DIR-sequence" "${D[@]}" \
            --set distill.sequence_level=true --set "$HARD_ONLY" ;;
        both) run distill configs/multi30k-distill.toml "$STUDENT_DIR-both" "${D[@]}" \
            --set distill.sequence_level=true ;;
        plain) run distill configs/multi30k-distill.toml "$STUDENT_DIR-plain" "${D[@]}" \
            --set "$HARD_ONLY" ;;
    esac
done

echo
echo "| model | test BLEU (beam $BEAM) | val BLEU (greedy, chose it) | training s |"
echo "|---|---:|---:|---:|"
for dir in "$TEACHER" "$STUDENT_DIR"-{word,sequence,both,plain}; do
    [[ -f "$dir/test.json" ]] || continue
    best=$(jq -s '[.[] | select(.event == "eval") | .dev_bleu] | max' "$dir/metrics.jsonl")
    seconds=$(jq -s '[.[] | select(.event == "train") | .elapsed_s] | max' "$dir/metrics.jsonl")
    printf '| %s | %.2f | %.2f | %.0f |\n' "$(basename "$dir")" \
        "$(jq .scores.values.bleu "$dir/test.json")" "$best" "$seconds"
done
students=()
for dir in "$STUDENT_DIR"-{word,sequence,both,plain}; do
    if [[ -f "$dir/test.json" ]]; then students+=(--student "$dir/best"); fi
done
echo
echo "Sizes and speeds: $RETORT compare --teacher $TEACHER/best ${students[*]} --data $MT/test_2016_flickr.en --beam $BEAM --out runs/multi30k-report"
