#!/usr/bin/env python3
"""PyTorch side of scripts/bench_vs_pytorch.sh (dev-only; needs torch + transformers).

Does exactly the work Retort's `retort bench` and `examples/bench_shapes.rs` do, on the same
checkpoint directories and the same synthetic token ids (crates/retort/src/bench.rs,
`synthetic_id`), and prints one JSON line per measurement. Subcommands:

  make-shapes --out DIR --tokenizer-from DIR   random-init BERT checkpoints of the shapes of
                                               ../shared/bench (student 4x256, teacher 6x384)
  infer --model DIR [--batch-size 32 --seq-len 64]   inference throughput, sequences/s
  latency --model DIR [--seq-len 16]                  batch-1 latency, ms
  distill-step --teacher DIR --student DIR            teacher no-grad forward + student
                                                      forward/backward (soft_kl T=2 + hard_ce)
                                                      + AdamW, sequences/s
  peak                                                torch.mm f32 1024^3, GFLOP/s
  table FILE                                          the side-by-side table of a results file
                                                      written by bench_vs_pytorch.sh

Common options: --threads (default 2), --warmup (3), --reps (20).
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def synthetic_ids(batch, seq_len, vocab):
    """The ids of crates/retort/src/bench.rs: every position a real token."""
    import torch

    skip = 100 if vocab > 200 else 0
    ids = [skip + (i * 7919) % max(vocab - skip, 1) for i in range(batch * seq_len)]
    return torch.tensor(ids).view(batch, seq_len)


def inputs(model, batch, seq_len):
    import torch

    ids = synthetic_ids(batch, seq_len, model.config.vocab_size)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if model.config.model_type == "bert":
        out["token_type_ids"] = torch.zeros_like(ids)
    return out


def timed(fn, warmup, reps):
    """Median, p5 and p95 (nearest rank, as Retort's `Stats`) of `reps` timed calls, seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    n = len(times)
    rank = lambda p: times[min(max(int(-(-p * n // 100)), 1), n) - 1]  # noqa: E731
    median = (times[n // 2 - 1] + times[n // 2]) / 2 if n % 2 == 0 else times[n // 2]
    return {"median": median, "p5": rank(5), "p95": rank(95), "min": times[0], "reps": n}


def load(path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def cmd_make_shapes(a):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    for name, (layers, hidden, heads, ffn) in {
        "student-4x256": (4, 256, 4, 1024),
        "teacher-6x384": (6, 384, 6, 1536),
    }.items():
        out = Path(a.out) / name
        if (out / "model.safetensors").exists():
            continue
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=ffn, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, num_labels=2,
        )
        BertForSequenceClassification(config).save_pretrained(out)
        for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
            if (Path(a.tokenizer_from) / f).exists():
                shutil.copy(Path(a.tokenizer_from) / f, out / f)


def cmd_infer(a):
    import torch

    model = load(a.model).eval()
    x = inputs(model, a.batch_size, a.seq_len)
    with torch.no_grad():
        s = timed(lambda: model(**x), a.warmup, a.reps)
    emit(side="pytorch", model=a.model, batch_size=a.batch_size, seq_len=a.seq_len,
         sequences_per_second=a.batch_size / s["median"], seconds_per_batch=s, threads=torch.get_num_threads())


def cmd_latency(a):
    import torch

    model = load(a.model).eval()
    x = inputs(model, 1, a.seq_len)
    with torch.no_grad():
        s = timed(lambda: model(**x), a.warmup, a.reps)
    emit(side="pytorch", model=a.model, seq_len=a.seq_len, median_ms=s["median"] * 1e3,
         p5_ms=s["p5"] * 1e3, p95_ms=s["p95"] * 1e3, threads=torch.get_num_threads())


def cmd_distill_step(a):
    import torch
    import torch.nn.functional as F

    teacher, student = load(a.teacher).eval(), load(a.student).train()
    x = inputs(teacher, a.batch_size, a.seq_len)
    labels = torch.arange(a.batch_size) % student.config.num_labels
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    t = 2.0

    def step():
        with torch.no_grad():
            tl = teacher(**x).logits
        sl = student(**x).logits
        kl = F.kl_div(F.log_softmax(sl / t, -1), F.log_softmax(tl / t, -1), log_target=True,
                      reduction="batchmean") * t * t
        loss = kl + F.cross_entropy(sl, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    s = timed(step, a.warmup, a.reps)
    emit(side="pytorch", model=f"{a.teacher} -> {a.student}", batch_size=a.batch_size, seq_len=a.seq_len,
         sequences_per_second=a.batch_size / s["median"], seconds_per_step=s, threads=torch.get_num_threads())


def cmd_peak(a):
    import torch

    n = 1024
    x, y = torch.ones(n, n), torch.full((n, n), 0.5)
    s = timed(lambda: torch.mm(x, y), a.warmup, a.reps)
    emit(side="pytorch", matmul_n=n, peak_gflops=2 * n**3 / s["min"] / 1e9, threads=torch.get_num_threads())


# --- the side-by-side table ------------------------------------------------------------

def value(kind, side, v):
    """The number a row compares, and whether higher is better."""
    if kind == "latency":
        ms = v["latency"]["ms"]["median"] if side == "retort" else v["median_ms"]
        return ms, False
    if kind == "inference" and side == "retort":
        return v["throughput"]["sequences_per_second"], True
    return v["sequences_per_second"], True


def cmd_table(a):
    rows, peak = {}, {}
    for line in Path(a.file).read_text().splitlines():
        if not line.strip():
            continue
        kind, name, side, raw = line.split("\t", 3)
        v = json.loads(raw)
        if kind == "peak":
            peak[side] = v
            continue
        rows.setdefault((kind, name), {})[side] = value(kind, side, v)
    ratios = []
    print(f"{'row':<44} {'Retort':>14} {'PyTorch':>14} {'ratio':>7}")
    for (kind, name), sides in rows.items():
        if "retort" not in sides or "pytorch" not in sides:
            print(f"{kind + ' ' + name:<44} (one side missing)")
            continue
        (r, higher), (p, _) = sides["retort"], sides["pytorch"]
        ratio = r / p if higher else p / r
        ratios.append(ratio)
        unit = "seq/s" if higher else "ms"
        print(f"{kind + ' ' + name:<44} {r:>8.2f} {unit:<5} {p:>8.2f} {unit:<5} {ratio:>7.2f}")
    if "retort" in peak:
        r = peak["retort"]
        line = (f"matmul peak (f32 {r['matmul_n']}^3, {r['threads']} threads): gemm crate {r['peak_gflops']:.1f} GFLOP/s")
        best = r["peak_gflops"]
        if "pytorch" in peak:
            line += f", torch.mm {peak['pytorch']['peak_gflops']:.1f} GFLOP/s"
            best = max(best, peak["pytorch"]["peak_gflops"])
        print(line)
        print(f"Retort forward ({r['model']}, batch 32 x 64): {r['forward_gflops']:.1f} GFLOP/s = "
              f"{100 * r['forward_gflops'] / best:.1f}% of the measured peak")
    print("ratio: Retort / PyTorch for sequences/s, PyTorch / Retort for latency (higher is better)")
    print(f"min ratio: {min(ratios):.2f}" if ratios else "min ratio: n/a")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, *args):
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn)
        sp.add_argument("--threads", type=int, default=2)
        sp.add_argument("--warmup", type=int, default=3)
        sp.add_argument("--reps", type=int, default=20)
        for arg, kw in args:
            sp.add_argument(arg, **kw)
        return sp

    req = {"required": True}
    add("make-shapes", cmd_make_shapes, ("--out", req), ("--tokenizer-from", req))
    add("infer", cmd_infer, ("--model", req), ("--batch-size", {"type": int, "default": 32}),
        ("--seq-len", {"type": int, "default": 64}))
    add("latency", cmd_latency, ("--model", req), ("--seq-len", {"type": int, "default": 16}))
    add("distill-step", cmd_distill_step, ("--teacher", req), ("--student", req),
        ("--batch-size", {"type": int, "default": 32}), ("--seq-len", {"type": int, "default": 64}))
    add("peak", cmd_peak)
    add("table", cmd_table, ("file", {}))
    a = p.parse_args()
    if a.cmd != "table":
        import torch

        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
        from transformers.utils import logging

        logging.set_verbosity_error()  # the fresh-head warning of a base checkpoint
        logging.disable_progress_bar()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
