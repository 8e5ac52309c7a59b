#!/usr/bin/env python3
"""Regenerate tests/fixtures/windows/{pairs,windows}.json (dev-only).

Retort's sentence-pair encoding (TextTokenizer::encode_pair) and question-context windows
(text::windows::WindowTokenizer) must give exactly what transformers' fast tokenizer gives
for all-MiniLM-L6-v2 (BERT uncased WordPiece), so that a model fine-tuned on pairs or on
SQuAD reads the same tokens in Retort as in PyTorch. This script writes transformers' output;
crates/retort/tests/windows.rs asserts Retort's equals it, without Python.

pairs.json    sentence pairs, tokenizer(first, second, truncation=True, max_length=N):
              HF's default pair truncation, longest_first. Fields: first, second, max_len,
              input_ids, token_type_ids.
windows.json  question-context windows, tokenizer(question, context, truncation="only_second",
              max_length=N, stride=S, return_overflowing_tokens=True,
              return_offsets_mapping=True). Per case: question (as given to Retort),
              question_used (what HF was given: the question cut at the end of its
              max_question_len-th token, the old run_squad recipe, since only_second cannot cut
              the question), context, max_len, stride, max_question_len, the answer (start and
              end as CHARACTER offsets into the context, end exclusive, and its text), and per
              window: input_ids, token_type_ids, offset_mapping, sequence_ids, and
              answer_tokens: [start, end] token positions by run_qa.py's
              prepare_train_features, or null where it points at [CLS] (the window does not
              hold the whole answer).

Offsets: a fast tokenizer in Python gives offsets in characters (code points), not bytes; the
multi-byte case (é, 中文, an emoji) before the answer checks Retort counts the same way.

run_qa.py's recipe moves the start forward over every offset that starts at or before the
answer, special tokens included ([SEP]'s offsets are (0, 0)), so an answer that starts on a
window's last context token gets the [SEP]'s position as its start (after its end). This
script stops that walk at the last context token (the recipe's intent); the "answer at a
window edge" case is such an answer: one word, the first window's last context token.

Requirements: pip install transformers tokenizers
Usage (from the repo root):  python scripts/make_window_fixture.py
The model comes from models/all-MiniLM-L6-v2 (scripts/fetch-models.sh), or $RETORT_MINILM.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = Path(os.environ.get("RETORT_MINILM", ROOT / "models/all-MiniLM-L6-v2"))
OUT = ROOT / "tests/fixtures/windows"

QUESTION = "Where did the travellers stop for coffee?"
# About 150 tokens: several windows at max_len 48.
LONG_CONTEXT = (
    "The travellers left the old town early in the morning and walked along the river. "
    "They crossed three bridges, passed a market full of fruit and flowers, and watched the "
    "boats go by. Around noon they reached a small square where children were playing. "
    "After a long walk they stopped at the Café de la Paix near the opera house for coffee. "
    "The waiter brought cakes, and they talked about the museums they wanted to visit. "
    "In the evening they took a train back to the coast, tired but happy with their day."
)
MULTIBYTE_CONTEXT = (
    "Le café à côté de la gare (中文: 咖啡馆) 😀 ouvre tôt. Ünïcödé names like Zoë and "
    "José meet there 🎉 every week. The answer is Montmartre, on the hill."
)


def pair_case(tok, first: str, second: str, max_len: int) -> dict:
    enc = tok(first, second, truncation=True, max_length=max_len)
    return {
        "first": first,
        "second": second,
        "max_len": max_len,
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
    }


def cut_question(tok, question: str, max_question_len: int) -> str:
    """The question up to the end of its max_question_len-th token (no special tokens)."""
    enc = tok(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_question_len:
        return question
    return question[: offsets[max_question_len - 1][1]]


def answer_tokens(offsets, sequence_ids, start_char: int, end_char: int):
    """run_qa.py's prepare_train_features, the start's walk kept within the context."""
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return None
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while offsets[end][1] >= end_char:
        end -= 1
    return [start - 1, end + 1]


def window_case(tok, name, question, context, max_len, stride, max_question_len, answer):
    used = cut_question(tok, question, max_question_len)
    enc = tok(
        used,
        context,
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    start = context.index(answer)
    end = start + len(answer)
    windows = []
    for i, ids in enumerate(enc["input_ids"]):
        seq = enc.sequence_ids(i)
        offsets = [list(o) for o in enc["offset_mapping"][i]]
        windows.append(
            {
                "input_ids": ids,
                "token_type_ids": enc["token_type_ids"][i],
                "offset_mapping": offsets,
                "sequence_ids": seq,
                "answer_tokens": answer_tokens(offsets, seq, start, end),
            }
        )
    return {
        "name": name,
        "question": question,
        "question_used": used,
        "context": context,
        "max_len": max_len,
        "stride": stride,
        "max_question_len": max_question_len,
        "answer": {"start": start, "end": end, "text": answer},
        "windows": windows,
    }


def edge_answer(tok, question, context, max_len, stride) -> str:
    """The last context token of the first window, a whole word."""
    enc = tok(
        question,
        context,
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    seq = enc.sequence_ids(0)
    last = len(seq) - 1 - seq[::-1].index(1)
    start, end = enc["offset_mapping"][0][last]
    assert context[end] == " " and context[start - 1] == " ", "not a whole word"
    return context[start:end]


def spanning_answer(tok, question, context, max_len, stride) -> str:
    """Words from three tokens before the first window's end to two after it: only the
    second window (which starts `stride` tokens before that end) holds them whole."""
    enc = tok(
        question,
        context,
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    seq0, seq1 = enc.sequence_ids(0), enc.sequence_ids(1)
    last0 = len(seq0) - 1 - seq0[::-1].index(1)
    first1 = seq1.index(1)
    start = enc["offset_mapping"][0][last0 - 3][0]
    end = enc["offset_mapping"][1][first1 + stride + 2][1]
    start = context.rfind(" ", 0, start + 1) + 1
    return context[start:end]


def to_json(value, indent: str = "") -> str:
    """JSON with one field per line and every list of numbers (or of offset pairs) on one
    line: readable, and a regenerated file diffs by field."""
    inner = indent + " "
    if isinstance(value, dict):
        fields = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(fields) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [inner + to_json(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def main() -> None:
    tok = AutoTokenizer.from_pretrained(MODEL)
    assert tok.is_fast, "the fixture needs a fast (Rust) tokenizer for offsets"
    meta = {
        "tokenizer": MODEL.name,
        "transformers": version("transformers"),
        "tokenizers": version("tokenizers"),
    }
    pairs = [
        pair_case(tok, "A man is playing a guitar.", "A person plays an instrument.", 128),
        # The first is longer: it loses tokens first.
        pair_case(tok, LONG_CONTEXT, "Where did they stop?", 24),
        # Both longer than half of the room: each keeps about half.
        pair_case(tok, LONG_CONTEXT, LONG_CONTEXT[200:], 21),
        pair_case(tok, "Zoë’s café 中文 😀", "naïve résumé", 128),
        pair_case(tok, "", "only the second", 16),
    ]
    long_q = (
        "Considering everything that happened during the long and eventful day described in "
        "the passage, including the walk along the river, the market, the bridges, the "
        "square with the children, the museums and the train ride in the evening, and "
        "leaving aside the waiter, the cakes, the boats on the water and the fruit and the "
        "flowers of the market, where exactly did the travellers stop to drink coffee after "
        "walking for such a long time in the old town?"
    )
    mid_q = (
        "After crossing the bridges and the market in the morning sun, at which place near "
        "the opera house did the travellers stop?"
    )
    # (max_len, stride, max_question_len): a question of max_question_len tokens, 3 special
    # tokens and the stride must leave room for context (Retort refuses otherwise).
    short = (48, 16, 16)
    windows = [
        window_case(tok, "short context", QUESTION,
                    "They stopped at the Café de la Paix for coffee.", *short,
                    "Café de la Paix"),
        window_case(tok, "long context with stride", QUESTION, LONG_CONTEXT, *short,
                    "Café de la Paix"),
        # At max_len 45 the first window ends on a whole word ("boats").
        window_case(tok, "answer at a window edge", QUESTION, LONG_CONTEXT, 45, 16, 16,
                    edge_answer(tok, QUESTION, LONG_CONTEXT, 45, 16)),
        window_case(tok, "answer spanning two windows", QUESTION, LONG_CONTEXT, *short,
                    spanning_answer(tok, QUESTION, LONG_CONTEXT, 48, 16)),
        window_case(tok, "context shorter than the question", mid_q, "By the opera.", 64, 16,
                    40, "opera"),
        window_case(tok, "question cut to max_question_len", long_q, LONG_CONTEXT, 96, 16,
                    64, "Café de la Paix"),
        window_case(tok, "multi-byte characters before the answer", "Which hill?",
                    MULTIBYTE_CONTEXT, 32, 8, 12, "Montmartre"),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, cases in [("pairs.json", pairs), ("windows.json", windows)]:
        with open(OUT / name, "w", encoding="utf-8") as f:
            f.write(to_json({**meta, "cases": cases}) + "\n")
        print(f"wrote {OUT / name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
