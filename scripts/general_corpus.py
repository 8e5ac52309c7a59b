#!/usr/bin/env python3
"""Unlabelled English text for general distillation (`distill.stage = "general"`).

Pools the *training* splits in ../shared/data, one text per line, with no labels:
  - SST-2 train.tsv sentences (phrases of movie reviews),
  - CoNLL-2003 train.txt sentences (the words joined by spaces),
  - SQuAD train-v1.1.json contexts, each context once, cut into sentences,
  - Multi30k train.en (image captions).
No dev or test split is read, so every score reported on them stays unseen. Duplicates are
dropped, the pool is shuffled with a fixed seed, and --dev lines are held out (dev.txt: the
general stage's own held-out text, which chooses its checkpoint by the distillation loss).

    python3 scripts/general_corpus.py ../shared/data runs/general-corpus [--dev 1000] [--seed 42]

Writes OUT/train.txt and OUT/dev.txt and prints the count from each source.
"""

import argparse
import csv
import json
import random
import re
import sys
from pathlib import Path

# A sentence ends at . ! or ? followed by space and a capital, digit or quote.
SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z0-9"\'])')


def sst2(data):
    with open(data / "sst2" / "train.tsv", encoding="utf-8") as f:
        return [row["sentence"].strip() for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def conll(data):
    sentences, words = [], []
    for line in open(data / "conll2003" / "train.txt", encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(" ".join(words))
            words = []
        else:
            words.append(line.split()[0])
    if words:
        sentences.append(" ".join(words))
    return sentences


def squad(data):
    squad = json.load(open(data / "squad" / "train-v1.1.json", encoding="utf-8"))
    contexts = dict.fromkeys(
        p["context"] for a in squad["data"] for p in a["paragraphs"]
    )
    return [s.strip() for c in contexts for s in SENTENCE_END.split(c) if s.strip()]


def multi30k(data):
    return [l.strip() for l in open(data / "multi30k" / "train.en", encoding="utf-8")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="the shared data directory (../shared/data)")
    ap.add_argument("out", type=Path, help="where train.txt and dev.txt go")
    ap.add_argument("--dev", type=int, default=1000, help="lines held out as dev.txt")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    pool, seen = [], set()
    for name, read in [("sst2", sst2), ("conll2003", conll), ("squad", squad), ("multi30k", multi30k)]:
        texts = [t for t in read(args.data) if t and "\n" not in t]
        new = [t for t in texts if not (t in seen or seen.add(t))]
        print(f"{name}: {len(texts)} texts, {len(new)} new", file=sys.stderr)
        pool.extend(new)
    random.Random(args.seed).shuffle(pool)
    if len(pool) <= args.dev:
        sys.exit(f"only {len(pool)} texts: fewer than --dev {args.dev}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dev.txt").write_text("\n".join(pool[: args.dev]) + "\n", encoding="utf-8")
    (args.out / "train.txt").write_text("\n".join(pool[args.dev :]) + "\n", encoding="utf-8")
    print(f"{len(pool) - args.dev} training texts, {args.dev} dev texts in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
