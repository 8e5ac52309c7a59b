#!/usr/bin/env python3
"""Split SQuAD v1.1 training data into a training part and a held-out part that chooses
checkpoints, so that the official dev set chooses nothing and its scores are not optimistic.

Whole articles are held out (questions about one paragraph never land on both sides): the
articles at evenly spaced places in the file, until at least --heldout questions. The
training part can be thinned to about --train questions by keeping whole paragraphs at evenly
spaced places (all articles keep some), so that a run on 2 cores fits a few hours.

    python3 scripts/squad_split.py ../shared/data/squad/train-v1.1.json runs/squad --heldout 1000 --train 40000

writes runs/squad/train.json and runs/squad/heldout.json (SQuAD v1.1 format) and prints the
counts.
"""
import argparse
import json
import os


def questions(articles):
    return sum(len(p["qas"]) for a in articles for p in a["paragraphs"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("squad", help="SQuAD v1.1 training JSON")
    ap.add_argument("out_dir", help="directory for train.json and heldout.json")
    ap.add_argument("--heldout", type=int, default=1000, help="held-out questions, at least (default 1000)")
    ap.add_argument("--train", type=int, default=0, help="training questions, about (default 0: all the rest)")
    args = ap.parse_args()
    with open(args.squad, encoding="utf-8") as f:
        data = json.load(f)
    articles = data["data"]
    # Evenly spaced articles, spread over the (alphabetical) file, until enough questions.
    order, step = [], max(1, len(articles) // 16)
    for offset in range(step):
        order.extend(range(offset + step // 2, len(articles), step))
    held, count = set(), 0
    for i in order:
        if count >= args.heldout:
            break
        held.add(i)
        count += questions([articles[i]])
    heldout = [a for i, a in enumerate(articles) if i in held]
    train = [a for i, a in enumerate(articles) if i not in held]
    if args.train > 0:
        total = questions(train)
        keep = min(1.0, args.train / total)
        acc, thinned = 0.0, []
        for a in train:
            kept = []
            for p in a["paragraphs"]:
                acc += keep
                if acc >= 1.0:
                    acc -= 1.0
                    kept.append(p)
            if kept:
                thinned.append({**a, "paragraphs": kept})
        train = thinned
    os.makedirs(args.out_dir, exist_ok=True)
    for name, part in (("train", train), ("heldout", heldout)):
        path = os.path.join(args.out_dir, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"version": data.get("version", "1.1"), "data": part}, f, ensure_ascii=False)
        print(f"{path}: {len(part)} articles, {questions(part)} questions")


if __name__ == "__main__":
    main()
