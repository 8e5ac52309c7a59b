#!/usr/bin/env python3
"""Holds out N random rows of a TSV with a header (e.g. SST-2's train.tsv), so that a run can
choose its checkpoints on them and the official dev set chooses nothing.

    python3 scripts/tsv_split.py ../shared/data/sst2/train.tsv runs/sst2-split --heldout 2000

writes OUT/train.tsv (the other rows, in their order) and OUT/heldout.tsv (seed 0).
"""

import argparse
import random
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tsv", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--heldout", type=int, default=2000, help="rows to hold out (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    lines = a.tsv.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    if not 0 < a.heldout < len(rows):
        p.error(f"--heldout must be between 1 and {len(rows) - 1}")
    held = set(random.Random(a.seed).sample(range(len(rows)), a.heldout))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "train.tsv").write_text(header + "".join(r for i, r in enumerate(rows) if i not in held), encoding="utf-8")
    (a.out / "heldout.tsv").write_text(header + "".join(rows[i] for i in sorted(held)), encoding="utf-8")
    print(f"{a.out}/train.tsv: {len(rows) - a.heldout} rows; {a.out}/heldout.tsv: {a.heldout} rows")


if __name__ == "__main__":
    main()
