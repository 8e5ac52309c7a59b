#!/usr/bin/env python3
"""Regenerate tests/fixtures/tiny-mpnet (dev-only): a tiny, randomly initialised
MPNetForSequenceClassification (3 layers, H=32, 4 heads, 3 labels) with a tokenizer.json, and
the outputs transformers computes for it, in the format of scripts/make_fixtures.py
(expected.safetensors: padded.* and single.{i}.* logits, hidden states and attention maps).

One sentence is long (over 64 tokens), so the relative-position buckets beyond 8, 16, 32 and
64 tokens of distance are all used; the relative attention bias is re-initialised with a
large spread so that a wrong bucket shows in the logits.

Requirements: pip install torch transformers safetensors
Usage (from the repo root):  python scripts/make_mpnet_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import MPNetConfig, MPNetForSequenceClassification, MPNetTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (  # noqa: E402
    FIXTURES,
    PIECES,
    PUNCT,
    SEED,
    SENTENCES,
    WORDS,
    _drop_extras,
    compute_expected,
    reinit_,
    summarize,
    verify,
    write_vocab,
)

# MPNet's special tokens, in all-mpnet-base-v2's order (<s> 0, <pad> 1, </s> 2, <unk> 3).
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]

LONG = (
    "The first film was good , the music was great and the acting was fine , but the second one "
    "was slow , the plot was flat and the dialogue was dull ; I think the director made a very "
    "long and boring film about love and loss in a quiet cafe in paris at night , and the cast "
    "did what they could with a script that had nothing to say about life , friendship or family "
    "and the ending was the worst part of the whole movie ."
)


def main() -> int:
    vocab = []
    for tok in SPECIALS + PUNCT + WORDS + PIECES:
        if tok not in vocab:
            vocab.append(tok)
    out_dir = FIXTURES / "tiny-mpnet"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()
    labels = ["negative", "neutral", "positive"]
    config = MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        relative_attention_num_buckets=32,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        num_labels=3,
        id2label={i: l for i, l in enumerate(labels)},
        label2id={l: i for i, l in enumerate(labels)},
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        attn_implementation="eager",
    )
    torch.manual_seed(SEED)
    model = MPNetForSequenceClassification(config)
    reinit_(model)
    with torch.no_grad():
        model.mpnet.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    model.eval()
    tokenizer = MPNetTokenizerFast(
        vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=128
    )
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    write_vocab(out_dir / "vocab.txt", vocab)
    _drop_extras(
        out_dir,
        keep={"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"},
    )
    sentences = SENTENCES + [LONG]
    expected = compute_expected(model, tokenizer, sentences)
    save_file(expected, str(out_dir / "expected.safetensors"), metadata={"generator": "scripts/make_mpnet_fixture.py"})
    (out_dir / "sentences.json").write_text(
        __import__("json").dumps(sentences, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    verify(out_dir, MPNetForSequenceClassification, tokenizer, expected)
    summarize("tiny-mpnet", out_dir, tokenizer, expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
