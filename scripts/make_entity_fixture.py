#!/usr/bin/env python3
"""Regenerate tests/fixtures/entities/seqeval_cases.json (dev-only).

Retort's entity-level scores (crates/retort/src/task/entities.rs) must agree with seqeval's
default mode (the conlleval semantics every NER paper reports). This script draws random
gold / predicted IOB2 tag sequences, scores them with seqeval and writes both, so that a Rust
unit test can assert every number without Python.

The sequences mix well-formed IOB2 (entities drawn as spans) and ill-formed tag soup
(I- after O, I-X after B-Y, ...), over the four CoNLL types PER, ORG, LOC, MISC. Predictions
are the gold sequence with typical tagger errors (boundaries one word off, wrong type, missed
or spurious entities, B- swapped for I-) or an independent random sequence. Only O, B-X and
I-X occur: those are the only tags a Retort tagger emits (task::conll rejects any other).

The sentences are grouped into cases of 1 to 8 sentences, each scored on its own (so that
zero predictions, zero gold entities and one-type corpora occur), plus one case holding every
sentence, plus the corners where a ratio is 0/0 (no gold entities, no predicted ones, neither).
For each case the file holds:
  gold, pred          lists of sentences, each a list of tags
  gold_entities, pred_entities
                      seqeval.metrics.sequence_labeling.get_entities of each sentence,
                      as [type, start, end] with end INCLUSIVE (seqeval's convention)
  overall             precision_score / recall_score / f1_score (default: micro, mode=None)
                      and support (gold entities)
  per_type            classification_report(output_dict=True)'s rows for the types:
                      precision, recall, f1, support

Deterministic (random.Random(SEED)); rerunning with the same seqeval gives the same file.

Requirements: pip install seqeval   (numpy comes with it)
Usage (from the repo root):  python scripts/make_entity_fixture.py
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

from seqeval.metrics import (classification_report, f1_score, precision_score,
                             recall_score)
from seqeval.metrics.sequence_labeling import get_entities

SEED = 2003
TYPES = ["PER", "ORG", "LOC", "MISC"]
N_SENTENCES = 300
OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/entities/seqeval_cases.json"


def well_formed(rng: random.Random) -> list[str]:
    """IOB2 tags of random non-overlapping entities of 1 to 4 words."""
    n = rng.randint(0, 16)
    tags = ["O"] * n
    i = 0
    while i < n:
        if rng.random() < 0.35:
            length = min(rng.randint(1, 4), n - i)
            kind = rng.choice(TYPES)
            tags[i] = f"B-{kind}"
            for j in range(i + 1, i + length):
                tags[j] = f"I-{kind}"
            i += length
        else:
            i += 1
    return tags


def tag_soup(rng: random.Random, n: int | None = None) -> list[str]:
    """Any tag anywhere: I- after O, I-X after B-Y, runs of I- without a B-."""
    if n is None:
        n = rng.randint(0, 16)
    return [rng.choice(["O", "O", "O", f"B-{rng.choice(TYPES)}", f"I-{rng.choice(TYPES)}"])
            for _ in range(n)]


def perturb(rng: random.Random, gold: list[str]) -> list[str]:
    """A prediction close to `gold`: a few of a tagger's usual errors."""
    pred = list(gold)
    n = len(pred)
    if n == 0:
        return pred
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(n)
        error = rng.choice(["extend", "shrink", "type", "drop", "spurious", "b_to_i", "i_to_b"])
        tag = pred[i]
        kind = tag[2:] if tag != "O" else rng.choice(TYPES)
        if error == "extend" and i + 1 < n:
            # one word too long (an I- of the same type after the entity's last word)
            pred[i + 1] = f"I-{kind}"
        elif error == "shrink" and tag != "O":
            pred[i] = "O"
        elif error == "type" and tag != "O":
            # change the type of the whole run starting here
            other = rng.choice([t for t in TYPES if t != kind])
            j = i
            while j < n and pred[j] != "O" and pred[j][2:] == kind and (j == i or pred[j][0] == "I"):
                pred[j] = pred[j][:2] + other
                j += 1
        elif error == "drop":
            j = i
            while j < n and pred[j] != "O" and (j == i or pred[j][0] == "I"):
                pred[j] = "O"
                j += 1
        elif error == "spurious" and tag == "O":
            pred[i] = f"B-{kind}"
        elif error == "b_to_i" and tag.startswith("B-"):
            pred[i] = "I-" + tag[2:]
        elif error == "i_to_b" and tag.startswith("I-"):
            pred[i] = "B-" + tag[2:]
    return pred


def sentence_pair(rng: random.Random) -> tuple[list[str], list[str]]:
    gold = well_formed(rng) if rng.random() < 0.7 else tag_soup(rng)
    r = rng.random()
    if r < 0.75:
        pred = perturb(rng, gold)
    elif r < 0.9:
        pred = tag_soup(rng, len(gold))
    else:
        pred = ["O"] * len(gold)
    return gold, pred


def entity_rows(sentence: list[str]) -> list[list]:
    return [[kind, start, end] for kind, start, end in get_entities(sentence)]


def scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    report = classification_report(gold, pred, output_dict=True)
    per_type = {
        name: {"precision": float(row["precision"]), "recall": float(row["recall"]),
               "f1": float(row["f1-score"]), "support": int(row["support"])}
        for name, row in report.items() if not name.endswith(" avg")
    }
    overall = {
        "precision": float(precision_score(gold, pred)),
        "recall": float(recall_score(gold, pred)),
        "f1": float(f1_score(gold, pred)),
        "support": sum(len(get_entities(s)) for s in gold),
    }
    # The report's micro row is the same computation; a disagreement would mean the
    # fixture's two sources of truth differ.
    if "micro avg" in report:
        assert abs(report["micro avg"]["f1-score"] - overall["f1"]) < 1e-12, report
    return {"overall": overall, "per_type": per_type}


def case(gold: list[list[str]], pred: list[list[str]]) -> dict:
    return {
        "gold": gold,
        "pred": pred,
        "gold_entities": [entity_rows(s) for s in gold],
        "pred_entities": [entity_rows(s) for s in pred],
        **scores(gold, pred),
    }


def main() -> int:
    # seqeval warns on every 0/0 (no predictions, no gold); those are cases we want.
    warnings.filterwarnings("ignore")
    rng = random.Random(SEED)
    pairs = [sentence_pair(rng) for _ in range(N_SENTENCES)]
    cases = []
    i = 0
    while i < len(pairs):
        k = rng.randint(1, 8)
        chunk = pairs[i:i + k]
        cases.append(case([g for g, _ in chunk], [p for _, p in chunk]))
        i += k
    cases.append(case([g for g, _ in pairs], [p for _, p in pairs]))
    # The 0/0 corners, which random draws may miss: seqeval gives 0 for every undefined ratio.
    cases.append(case([["O", "O"]], [["O", "O"]]))
    cases.append(case([["O", "O"]], [["B-PER", "I-PER"]]))
    cases.append(case([["B-LOC", "O"]], [["O", "O"]]))

    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case a line: small, and a diff shows which cases changed.
    with OUT.open("w") as f:
        f.write('{"seqeval_version": %s, "seed": %d, "cases": [\n'
                % (json.dumps(version("seqeval")), SEED))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {OUT} ({len(cases)} cases, {N_SENTENCES} sentences, "
          f"{OUT.stat().st_size} bytes, seqeval {version('seqeval')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
