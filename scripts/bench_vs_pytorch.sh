#!/usr/bin/env bash
# Retort vs PyTorch, side by side, on the same checkpoints, inputs, batch sizes, sequence
# lengths and thread count (BENCHMARKS.md explains every row). Prints a table of ratios
# (Retort / PyTorch, higher is better); the last line is `min ratio: X`.
#
# Usage: scripts/bench_vs_pytorch.sh [--reps N] [--warmup N] [--threads N]
#        scripts/bench_vs_pytorch.sh --end-to-end [--limit N] [--seed N]   (row 4: whole SST-2 distillation;
#        the seed, default 42, goes to both sides)
#
# Rows: inference (batch 32 x 64 tokens) and batch-1 latency (16 tokens) for the 4x256 student
# and 6x384 teacher shapes (random weights, as in ../shared/bench), the real all-MiniLM-L6-v2,
# and the SST-2 teacher and student A when runs/ has them (TEACHER=dir STUDENT=dir override);
# a distillation step (teacher no-grad forward + student forward/backward + AdamW) for the
# shapes and for the SST-2 pair; the measured f32 matmul peak and the fraction of it Retort's
# forward pass reaches.
#
# Env: PYTHON=python with torch + transformers (else a venv is made in target/bench-venv from
#      PyPI); SST2=dir with train.tsv/dev.tsv (default ../shared/data/sst2).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=20 WARMUP=3 THREADS=2 E2E=0 LIMIT=0 SEED=42
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --end-to-end) E2E=1; shift ;;
        --limit) LIMIT=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench_vs_pytorch: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done

OUT=target/bench-vs-pytorch
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    VENV=target/bench-venv
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV with torch + transformers from PyPI" >&2
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q torch transformers safetensors
    fi
    PYTHON=$VENV/bin/python
fi

echo "== building Retort (release)" >&2
cargo build -q --release -p retort-cli
cargo build -q --release -p retort --example bench_shapes
RETORT=target/release/retort
SHAPES_BIN=target/release/examples/bench_shapes
MINILM=$(PYTHON=${PYTHON} scripts/fetch-models.sh | tail -1)
SST2=${SST2:-../shared/data/sst2}
TEACHER=${TEACHER:-runs/sst2-teacher/best}
STUDENT=${STUDENT:-runs/sst2-student-a/best}
PY="$PYTHON scripts/bench_pytorch.py"
COMMON=(--threads "$THREADS" --warmup "$WARMUP" --reps "$REPS")

if [ "$E2E" = 1 ]; then
    # Row 4: the whole distillation run, wall-clock, each side from a cold start (Retort
    # computes its teacher cache afresh). Both evaluate on dev once, at the end.
    E2E_OUT=$OUT/e2e-seed$SEED
    rm -rf "$E2E_OUT" && mkdir -p "$E2E_OUT"
    echo "== retort distill (configs/sst2-distill.toml, limit $LIMIT, seed $SEED)" >&2
    t0=$(date +%s.%N)
    RAYON_NUM_THREADS=$THREADS $RETORT distill --config configs/sst2-distill.toml \
        --set output.dir="$E2E_OUT/retort" --set distill.cache_dir="$E2E_OUT/cache" \
        --set data.train="$SST2/train.tsv" --set data.dev="$SST2/dev.tsv" \
        --set data.limit="$LIMIT" --set train.eval_every=0 --set teacher.dir="$TEACHER" \
        --set train.seed="$SEED" >&2
    t1=$(date +%s.%N)
    echo "== plain PyTorch KD loop (scripts/kd_pytorch.py, limit $LIMIT, seed $SEED)" >&2
    $PYTHON scripts/kd_pytorch.py --teacher "$TEACHER" --train "$SST2/train.tsv" --dev "$SST2/dev.tsv" \
        --limit "$LIMIT" --threads "$THREADS" --seed "$SEED" > "$E2E_OUT/pytorch.json"
    t2=$(date +%s.%N)
    $PYTHON - "$E2E_OUT/retort/summary.json" "$E2E_OUT/pytorch.json" "$t0" "$t1" "$t2" <<'EOF'
import json, sys
retort = json.load(open(sys.argv[1]))["run"]["best_score"]
torch_ = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])["dev_accuracy"]
t0, t1, t2 = map(float, sys.argv[3:6])
r, p = t1 - t0, t2 - t1
print(f"{'row':<44} {'Retort':>14} {'PyTorch':>14} {'ratio':>7}")
print(f"{'end-to-end SST-2 distillation (wall-clock)':<44} {r:>10.1f} s   {p:>10.1f} s   {p / r:>7.2f}")
print(f"dev accuracy: Retort {retort:.4f}, PyTorch {torch_:.4f} "
      f"({'within' if abs(retort - torch_) <= 0.005 else 'NOT within'} 0.5 point)")
print(f"min ratio: {p / r:.2f}")
EOF
    exit 0
fi

echo "== shape checkpoints (random weights) in target/bench-shapes" >&2
$PY make-shapes --out target/bench-shapes --tokenizer-from "$MINILM"
MODELS=(target/bench-shapes/student-4x256 target/bench-shapes/teacher-6x384 "$MINILM")
for m in "$TEACHER" "$STUDENT"; do [ -f "$m/model.safetensors" ] && MODELS+=("$m"); done

RESULTS=$OUT/results.tsv
: > "$RESULTS"
# Appends one result line: kind, row name, side, JSON.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

for m in "${MODELS[@]}"; do
    name=$(basename "$m"); [ "$name" = best ] && name=$(basename "$(dirname "$m")")
    echo "== $name" >&2
    record inference "$name" retort "$($RETORT bench --model "$m" --only throughput --batch-size 32 --seq-len 64 "${COMMON[@]}" --json 2>/dev/null)"
    record inference "$name" pytorch "$($PY infer --model "$m" --batch-size 32 --seq-len 64 "${COMMON[@]}")"
    record latency "$name" retort "$($RETORT bench --model "$m" --only latency --seq-len 16 "${COMMON[@]}" --json 2>/dev/null)"
    record latency "$name" pytorch "$($PY latency --model "$m" --seq-len 16 "${COMMON[@]}")"
done

PAIRS=("target/bench-shapes/teacher-6x384 target/bench-shapes/student-4x256")
[ -f "$TEACHER/model.safetensors" ] && [ -f "$STUDENT/model.safetensors" ] && PAIRS+=("$TEACHER $STUDENT")
for pair in "${PAIRS[@]}"; do
    read -r t s <<< "$pair"
    name="$(basename "$(dirname "$s")")"; [ "$name" = bench-shapes ] && name="6x384 -> 4x256"
    echo "== distillation step $name" >&2
    record distill_step "$name" retort "$($SHAPES_BIN distill --teacher "$t" --student "$s" "${COMMON[@]}" --json)"
    record distill_step "$name" pytorch "$($PY distill-step --teacher "$t" --student "$s" "${COMMON[@]}")"
done

echo "== matmul peak" >&2
record peak peak retort "$($SHAPES_BIN peak --teacher target/bench-shapes/teacher-6x384 --student target/bench-shapes/student-4x256 "${COMMON[@]}" --json)"
record peak peak pytorch "$($PY peak "${COMMON[@]}")"

echo "== results ($REPS repetitions after $WARMUP warm-ups, $THREADS threads; raw: $RESULTS)"
$PY table "$RESULTS"
