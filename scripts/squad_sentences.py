#!/usr/bin/env python3
"""Unlabelled transfer text from SQuAD contexts: one sentence per line, for a distillation's
`augment.unlabelled` (e.g. NER: Wikipedia sentences are full of people, places and
organisations, and the teacher labels them). Writes the first N distinct sentences of the
training contexts in file order; the dev set is never read.

    python3 scripts/squad_sentences.py ../shared/data/squad/train-v1.1.json runs/transfer/squad-sentences.txt --max 30000
"""
import argparse
import json
import re
import sys

# A sentence ends at . ! or ? followed by space and an upper-case letter or a quote
# (good enough for transfer text: a wrong split only makes two shorter texts).
SPLIT = re.compile(r'(?<=[.!?])\s+(?=["\'A-Z])')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("squad", help="SQuAD v1.1 JSON (train)")
    ap.add_argument("out", help="text file to write, one sentence per line")
    ap.add_argument("--max", type=int, default=30000, help="sentences to write (default 30000)")
    ap.add_argument("--min-words", type=int, default=5, help="skip shorter sentences (default 5)")
    args = ap.parse_args()
    with open(args.squad, encoding="utf-8") as f:
        data = json.load(f)["data"]
    seen, out = set(), []
    for article in data:
        for para in article["paragraphs"]:
            for s in SPLIT.split(para["context"].replace("\n", " ")):
                s = " ".join(s.split())
                if len(s.split()) >= args.min_words and s not in seen:
                    seen.add(s)
                    out.append(s)
                    if len(out) == args.max:
                        break
            if len(out) == args.max:
                break
        if len(out) == args.max:
            break
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    words = sum(len(s.split()) for s in out)
    print(f"{args.out}: {len(out)} sentences, {words} words ({words / max(len(out), 1):.1f} per sentence)", file=sys.stderr)


if __name__ == "__main__":
    main()
