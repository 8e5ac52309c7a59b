#!/usr/bin/env python3
"""Regenerate Retort's committed test fixtures (dev-only).

Writes two tiny, randomly initialised checkpoints with sequence-classification
heads, plus the outputs transformers computes for them, into tests/fixtures/:

  tests/fixtures/tiny-bert/        BertForSequenceClassification (3 layers, H=32, 3 labels)
      config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt
      sentences.json expected.safetensors
  tests/fixtures/tiny-distilbert/  DistilBertForSequenceClassification (2 layers, H=32, 2 labels)
      config.json model.safetensors tokenizer_config.json vocab.txt
      sentences.json expected.safetensors
      (deliberately NO tokenizer.json: the Rust side must build the WordPiece
      tokenizer from vocab.txt + tokenizer_config.json)

expected.safetensors (float32 for floats, int64 for ids; model in eval mode):
  padded.input_ids / padded.attention_mask / padded.token_type_ids  [n, L]
      all sentences tokenised together, padded to the longest
  padded.logits [n, C]
  padded.hidden.{k}     k = 0..=num_layers   [n, L, H]   (hidden.0 = embedding output)
  padded.attention.{k}  k = 0..num_layers-1  [n, heads, L, L]
  single.{i}.input_ids [1, Li], single.{i}.logits [1, C], single.{i}.hidden.{k} [1, Li, H]
      sentence i on its own (no padding)

Everything is deterministic (torch.manual_seed); rerunning should reproduce the
same files for the same torch/transformers versions.

Requirements: pip install torch transformers safetensors
Usage (from the repo root):  python scripts/make_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import transformers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SEED = 20240601

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

PUNCT = list(".,!?;:'\"()-/&%$")

# Whole words (lower case). Deliberately small so that the sentences below
# exercise whole words, "##" continuation pieces and [UNK].
WORDS = """
the a an and or but if of to in on at for with from by about as into over
after before than then so not no very too really just quite only also even still
is was are were be been being has have had do does did didn can could will would
should may might must i you he she it we they me him her us them my your his its
our their this that these those there here what which who whom when where why how
all any some each every both few more most other such own same
movie film story plot acting actor actors actress cast director script scene scenes
music score ending end beginning character characters dialogue performance
performances cinema screen theater time year years minutes hours life world
friendship love loss family people man woman men women kid kids child
good great bad terrible awful fine nice best worst better worse excellent
wonderful boring dull funny sad slow fast long short quiet loud beautiful ugly
smart stupid brilliant charming flat clever warm cold dark bright new old
like liked love loved hate hated enjoy enjoyed watch watched see saw seen
make made feel felt think thought know knew want wanted give gave take took
get got find found tell told look looked seem seemed work worked play played
surprising surprisingly absolute absolutely sense nothing something everything
cafe paris night day one two three first last whole part half
un re in dis s t honest
""".split()

# Continuation pieces. No single-letter pieces for every letter, so words
# built from missing pieces fall back to [UNK].
PIECES = """
##s ##es ##ed ##ing ##ly ##er ##est ##y ##ful ##less ##ness ##able ##ible
##ment ##tion ##al ##ous ##ive ##ic ##ish ##en ##n ##t ##d ##e ##a ##o ##i
##forget ##table ##bel ##iev ##lie ##act ##ual ##ist ##ica ##ness ##ward
##un ##der ##stand ##ably ##ter ##ri ##fic
""".split()


def build_vocab() -> list[str]:
    vocab: list[str] = []
    seen = set()
    for tok in SPECIALS + PUNCT + WORDS + PIECES:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


SENTENCES = [
    # upper case, punctuation, word pieces, [UNK] (both a word with no prefix
    # match and one that matches a few pieces and then fails), an accent
    # ("café" -> "cafe"), a contraction; lengths 4..21 tokens incl. [CLS]/[SEP].
    "Good.",
    "The music was surprisingly good!",
    "I didn't like the ending.",
    "Terrible plot, flat dialogue: not rewatchable.",
    "An unforgettable story in a quiet Paris café.",
    "Honestly, the Zyzzogeton director's film was unbelievably boring; I felt nothing.",
]


@torch.no_grad()
def reinit_(model: torch.nn.Module) -> None:
    """Re-initialise every parameter with larger-than-default spreads."""
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
            module.bias.copy_(0.1 * torch.randn_like(module.bias))
        elif isinstance(module, torch.nn.Embedding):
            module.weight.normal_(0.0, 0.5)
        elif isinstance(module, torch.nn.Linear):
            module.weight.normal_(0.0, 0.25)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1)
    # Anything not covered above (should be nothing for these architectures).
    covered = set()
    for module in model.modules():
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.Linear)):
            covered.update(id(p) for p in module.parameters(recurse=False))
    for name, p in model.named_parameters():
        if id(p) not in covered:
            raise RuntimeError(f"parameter not re-initialised: {name}")


def write_vocab(path: Path, vocab: list[str]) -> None:
    path.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")


def ensure_tokenizer_config(path: Path, tokenizer_class: str) -> None:
    """Make sure tokenizer_config.json states the settings the Rust side reads."""
    cfg = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    cfg.setdefault("tokenizer_class", tokenizer_class)
    cfg["do_lower_case"] = True
    cfg.setdefault("strip_accents", None)
    cfg.setdefault("tokenize_chinese_chars", True)
    for k, v in zip(["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"], SPECIALS):
        cfg.setdefault(k, v)
    cfg.setdefault("model_max_length", 64)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@torch.no_grad()
def compute_expected(model, tokenizer, sentences: list[str]) -> dict[str, torch.Tensor]:
    model.eval()
    out: dict[str, torch.Tensor] = {}

    enc = tokenizer(sentences, padding=True, return_tensors="pt", return_token_type_ids=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        out[f"padded.{key}"] = enc[key].to(torch.int64).contiguous()
    model_inputs = {k: enc[k] for k in tokenizer.model_input_names}
    res = model(**model_inputs, output_hidden_states=True, output_attentions=True)
    out["padded.logits"] = res.logits.float().contiguous()
    for k, h in enumerate(res.hidden_states):
        out[f"padded.hidden.{k}"] = h.float().contiguous()
    for k, a in enumerate(res.attentions):
        out[f"padded.attention.{k}"] = a.float().contiguous()

    for i, s in enumerate(sentences):
        e = tokenizer(s, return_tensors="pt", return_token_type_ids=True)
        out[f"single.{i}.input_ids"] = e["input_ids"].to(torch.int64).contiguous()
        r = model(**{k: e[k] for k in tokenizer.model_input_names}, output_hidden_states=True)
        out[f"single.{i}.logits"] = r.logits.float().contiguous()
        for k, h in enumerate(r.hidden_states):
            out[f"single.{i}.hidden.{k}"] = h.float().contiguous()
    return out


def verify(out_dir: Path, model_cls, tokenizer, expected: dict[str, torch.Tensor]) -> None:
    """Reload the saved checkpoint and check it reproduces the stored outputs."""
    reloaded = model_cls.from_pretrained(str(out_dir), attn_implementation="eager").eval()
    stored = load_file(str(out_dir / "expected.safetensors"))
    assert set(stored) == set(expected), "expected.safetensors keys differ"
    with torch.no_grad():
        ids = stored["padded.input_ids"]
        mask = stored["padded.attention_mask"]
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in tokenizer.model_input_names:
            kwargs["token_type_ids"] = stored["padded.token_type_ids"]
        logits = reloaded(**kwargs).logits
    torch.testing.assert_close(logits, stored["padded.logits"], rtol=0, atol=1e-5)
    # Padded vs. unpadded: real-token positions must agree.
    n = ids.shape[0]
    for i in range(n):
        li = stored[f"single.{i}.input_ids"].shape[1]
        assert torch.equal(ids[i, :li], stored[f"single.{i}.input_ids"][0]), f"ids mismatch {i}"
        torch.testing.assert_close(stored["padded.logits"][i], stored[f"single.{i}.logits"][0],
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(stored["padded.hidden.1"][i, :li], stored[f"single.{i}.hidden.1"][0],
                                   rtol=1e-4, atol=1e-4)


def summarize(name: str, out_dir: Path, tokenizer, expected: dict[str, torch.Tensor]) -> None:
    print(f"== {name}: {out_dir.relative_to(REPO_ROOT)}")
    for f in sorted(out_dir.iterdir()):
        print(f"   {f.stat().st_size:>9,d}  {f.name}")
    ids = expected["padded.input_ids"]
    print(f"   padded batch: {tuple(ids.shape)}, logits {tuple(expected['padded.logits'].shape)}")
    for i in range(ids.shape[0]):
        li = expected[f"single.{i}.input_ids"].shape[1]
        toks = tokenizer.convert_ids_to_tokens(ids[i, :li].tolist())
        print(f"   [{i}] len={li:2d} {' '.join(toks)}")
    absmax = max(v.abs().max().item() for k, v in expected.items() if v.is_floating_point())
    print(f"   max |float| in expected: {absmax:.3f}; logits[0] = {expected['padded.logits'][0].tolist()}")


def make_tiny_bert(vocab: list[str]) -> int:
    out_dir = FIXTURES / "tiny-bert"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()
    vocab_map = {t: i for i, t in enumerate(vocab)}

    labels = ["negative", "neutral", "positive"]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        num_labels=3,
        id2label={i: l for i, l in enumerate(labels)},
        label2id={l: i for i, l in enumerate(labels)},
        pad_token_id=0,
        attn_implementation="eager",  # so output_attentions returns probabilities
    )
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(config)
    reinit_(model)
    model.eval()

    tokenizer = BertTokenizerFast(vocab=vocab_map, do_lower_case=True, model_max_length=64)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    write_vocab(out_dir / "vocab.txt", vocab)
    ensure_tokenizer_config(out_dir / "tokenizer_config.json", "BertTokenizer")
    _drop_extras(out_dir, keep={"config.json", "model.safetensors", "tokenizer.json",
                                "tokenizer_config.json", "vocab.txt"})

    expected = compute_expected(model, tokenizer, SENTENCES)
    save_file(expected, str(out_dir / "expected.safetensors"), metadata={"generator": "scripts/make_fixtures.py"})
    (out_dir / "sentences.json").write_text(json.dumps(SENTENCES, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    verify(out_dir, BertForSequenceClassification, tokenizer, expected)
    summarize("tiny-bert", out_dir, tokenizer, expected)
    return sum(f.stat().st_size for f in out_dir.iterdir())


def make_tiny_distilbert(vocab: list[str]) -> int:
    out_dir = FIXTURES / "tiny-distilbert"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()
    vocab_map = {t: i for i, t in enumerate(vocab)}

    labels = ["NEG", "POS"]
    config = DistilBertConfig(
        vocab_size=len(vocab),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        activation="gelu",
        dropout=0.1,
        attention_dropout=0.1,
        seq_classif_dropout=0.2,
        num_labels=2,
        id2label={i: l for i, l in enumerate(labels)},
        label2id={l: i for i, l in enumerate(labels)},
        pad_token_id=0,
        attn_implementation="eager",  # so output_attentions returns probabilities
    )
    torch.manual_seed(SEED + 1)
    model = DistilBertForSequenceClassification(config)
    reinit_(model)
    model.eval()

    tokenizer = DistilBertTokenizerFast(vocab=vocab_map, do_lower_case=True, model_max_length=64)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    write_vocab(out_dir / "vocab.txt", vocab)
    ensure_tokenizer_config(out_dir / "tokenizer_config.json", "DistilBertTokenizer")
    # The Rust side must build WordPiece from vocab.txt for this checkpoint.
    _drop_extras(out_dir, keep={"config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"})

    expected = compute_expected(model, tokenizer, SENTENCES)
    save_file(expected, str(out_dir / "expected.safetensors"), metadata={"generator": "scripts/make_fixtures.py"})
    (out_dir / "sentences.json").write_text(json.dumps(SENTENCES, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    verify(out_dir, DistilBertForSequenceClassification, tokenizer, expected)
    summarize("tiny-distilbert", out_dir, tokenizer, expected)
    return sum(f.stat().st_size for f in out_dir.iterdir())


def _drop_extras(out_dir: Path, keep: set[str]) -> None:
    for f in out_dir.iterdir():
        if f.name not in keep:
            f.unlink()


def main() -> int:
    torch.set_num_threads(1)  # deterministic reductions
    vocab = build_vocab()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; vocab size {len(vocab)}")
    total = make_tiny_bert(vocab) + make_tiny_distilbert(vocab)
    print(f"total fixture size: {total / 1024:.1f} KiB")
    if total > 800 * 1024:
        print("error: fixtures are larger than expected", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
