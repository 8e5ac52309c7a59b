#!/usr/bin/env python3
"""Dev-only: does Retort's SQuAD v1.1 metric agree with the official evaluation script?

Scores one predictions file twice, with the official evaluate-v1.1 logic (copied below) and
with Retort (`cargo run --release --example squad_score -p retort`), and exits 1 unless exact
match and F1 agree to 1e-9 (and the question and missing counts are equal).

Without --predictions, a predictions file is built from the data's gold answers with seeded
perturbations, so that every step of the normalisation and the F1 is exercised: exact
answers, extra articles, punctuation and case, dropped and added words, repeated tokens,
wrong spans, empty answers, Unicode (Python's whitespace, final sigma, combining marks next
to articles, ...), ids missing and ids unknown to the data. --unicode-sweep adds a second
check: one question per character Python's Unicode database assigns, each in contexts that
test lower(), split() and the article pattern's word boundary around it.

    CARGO_TARGET_DIR=... python scripts/check_squad_metric.py ../shared/data/squad/dev-v1.1.json
    python scripts/check_squad_metric.py DATA.json --predictions PREDICTIONS.json
    python scripts/check_squad_metric.py DATA.json --unicode-sweep

Cargo is run as is: CARGO_TARGET_DIR, CARGO_BUILD_JOBS and the process's niceness carry over.
Exit status: 0 agree, 1 differ, 2 bad input or a failed Rust run.
"""
import argparse
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-9


