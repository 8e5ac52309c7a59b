#!/usr/bin/env python3
"""Write tests/fixtures/bleu/cases.json (dev-only): hand-made BLEU cases scored by sacrebleu.

Each case is hypotheses, reference streams, and what sacrebleu's defaults (BLEU(): 13a, exp
smoothing) give: the score, matched and total n-grams, lengths, and the 13a tokenisation of each
hypothesis. task/bleu.rs's tests must reproduce every number.

    python3 -m venv /tmp/bleu && /tmp/bleu/bin/pip install sacrebleu==2.6.0
    /tmp/bleu/bin/python scripts/make_bleu_fixture.py
"""
import json
import pathlib

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

CASES = {
    "perfect": (["Ein Mann fährt Fahrrad."], [["Ein Mann fährt Fahrrad."]]),
    "nothing_in_common": (["a b c d"], [["e f g h"]]),
    "shorter_than_the_reference": (
        ["Ein Hund läuft."],
        [["Ein brauner Hund läuft über eine grüne Wiese."]],
    ),
    "longer_than_the_reference": (
        ["Zwei Kinder spielen im Sand am Strand neben dem Meer bei Sonnenschein."],
        [["Zwei Kinder spielen im Sand."]],
    ),
    "no_four_gram_match_is_smoothed": (
        ["the cat the dog the bird", "a man rides"],
        [["the cat and the dog and the bird", "a man rides a horse"]],
    ),
    "too_short_for_higher_orders": (["ok", "yes no"], [["ok", "no yes"]]),
    "numbers_and_punctuation": (
        ["It costs $3.50 (or 1,000.5), a 5-year plan; see www.example.com/a?b=c & more..."],
        [["It costs $3.50 (or 1,000.5) - a 5-year plan: see www.example.com/a?b=c & more."]],
    ),
    "escapes_and_markup": (
        ["A &amp;lt; b &quot;x&quot; <skipped> end-\nof line"],
        [['A < b "x" endof line']],
    ),
    "german_quotes_and_unicode_space": (
        ["„Schön“, sagte sie\u00a0– und ging.\u2003", "Straße 5-7, 3.000 Einwohner"],
        [["„Schön“, sagte sie – und ging.", "Straße 5-7, 3.000 Einwohner."]],
    ),
    "two_reference_sets_closest_length_tie": (
        ["a b c d e", "the quick brown fox"],
        [["a b c", "the quick brown fox jumps"], ["a b c d e f g", "quick brown fox"]],
    ),
    "empty_hypothesis": (["", "a b c d e"], [["x y", "a b c d e"]]),
    "repeated_ngrams_are_clipped": (["the the the the the the"], [["the cat is on the mat"]]),
    "trailing_whitespace_and_tabs": (["a  b\tc d .  \t"], [["a b c d ."]]),
}


def main():
    tok = Tokenizer13a()
    out = []
    for name, (hyps, refs) in CASES.items():
        b = BLEU().corpus_score(hyps, refs)
        out.append({
            "name": name,
            "hypotheses": hyps,
            "references": refs,
            "score": b.score,
            "correct": list(b.counts),
            "total": list(b.totals),
            "sys_len": b.sys_len,
            "ref_len": b.ref_len,
            "line": str(b),
            "tokenized": [tok(h.rstrip()) for h in hyps],
        })
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/bleu/cases.json"
    path.write_text(json.dumps({"sacrebleu": sacrebleu.__version__, "cases": out},
                               ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(out)} cases to {path}")


if __name__ == "__main__":
    main()
