#!/usr/bin/env python3
"""Dev-only: does transformers load a `retort export` directory and agree with Retort?

Loads DIR with AutoTokenizer and the model class its config names (AutoModelFor
SequenceClassification or TokenClassification), runs it on the texts (SST-2 dev sentences,
CoNLL sentences joined by spaces, or built-in ones), runs `retort predict --logits` on the same
texts and prints the max abs difference of the logits (every token's, for a tagger); exits 1
above --tol (default 1e-4).

    /work/venv/bin/python scripts/check_export.py --model runs/wt5-student-a-hf \
        --data ../shared/data/sst2/dev.tsv --n 64
    /work/venv/bin/python scripts/check_export.py --model runs/conll-teacher-hf \
        --data ../shared/data/conll2003/valid.txt --n 64
"""
import argparse
import csv
import json
import subprocess
import sys

import torch
from transformers import (AutoConfig, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)

TEXTS = ["the cat sat on the mat.", "a surprisingly good film", "bad",
         "it was not what i expected at all, but the music was fine"]


def conll_sentences(path):
    """The sentences of a CoNLL file, words joined by spaces."""
    sentences, words = [], []
    for line in open(path, encoding="utf-8"):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if words:
                sentences.append(" ".join(words))
            words = []
        else:
            words.append(cols[0])
    if words:
        sentences.append(" ".join(words))
    return sentences


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="directory written by retort export")
    ap.add_argument("--data", help="TSV with a 'sentence' column (default: a few built-in texts)")
    ap.add_argument("--n", type=int, default=64, help="sentences to compare")
    ap.add_argument("--retort", default="target/release/retort")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    texts = TEXTS
    if a.data and a.data.endswith(".tsv"):
        with open(a.data, newline="") as f:
            texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t")][: a.n]
    elif a.data:
        texts = conll_sentences(a.data)[: a.n]

    tok = AutoTokenizer.from_pretrained(a.model)
    arch = AutoConfig.from_pretrained(a.model).architectures[0]
    token = arch.endswith("ForTokenClassification")
    auto = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    model = auto.from_pretrained(a.model).eval()
    with torch.no_grad():
        batch = tok(texts, padding=True, truncation=True, max_length=a.max_len,
                    return_tensors="pt")
        hf = model(**batch).logits

    out = subprocess.run([a.retort, "predict", "--model", a.model, "--logits",
                          "--max-len", str(a.max_len)],
                         input="\n".join(texts) + "\n", capture_output=True, text=True,
                         check=True).stdout
    rows = [json.loads(line)["logits"] for line in out.splitlines()]
    if token:
        # Retort prints each text's own tokens; compare them with the unpadded positions.
        diff = max((hf[i, : len(r)] - torch.tensor(r)).abs().max().item()
                   for i, r in enumerate(rows))
    else:
        diff = (hf - torch.tensor(rows)).abs().max().item()
    labels_ok = [model.config.id2label[i] for i in range(model.config.num_labels)]
    print(f"{a.model}: {type(model).__name__}, labels {labels_ok}, {len(texts)} texts, "
          f"max abs logit diff {diff:.3e}")
    sys.exit(0 if diff <= a.tol else 1)


if __name__ == "__main__":
    main()
