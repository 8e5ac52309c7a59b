#!/usr/bin/env python3
"""Dev-only: does transformers load a `retort export` directory and agree with Retort?

Loads DIR with AutoTokenizer and the model class its config names (AutoModelFor
SequenceClassification, TokenClassification or QuestionAnswering), runs it on the texts (SST-2
dev sentences, CoNLL sentences joined by spaces, or built-in ones) or, for a reader, on the
first --n questions of a SQuAD file cut into windows as Hugging Face's run_qa does
(truncation="only_second", return_overflowing_tokens, stride = min(128, max_len // 3), Retort's
window stride), runs `retort predict --logits` on the same inputs and prints the max abs
difference of the logits (every token's, for a tagger; every window's start and end logits,
for a reader); exits 1 above --tol (default 1e-4), or when the windows differ in number or
length.

    /work/venv/bin/python scripts/check_export.py --model runs/wt5-student-a-hf \
        --data ../shared/data/sst2/dev.tsv --n 64
    /work/venv/bin/python scripts/check_export.py --model runs/conll-teacher-hf \
        --data ../shared/data/conll2003/valid.txt --n 64
    /work/venv/bin/python scripts/check_export.py --model runs/squad-teacher-hf \
        --data ../shared/data/squad/dev-v1.1.json --n 64 --max-len 256
"""
import argparse
import csv
import json
import subprocess
import sys

import torch
from transformers import (AutoConfig, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification,
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

    arch = AutoConfig.from_pretrained(a.model).architectures[0]
    if arch.endswith("ForQuestionAnswering"):
        sys.exit(check_reader(a))

    texts = TEXTS
    if a.data and a.data.endswith(".tsv"):
        with open(a.data, newline="") as f:
            texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t")][: a.n]
    elif a.data:
        texts = conll_sentences(a.data)[: a.n]

    tok = AutoTokenizer.from_pretrained(a.model)
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


def check_reader(a):
    """Window logits of transformers' *ForQuestionAnswering against `retort predict --logits`."""
    with open(a.data or sys.exit("a reader needs --data SQUAD.json"), encoding="utf-8") as f:
        data = json.load(f)["data"]
    questions = [{"question": q["question"], "context": p["context"]}
                 for art in data for p in art["paragraphs"] for q in p["qas"]][: a.n]
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForQuestionAnswering.from_pretrained(a.model).eval()
    out = subprocess.run([a.retort, "predict", "--model", a.model, "--logits",
                          "--max-len", str(a.max_len)],
                         input="\n".join(json.dumps(q) for q in questions) + "\n",
                         capture_output=True, text=True, check=True).stdout
    retort = [json.loads(line)["logits"] for line in out.splitlines()]
    diff, windows = 0.0, 0
    with torch.inference_mode():
        for q, ours in zip(questions, retort):
            enc = tok(q["question"], q["context"], truncation="only_second",
                      max_length=a.max_len, stride=min(128, a.max_len // 3),
                      return_overflowing_tokens=True, padding=True, return_tensors="pt")
            enc.pop("overflow_to_sample_mapping", None)
            hf = model(**enc)
            if len(ours) != hf.start_logits.shape[0]:
                print(f"window counts differ: retort {len(ours)}, transformers "
                      f"{hf.start_logits.shape[0]} for {q['question']!r}")
                return 1
            for w, (start, end) in enumerate(ours):
                n = int(enc["attention_mask"][w].sum())
                if len(start) != n:
                    print(f"window lengths differ: retort {len(start)}, transformers {n}")
                    return 1
                diff = max(diff, (hf.start_logits[w, :n] - torch.tensor(start)).abs().max().item(),
                           (hf.end_logits[w, :n] - torch.tensor(end)).abs().max().item())
                windows += 1
    print(f"{a.model}: {type(model).__name__}, {len(questions)} questions, {windows} windows, "
          f"max abs start/end logit diff {diff:.3e}")
    return 0 if diff <= a.tol else 1


if __name__ == "__main__":
    main()
