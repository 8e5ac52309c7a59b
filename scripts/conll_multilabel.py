#!/usr/bin/env python3
"""A multi-label sentence classification set built from CoNLL-2003 (issue 17).

Each sentence of a CoNLL split becomes one line: its words joined by spaces, and the set of
entity types it mentions (PER, ORG, LOC, MISC, from the IOB2 tags), written `ORG|MISC`, or
`_` when it mentions none. `-DOCSTART-` lines are skipped. Nothing else changes: the train /
valid / test splits stay the splits they were, so the test set is never seen while training
or choosing a checkpoint.

    python3 scripts/conll_multilabel.py ../shared/data/conll2003 runs/conll-multilabel

writes train.tsv, valid.tsv and test.tsv (columns `sentence`, `label`) and prints each
split's sentence count and how often each type occurs.
"""
import collections
import os
import sys


def sentences(path):
    words, tags = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if not cols:
                if words:
                    yield words, tags
                words, tags = [], []
                continue
            if cols[0] == "-DOCSTART-":
                continue
            words.append(cols[0])
            tags.append(cols[-1])
    if words:
        yield words, tags


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for split in ("train", "valid", "test"):
        counts = collections.Counter()
        n = 0
        with open(os.path.join(out, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for words, tags in sentences(os.path.join(src, f"{split}.txt")):
                types = sorted({t[2:] for t in tags if t != "O"})
                counts.update(types or ["_"])
                text = " ".join(words).replace("\t", " ")
                f.write(f"{text}\t{'|'.join(types) or '_'}\n")
                n += 1
        print(f"{split}: {n} sentences; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
