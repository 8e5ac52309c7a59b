#!/usr/bin/env python3
"""Reference outputs of a real BERT checkpoint for Retort's parity checks (dev-only).

Reads the first --n sentences of an SST-2 style TSV (header row
`sentence<TAB>label`), tokenises them with the checkpoint's own tokenizer
(transformers AutoTokenizer on the local directory; padding to the longest
sentence, truncation at --max-length) and runs transformers' AutoModel
(BertModel for all-MiniLM-L6-v2) in float32, eval mode, without gradients.

Writes
  --out (default target/parity/minilm-dev64.safetensors):
      input_ids, attention_mask, token_type_ids  int64   [n, L]
      last_hidden_state                          float32 [n, L, H]
  --json (default tests/fixtures/minilm-expected.json), small enough to commit:
      the first 3 of those sentences, each run ALONE (no padding):
      {"model": ..., "sentences": [...], "input_ids": [[...]],
       "last_hidden_state_cls": [[H floats]], "last_hidden_state_mean": [[H floats]]}
      (CLS-token vector and mean over all tokens incl. [CLS]/[SEP], 6 decimals)

Needs: pip install torch transformers safetensors, and the model fetched with
scripts/fetch-models.sh. No network access is used (local files only).

Usage (from the repo root):
  python scripts/parity_real.py --model models/all-MiniLM-L6-v2 \
      --data ../shared/data/sst2/dev.tsv --n 64 \
      --out target/parity/minilm-dev64.safetensors
  python scripts/parity_real.py --model models/all-mpnet-base-v2 --json '' \
      --out target/parity/mpnet-dev64.safetensors      (MPNetModel; tests/mpnet.rs reads it)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_sentences(path: Path, n: int) -> list[str]:
    sentences: list[str] = []
    with path.open(encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if not header or header[0] != "sentence":
            sys.exit(f"{path}: expected a header row 'sentence<TAB>label', got {header!r}")
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            sentence = line.split("\t")[0]
            sentences.append(sentence)
            if len(sentences) == n:
                break
    if len(sentences) < n:
        sys.exit(f"{path}: only {len(sentences)} sentences, wanted {n}")
    return sentences


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out", default="target/parity/minilm-dev64.safetensors")
    ap.add_argument("--json", default="tests/fixtures/minilm-expected.json",
                    help="small committed summary for the first 3 sentences ('' to skip)")
    args = ap.parse_args()

    model_dir = Path(args.model)
    if not (model_dir / "config.json").is_file():
        sys.exit(f"{model_dir}: no config.json (run scripts/fetch-models.sh first)")

    torch.manual_seed(0)
    sentences = read_sentences(Path(args.data), args.n)
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model, info = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, dtype=torch.float32, output_loading_info=True
    )
    if info.get("missing_keys"):
        sys.exit(f"missing weights when loading {model_dir}: {info['missing_keys']}")
    model.eval()

    with torch.no_grad():
        enc = tok(sentences, padding=True, truncation=True, max_length=args.max_length,
                  return_tensors="pt", return_token_type_ids=True)
        # Only what the model takes (MPNet has no token types).
        out = model(**{k: enc[k] for k in tok.model_input_names})
    tensors = {
        "input_ids": enc["input_ids"].to(torch.int64).contiguous(),
        "attention_mask": enc["attention_mask"].to(torch.int64).contiguous(),
        "token_type_ids": enc["token_type_ids"].to(torch.int64).contiguous(),
        "last_hidden_state": out.last_hidden_state.float().contiguous(),
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_path), metadata={
        "model": str(args.model), "data": str(args.data), "n": str(args.n),
        "generator": "scripts/parity_real.py",
    })
    lhs = tensors["last_hidden_state"]
    print(f"wrote {out_path}: input_ids {tuple(tensors['input_ids'].shape)}, "
          f"last_hidden_state {tuple(lhs.shape)}, |max| {lhs.abs().max().item():.3f}, "
          f"{out_path.stat().st_size:,d} bytes")

    if args.json:
        summary = {"model": model_dir.name, "sentences": [], "input_ids": [],
                   "last_hidden_state_cls": [], "last_hidden_state_mean": []}
        with torch.no_grad():
            for i, s in enumerate(sentences[:3]):
                e = tok(s, truncation=True, max_length=args.max_length,
                        return_tensors="pt", return_token_type_ids=True)
                h = model(**{k: e[k] for k in tok.model_input_names}).last_hidden_state[0]
                # Single run must agree with the padded batch on real tokens.
                li = h.shape[0]
                assert torch.equal(e["input_ids"][0], tensors["input_ids"][i, :li])
                diff = (h - lhs[i, :li]).abs().max().item()
                assert diff < 1e-4, f"padded vs single mismatch for sentence {i}: {diff}"
                summary["sentences"].append(s)
                summary["input_ids"].append(e["input_ids"][0].tolist())
                summary["last_hidden_state_cls"].append([round(x, 6) for x in h[0].tolist()])
                summary["last_hidden_state_mean"].append([round(x, 6) for x in h.mean(0).tolist()])
        json_path = Path(args.json)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary) + "\n", encoding="utf-8")
        print(f"wrote {json_path} ({json_path.stat().st_size:,d} bytes), token counts "
              f"{[len(x) for x in summary['input_ids']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
