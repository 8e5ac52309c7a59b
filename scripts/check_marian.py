#!/usr/bin/env python3
"""Check that transformers reads a Retort translator as Retort does (dev-only).

Loads a translator directory written by `retort train` (Marian `config.json`,
`model.safetensors`, `tokenizer.json`) with transformers' `MarianMTModel` and
`PreTrainedTokenizerFast`, and compares, for the first N pairs of a parallel corpus:
- the token ids: transformers' tokenizer on " " + text (Retort prefixes one space) against the ids
  Retort's example `translator_logits` used;
- the next-token logits under teacher forcing (decoder inputs: the start token, then the target's
  tokens) against Retort's, which must agree within 1e-4 (max abs difference).

    /work/venv/bin/python scripts/check_marian.py MODEL_DIR SOURCE_FILE [--pairs 50]
        [--retort-example target/release/examples/translator_logits]

SOURCE_FILE is the source side (val.en); its references are the file beside it (val.de), as
Retort reads a parallel corpus. Build the example first:
`cargo build --release -p retort --example translator_logits`.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import MarianMTModel, PreTrainedTokenizerFast

TOLERANCE = 1e-4


def references_of(source):
    siblings = [p for p in source.parent.glob(source.stem + ".*") if p != source]
    if len(siblings) != 1:
        sys.exit(f"{source}: expected one reference file beside it, found {siblings}")
    return siblings[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=pathlib.Path)
    ap.add_argument("source", type=pathlib.Path)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--retort-example", default="target/release/examples/translator_logits")
    args = ap.parse_args()

    sources = args.source.read_text(encoding="utf-8").splitlines()[: args.pairs]
    targets = references_of(args.source).read_text(encoding="utf-8").splitlines()[: args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        pairs = pathlib.Path(tmp) / "pairs.tsv"
        pairs.write_text("".join(f"{s}\t{t}\n" for s, t in zip(sources, targets)), encoding="utf-8")
        out = subprocess.run(
            [args.retort_example, str(args.model), str(pairs)],
            check=True, capture_output=True, text=True,
        ).stdout
    records = [json.loads(line) for line in out.splitlines()]

    model = MarianMTModel.from_pretrained(args.model).eval()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(args.model / "tokenizer.json"))
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"attn_implementation {model.config._attn_implementation}")
    worst, id_mismatches = 0.0, 0
    for source, target, r in zip(sources, targets, records):
        ids = tokenizer(" " + source, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"]
        if ids + [model.config.eos_token_id] != r["source_ids"] or \
                [model.config.decoder_start_token_id] + target_ids != r["decoder_ids"]:
            id_mismatches += 1
        with torch.inference_mode():
            logits = model(
                input_ids=torch.tensor([r["source_ids"]]),
                attention_mask=torch.ones(1, len(r["source_ids"]), dtype=torch.long),
                decoder_input_ids=torch.tensor([r["decoder_ids"]]),
            ).logits[0]
        diff = (logits - torch.tensor(r["logits"])).abs().max().item()
        worst = max(worst, diff)
    print(f"{len(records)} pairs: token ids differ on {id_mismatches}; "
          f"max abs logit difference {worst:.3g} (tolerance {TOLERANCE})")
    if id_mismatches or not worst <= TOLERANCE:
        sys.exit("FAIL")
    print("OK")


if __name__ == "__main__":
    main()
