#!/usr/bin/env python3
"""Retort vs a careful PyTorch user, shape by shape, alternating the sides (issue 16).

Each round runs both sides once over every row, in alternating order (Retort first in odd
rounds, PyTorch first in even ones), each side in a process of its own:

  Retort:  target/release/examples/bench_shapes sweep  (crates/retort/examples/bench_shapes.rs)
  PyTorch: scripts/bench_fair_pytorch.py               (inference_mode, sdpa, fused AdamW, ...)

Rows: inference of the teacher and the student at every length x batch (batch 1 is latency),
the distillation step (teacher forward without gradients + student forward/backward + AdamW)
at every length x batch above 1, and inference over the real texts of --dev in length-sorted
batches of 32. Per row and round the ratio is PyTorch's median time / Retort's (higher: Retort
faster); the table gives each side's median time over the rounds, the median ratio and its
min-max over the rounds, and a verdict: "ahead" only if the lowest ratio is above 1, "behind"
if the highest is below 1, else "level". --threads-1 adds the batch-1 rows at 1 thread (both
sides), where a careful user might get lower latency than at 2. The last line is
`min ratio: X` over the rows of the eager baseline.

Usage: scripts/bench_fair.py --teacher DIR --student DIR [--dev ../shared/data/sst2/dev.tsv]
         [--rounds 5] [--reps 10] [--warmup 2] [--lengths 8,13,16,31,64,128] [--batches 1,8,32]
         [--compile] [--threads-1] [--python /work/venv/bin/python] [--out FILE.jsonl]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RETORT = ROOT / "target/release/examples/bench_shapes"


def run(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def sides(a, threads, batches):
    common = ["--teacher", a.teacher, "--student", a.student, "--lengths", a.lengths,
              "--batches", batches, "--reps", str(a.reps), "--warmup", str(a.warmup)]
    dev = ["--dev", a.dev] if a.dev and batches == a.batches else []
    env = dict(os.environ)
    # The same allocator settings on both sides: Retort sets glibc's malloc itself
    # (kernels::configure_process); PyTorch gets the same values from the environment.
    env.update(MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(2**31 - 1),
               RAYON_NUM_THREADS=str(threads))
    retort = [str(RETORT), "sweep", "--threads", str(threads), *common, *dev]
    torch = [a.python, str(ROOT / "scripts/bench_fair_pytorch.py"), "--threads", str(threads), *common, *dev]
    if a.compile:
        torch.append("--compile")
    return {"retort": (retort, env), "pytorch": (torch, env)}


def key(r):
    return (r["kind"], r["model"], r["batch_size"], r["seq_len"], r["threads"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--student", required=True)
    p.add_argument("--dev")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lengths", default="8,13,16,31,64,128")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads-1", dest="threads_1", action="store_true")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--out", default=str(ROOT / "target/bench-fair.jsonl"))
    a = p.parse_args()
    if not RETORT.exists():
        sys.exit(f"bench_fair: build {RETORT} first: cargo build --release -p retort --example bench_shapes")

    configs = [(2, a.batches)]
    if a.threads_1:
        configs.append((1, "1"))
    results = []  # (round, side, row)
    versions = None
    with open(a.out, "w") as log:
        for rnd in range(a.rounds):
            order = ["retort", "pytorch"] if rnd % 2 == 0 else ["pytorch", "retort"]
            for threads, batches in configs:
                cmds = sides(a, threads, batches)
                for side in order:
                    print(f"round {rnd + 1}/{a.rounds}: {side}, {threads} thread(s)", file=sys.stderr, flush=True)
                    for r in run(*cmds[side]):
                        log.write(json.dumps({"round": rnd, **r}) + "\n")
                        if r["kind"] == "versions":
                            versions = r
                        else:
                            results.append((rnd, r))
    table(results, versions, a)


def table(results, versions, a):
    times = {}  # (side, key) -> {round: median_s}
    for rnd, r in results:
        times.setdefault((r["side"], key(r)), {})[rnd] = r["median_s"]
    keys = sorted({k for (_, k) in times}, key=lambda k: (k[0], k[1], k[4], k[2], k[3]))
    if versions:
        print(f"PyTorch {versions['torch']}, transformers {versions['transformers']}, "
              f"attn_implementation {versions['attn_implementation']}; {a.rounds} rounds x {a.reps} reps")
    print(f"{'row':<46} {'Retort ms':>10} {'PyTorch ms':>11} {'ratio':>6} {'min':>6} {'max':>6}  verdict")
    eager_mins = []
    for baseline in ["pytorch", "pytorch-compile"]:
        for k in keys:
            r, t = times.get(("retort", k)), times.get((baseline, k))
            if not r or not t:
                continue
            ratios = [t[i] / r[i] for i in r if i in t]
            lo, hi, mid = min(ratios), max(ratios), statistics.median(ratios)
            verdict = "ahead" if lo > 1 else "behind" if hi < 1 else "level"
            if baseline == "pytorch":
                eager_mins.append(lo)
            kind, model, batch, seq, threads = k
            name = f"{kind} {model} b{batch} L{seq} t{threads}"
            if baseline != "pytorch":
                name += " (compile)"
            print(f"{name:<46} {1e3 * statistics.median(r.values()):>10.2f} "
                  f"{1e3 * statistics.median(t.values()):>11.2f} {mid:>6.2f} {lo:>6.2f} {hi:>6.2f}  {verdict}")
    print("ratio: PyTorch time / Retort time per round (higher: Retort faster); min/max over the rounds")
    print(f"min ratio: {min(eager_mins):.2f}" if eager_mins else "min ratio: n/a")


if __name__ == "__main__":
    sys.exit(main())
