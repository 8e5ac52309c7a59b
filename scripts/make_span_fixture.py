#!/usr/bin/env python3
"""Dev-only: the committed span-head fixture, tests/fixtures/tiny-bert-qa/.

The tiny BERT of tests/fixtures/tiny-bert (scripts/make_fixtures.py) as a
BertForQuestionAnswering: its encoder weights, a seeded random `qa_outputs`, the same
tokenizer files, and what transformers computes on the fixture's sentences
(expected.safetensors: padded.input_ids / attention_mask / token_type_ids [n, L],
padded.start_logits / padded.end_logits [n, L]). crates/retort/tests/span.rs checks
that Retort reads it and agrees to 1e-4.

    /work/venv/bin/python scripts/make_span_fixture.py
"""
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures" / "tiny-bert"
OUT = ROOT / "tests" / "fixtures" / "tiny-bert-qa"
SEED = 20261203


def main():
    torch.manual_seed(SEED)
    config = BertConfig.from_pretrained(SRC)
    config.architectures = ["BertForQuestionAnswering"]
    config.num_labels = 2
    config.id2label = {0: "start", 1: "end"}
    config.label2id = {"start": 0, "end": 1}
    model, info = BertForQuestionAnswering.from_pretrained(
        SRC, config=config, attn_implementation="eager", output_loading_info=True)
    assert info["missing_keys"] and all(k.startswith("qa_outputs") for k in info["missing_keys"]), info
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0.0, 0.25)
        model.qa_outputs.bias.normal_(0.0, 0.1)
    model.eval()
    OUT.mkdir(exist_ok=True)
    model.save_pretrained(OUT)
    for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "sentences.json"]:
        shutil.copy(SRC / name, OUT / name)
    sentences = json.loads((SRC / "sentences.json").read_text())
    tok = AutoTokenizer.from_pretrained(OUT)
    enc = tok(sentences, padding=True, return_tensors="pt", return_token_type_ids=True)
    with torch.no_grad():
        res = model(**enc)
    out = {f"padded.{k}": enc[k].to(torch.int64).contiguous()
           for k in ("input_ids", "attention_mask", "token_type_ids")}
    out["padded.start_logits"] = res.start_logits.float().contiguous()
    out["padded.end_logits"] = res.end_logits.float().contiguous()
    save_file(out, str(OUT / "expected.safetensors"))
    print(f"wrote {OUT}: {len(sentences)} sentences, logits {tuple(res.start_logits.shape)}")


if __name__ == "__main__":
    main()
