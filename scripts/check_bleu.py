#!/usr/bin/env python3
"""Compare `retort bleu` with sacrebleu on real German text (dev-only).

Builds "translations" from Multi30k's val.de by deterministic edits (words dropped, swapped,
repeated, punctuation changed, some lines emptied or given markup and numbers), scores them against
val.de (and a second, edited reference) with `retort bleu --json` and with sacrebleu's
`BLEU().corpus_score`, and fails if any score differs by more than 1e-9 or any count differs.

    python3 -m venv /tmp/bleu && /tmp/bleu/bin/pip install sacrebleu==2.6.0
    /tmp/bleu/bin/python scripts/check_bleu.py [--data ../shared/data/multi30k] [--retort target/release/retort]
"""
import argparse
import json
import pathlib
import random
import subprocess
import sys
import tempfile

from sacrebleu.metrics import BLEU


def edit(line, rng):
    words = line.split()
    kind = rng.randrange(8)
    if kind == 0 and len(words) > 3:
        del words[rng.randrange(len(words))]
    elif kind == 1 and len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 2 and words:
        words.insert(rng.randrange(len(words)), words[rng.randrange(len(words))])
    elif kind == 3:
        return line.rstrip(".") + " ." if rng.random() < 0.5 else line.replace(",", " ,")
    elif kind == 4 and rng.random() < 0.2:
        return ""
    elif kind == 5:
        return line + f" &amp; {rng.randrange(1000)},{rng.randrange(100):02d} 3.5-mal <skipped>"
    return " ".join(words)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/multi30k")
    p.add_argument("--retort", default="target/release/retort")
    args = p.parse_args()
    refs = pathlib.Path(args.data, "val.de").read_text(encoding="utf-8").split("\n")
    refs = refs[:-1] if refs[-1] == "" else refs
    rng = random.Random(0)
    hyps = [edit(r, rng) for r in refs]
    second = [edit(r, rng) for r in refs]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, lines in [("hyp.de", hyps), ("ref.de", refs), ("ref2.de", second)]:
            files[name] = pathlib.Path(tmp, name)
            files[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
        for streams in (["ref.de"], ["ref.de", "ref2.de"]):
            cmd = [args.retort, "bleu", "--hyp", str(files["hyp.de"]), "--json"]
            for s in streams:
                cmd += ["--ref", str(files[s])]
            ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            theirs = BLEU().corpus_score(hyps, [refs if s == "ref.de" else second for s in streams])
            same_counts = (ours["correct"] == list(theirs.counts) and ours["total"] == list(theirs.totals)
                           and ours["sys_len"] == theirs.sys_len and ours["ref_len"] == theirs.ref_len)
            diff = abs(ours["score"] - theirs.score)
            ok = same_counts and diff <= 1e-9
            failures += not ok
            print(f"{len(hyps)} lines, {len(streams)} reference(s): retort {ours['score']:.6f}, "
                  f"sacrebleu {theirs.score:.6f} ({theirs}), |diff| {diff:.1e}, counts "
                  f"{'equal' if same_counts else 'DIFFER'}: {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
