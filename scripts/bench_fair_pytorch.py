#!/usr/bin/env python3
"""The PyTorch side of scripts/bench_fair.py (dev-only; needs torch + transformers): the rows
of `bench_shapes sweep` (crates/retort/examples/bench_shapes.rs), written as a careful PyTorch
user writes them (issue 16):

- models loaded with attn_implementation="sdpa" (recorded), inference in torch.inference_mode;
- the distillation step: teacher logits under inference_mode, the student's forward/backward
  (soft_kl at T = 2 + hard_ce), AdamW(fused=True) with no decay on biases and LayerNorm
  weights (Retort's groups), zero_grad(set_to_none=True);
- the same synthetic ids as Retort (scripts/bench_pytorch.py `synthetic_ids`), and for the
  real-text row the same tokenizer.json, texts sorted by length, batches of 32 padded per batch;
- with --compile, inference rows once more through torch.compile (side "pytorch-compile";
  compilation happens in the warm-up and is reported as compile_s, not timed).

One JSON line per row; the first line records the versions, threads and attention.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pytorch import inputs, timed  # noqa: E402


def load(path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa")


def dev_batches(path, tokenizer_dir, pad_id, batch=32):
    """The texts of a TSV (first column, after a header) in length-sorted padded batches."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    texts = [l.split("\t")[0] for l in Path(path).read_text().splitlines()[1:] if l.strip()]
    ids = [e.ids for e in tok.encode_batch(texts)]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = []
    for start in range(0, len(order), batch):
        rows = [ids[i] for i in order[start:start + batch]]
        width = max(map(len, rows))
        t = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            t[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        out.append({"input_ids": t, "attention_mask": mask, "token_type_ids": torch.zeros_like(t)})
    return texts, max(map(len, ids)), out


def no_decay_groups(model, weight_decay):
    decay, keep = [], []
    for name, p in model.named_parameters():
        (keep if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--student", required=True)
    p.add_argument("--lengths", default="8,13,16,31,64,128")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--dev", help="TSV whose first column is the text: the real-text row")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="add torch.compile inference rows")
    a = p.parse_args()

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers.utils import logging

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    logging.set_verbosity_error()
    models = {"student": load(a.student).eval(), "teacher": load(a.teacher).eval()}
    print(json.dumps({"side": "pytorch", "kind": "versions", "torch": torch.__version__,
                      "transformers": transformers.__version__, "threads": torch.get_num_threads(),
                      "attn_implementation": models["teacher"].config._attn_implementation}), flush=True)

    def row(side, kind, model, batch, seq, s, **extra):
        print(json.dumps({"side": side, "kind": kind, "model": model, "batch_size": batch, "seq_len": seq,
                          "threads": torch.get_num_threads(), "median_s": s["median"], "p5_s": s["p5"],
                          "p95_s": s["p95"], "reps": s["reps"], **extra}), flush=True)

    def infer(model, x):
        with torch.inference_mode():
            model(**x)

    compiled = {}
    if a.compile:
        compiled = {name: torch.compile(m) for name, m in models.items()}

    teacher, student_path = models["teacher"], a.student
    lengths = [int(v) for v in a.lengths.split(",")]
    batches = [int(v) for v in a.batches.split(",")]
    for seq in lengths:
        for batch in batches:
            x = inputs(teacher, batch, seq)
            for name, m in models.items():
                row("pytorch", "inference", name, batch, seq, timed(lambda: infer(m, x), a.warmup, a.reps))
            for name, m in compiled.items():
                t0 = time.perf_counter()
                infer(m, x)
                compile_s = time.perf_counter() - t0
                s = timed(lambda: infer(m, x), a.warmup, a.reps)
                row("pytorch-compile", "inference", name, batch, seq, s, compile_s=compile_s)
            if batch > 1:
                # A fresh student per shape, as Retort's sweep starts each step from its checkpoint.
                student = load(student_path).train()
                opt = torch.optim.AdamW(no_decay_groups(student, 0.01), lr=1e-4, fused=True)
                labels = torch.arange(batch) % student.config.num_labels
                t = 2.0

                def step():
                    with torch.inference_mode():
                        tl = teacher(**x).logits
                    tl = tl.clone()  # an inference tensor cannot enter autograd
                    sl = student(**x).logits
                    kl = F.kl_div(F.log_softmax(sl / t, -1), F.log_softmax(tl / t, -1), log_target=True,
                                  reduction="batchmean") * t * t
                    loss = kl + F.cross_entropy(sl, labels)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                row("pytorch", "distill_step", "teacher->student", batch, seq, timed(step, a.warmup, a.reps))
    if a.dev:
        texts, longest, dev = dev_batches(a.dev, a.teacher, teacher.config.pad_token_id or 0)

        def whole(m):
            for x in dev:
                infer(m, x)

        for name, m in models.items():
            row("pytorch", "dev_inference", name, len(texts), longest, timed(lambda: whole(m), a.warmup, a.reps))
        for name, m in compiled.items():
            row("pytorch-compile", "dev_inference", name, len(texts), longest,
                timed(lambda: whole(m), a.warmup, a.reps))


if __name__ == "__main__":
    sys.exit(main())