# ---------------------------------------------------------------------------------------
# Official SQuAD v1.1 evaluation logic, copied unchanged from evaluate-v1.1.py
# (https://rajpurkar.github.io/SQuAD-explorer/, "Official evaluation script for v1.1").
# Only the command-line part of that script is left out.
# ---------------------------------------------------------------------------------------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    message = 'Unanswered question ' + qa['id'] + \
                              ' will receive score 0.'
                    print(message, file=sys.stderr)
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += metric_max_over_ground_truths(
                    exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(
                    f1_score, prediction, ground_truths)

    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total

    return {'exact_match': exact_match, 'f1': f1}
# --------------------------------- end of the copy -------------------------------------


def fail(message):
    """Bad input: exit 2, so that it cannot be mistaken for a disagreement (1)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def questions(dataset):
    """Every question of a SQuAD file, in file order, with its paragraph's context."""
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield qa, paragraph["context"]


# Unicode text that Rust's look-alikes of Python's str methods would treat differently.
UNICODE_SPACES = ["\u00a0", "\u2003", "\u3000", "\x1c", "\x1f", "\x85", "\u200b", "\u180e"]
UNICODE_ODDITIES = [
    "the\u0301",       # combining acute after an article: a boundary for Python's re
    "a\u093e",         # Devanagari vowel sign: alphabetic for Rust, no word character for re
    "an\u0345",        # combining ypogegrammeni, likewise
    "\u24d0 the",      # circled a: alphabetic for Rust, not \w
    "the\u00b2",       # superscript two: a word character, so no boundary
    "a\u0663",         # Arabic-Indic digit three: a word character
    "ΟΔΟΣ",            # final sigma
    "İstanbul",        # lower() grows a combining dot
    "ẞtraße",          # capital sharp s
    "ＴＨＥ",          # fullwidth: lower()ed but not an article
    "_the_",           # underscore: punctuation, removed before the articles
]


def perturb(rng, gold_texts, context):
    """A prediction made from the gold answers by one randomly chosen change."""
    gold = rng.choice(gold_texts)
    words = gold.split()
    kind = rng.randrange(12)
    if kind == 0:
        return gold
    if kind == 1:
        return rng.choice([gold.upper(), gold.lower(), gold.title(), gold.swapcase()])
    if kind == 2:
        return f"{rng.choice(['a', 'an', 'the', 'A', 'An', 'The', 'THE'])} {gold}{rng.choice(['', ' the', ' a'])}"
    if kind == 3:
        marks = list(string.punctuation) + ["\u2019", "\u201c", "\u2013"]
        chars = list(gold)
        for _ in range(rng.randint(1, 3)):
            chars.insert(rng.randint(0, len(chars)), rng.choice(marks))
        return "".join(chars)
    if kind == 4 and len(words) > 1:
        del words[rng.randrange(len(words))]
        return " ".join(words)
    if kind == 5:
        position = context.find(gold)
        before = context[max(0, position - 30):position] if position >= 0 else ""
        after = context[position + len(gold):position + len(gold) + 30] if position >= 0 else ""
        return before[rng.randrange(len(before) + 1):] + gold + after[:rng.randrange(len(after) + 1)]
    if kind == 6:
        context_words = context.split()
        start = rng.randrange(len(context_words))
        return " ".join(context_words[start:start + rng.randint(1, 6)])
    if kind == 7:
        return rng.choice(["", " ", "the", "a an the", "...", "\u3000"])
    if kind == 8:
        repeated = words[0] if words and rng.random() < 0.5 else gold
        return f"{repeated} {gold}"
    if kind == 9:
        return rng.choice(UNICODE_SPACES).join(words)
    if kind == 10:
        oddity = rng.choice(UNICODE_ODDITIES)
        return f"{oddity} {gold}" if rng.random() < 0.5 else f"{gold} {oddity}"
    if kind == 11:
        return unicodedata.normalize(rng.choice(["NFD", "NFKC"]), gold)
    return gold[: len(gold) // 2]


def build_predictions(dataset, seed, missing_share=0.03):
    """Seeded perturbed predictions; some questions left out, some unknown ids added."""
    rng = random.Random(seed)
    predictions = {}
    for qa, context in questions(dataset):
        if rng.random() < missing_share:
            continue
        predictions[qa["id"]] = perturb(rng, [a["text"] for a in qa["answers"]], context)
    for i in range(5):
        predictions[f"not-a-question-{i}"] = "ignored"
    return predictions


def unicode_sweep():
    """A SQuAD file with one question per assigned code point, and predictions that score
    100 in Python: each question's gold answer is a probe text around the character, and its
    prediction is Python's normalisation of that text, so any difference in Retort's
    normalisation lowers Retort's exact match (and no two differences can cancel)."""
    paragraphs = []
    predictions = {}
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if unicodedata.category(c) in ("Cn", "Co", "Cs"):
            continue
        probe = f"The{c} {c}the a{c}an ΑΣ{c} {c}Σ Α{c}Σ x{c}y {c}"
        qid = f"u{cp:05X}"
        paragraphs.append({"context": probe, "qas": [
            {"id": qid, "question": "?", "answers": [{"text": probe, "answer_start": 0}]}]})
        predictions[qid] = normalize_answer(probe)
    return {"version": "1.1", "data": [{"title": "unicode sweep", "paragraphs": paragraphs}]}, predictions


def rust_scores(data_path, predictions_path):
    """Retort's scores: the squad_score example's JSON output."""
    command = ["cargo", "run", "--release", "--quiet", "--example", "squad_score", "-p", "retort",
               "--", str(data_path), str(predictions_path)]
    print("running:", " ".join(command), file=sys.stderr)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"the Rust example failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout)


def python_scores(dataset, predictions):
    """The official scores, plus the question and missing counts the official script does
    not print; its per-question 'Unanswered question' lines are silenced."""
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        scores = evaluate(dataset["data"], predictions)
    finally:
        sys.stderr.close()
        sys.stderr = stderr
    all_ids = [qa["id"] for qa, _ in questions(dataset)]
    scores["questions"] = len(all_ids)
    scores["missing"] = sum(1 for i in all_ids if i not in predictions)
    return scores


def compare(name, data_path, predictions_path):
    """Scores one file both ways; True when they agree."""
    with open(data_path, encoding="utf-8") as f:
        dataset = json.load(f)
    with open(predictions_path, encoding="utf-8") as f:
        predictions = json.load(f)
    python = python_scores(dataset, predictions)
    rust = rust_scores(data_path, predictions_path)
    print(f"{name}:")
    agree = True
    for key in ("exact_match", "f1"):
        diff = abs(python[key] - rust[key])
        same = "identical" if python[key] == rust[key] else f"|diff| {diff:.3e}"
        print(f"  {key:12} python {python[key]!r:24} rust {rust[key]!r:24} {same}")
        agree &= diff <= TOLERANCE
    for key in ("questions", "missing"):
        print(f"  {key:12} python {python[key]:<24} rust {rust[key]}")
        agree &= python[key] == rust[key]
    return agree


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a SQuAD v1.1 JSON file")
    parser.add_argument("--predictions", help="score this {id: answer} file instead of perturbed gold answers")
    parser.add_argument("--seed", type=int, default=13, help="seed of the perturbations")
    parser.add_argument("--keep", help="directory to keep the generated files in")
    parser.add_argument("--unicode-sweep", action="store_true", help="also run the per-character sweep")
    args = parser.parse_args()

    data_path = Path(args.data).resolve()
    try:
        with open(data_path, encoding="utf-8") as f:
            dataset = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{data_path}: {e}")
    if not isinstance(dataset, dict) or "data" not in dataset:
        fail(f"{data_path}: not a SQuAD file (no 'data')")

    with tempfile.TemporaryDirectory(prefix="squad-check-") as scratch:
        work = Path(args.keep or scratch)
        work.mkdir(parents=True, exist_ok=True)
        agree = check(args, dataset, data_path, work)
    print("agree" if agree else "DIFFER")
    sys.exit(0 if agree else 1)


def check(args, dataset, data_path, work):
    """Writes the files to score into `work` and compares the scores; True when they agree."""
    if args.predictions:
        predictions_path = Path(args.predictions).resolve()
    else:
        predictions_path = work / "predictions.json"
        predictions_path.write_text(json.dumps(build_predictions(dataset, args.seed)), encoding="utf-8")
    agree = compare(data_path.name, data_path, predictions_path)
    if args.unicode_sweep:
        sweep, sweep_predictions = unicode_sweep()
        sweep_data = work / "unicode-sweep.json"
        sweep_data.write_text(json.dumps(sweep), encoding="utf-8")
        sweep_predictions_path = work / "unicode-sweep-predictions.json"
        sweep_predictions_path.write_text(json.dumps(sweep_predictions), encoding="utf-8")
        agree &= compare(f"unicode sweep (Python {unicodedata.unidata_version} characters)",
                         sweep_data, sweep_predictions_path)
    return agree


if __name__ == "__main__":
    main()
