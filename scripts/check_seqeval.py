#!/usr/bin/env python3
"""Dev-only: does Retort's entity F1 agree with seqeval's?

Reads a JSONL file, one sentence a line: {"words": [...], "gold": [...], "pred": [...]}
(the three lists of one length), computes seqeval's overall entity-level micro F1 of pred
against gold in seqeval's default mode (conlleval semantics, the number NER papers report),
prints it beside the F1 Retort printed, and exits 1 if they differ by more than --tol.

    python scripts/check_seqeval.py predictions.jsonl --f1 0.9123456789

Requirements: pip install seqeval
Exit status: 0 agree, 1 differ, 2 bad input.
"""
import argparse
import json
import sys
import warnings

from seqeval.metrics import f1_score


def fail(message):
    """Bad input: exit 2, so that it cannot be mistaken for a disagreement (1)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def read_jsonl(path):
    """The gold and predicted tag sequences; a malformed line stops with its number."""
    gold, pred = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                words, g, p = row["words"], row["gold"], row["pred"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                fail(f"{path}:{number}: expected {{\"words\", \"gold\", \"pred\"}}: {e}")
            if not (len(words) == len(g) == len(p)):
                fail(f"{path}:{number}: {len(words)} words, {len(g)} gold tags, "
                         f"{len(p)} predicted tags")
            gold.append(g)
            pred.append(p)
    if not gold:
        fail(f"{path}: no sentences")
    return gold, pred


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jsonl", help='one {"words", "gold", "pred"} object a line')
    ap.add_argument("--f1", type=float, required=True, help="the overall F1 Retort printed")
    ap.add_argument("--tol", type=float, default=1e-9, help="largest accepted difference")
    args = ap.parse_args()

    gold, pred = read_jsonl(args.jsonl)
    # seqeval warns when a ratio is 0/0 and scores it 0, as Retort does.
    warnings.filterwarnings("ignore")
    expected = float(f1_score(gold, pred))
    diff = abs(expected - args.f1)
    print(f"seqeval f1 {expected:.12f}")
    print(f"retort  f1 {args.f1:.12f}")
    print(f"|diff|     {diff:.3e} ({'ok' if diff <= args.tol else 'MISMATCH'}, tol {args.tol:g})")
    return 0 if diff <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
