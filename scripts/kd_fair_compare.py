#!/usr/bin/env python3
"""The whole-distillation-run row of issue 16: `retort distill` (configs/sst2-distill.toml on
runs/sst2-split) against scripts/kd_pytorch_fair.py, the same recipe written as a careful PyTorch
user would, for several seeds, the sides alternating (Retort first on even rounds, PyTorch first on
odd ones), each in its own process with the same allocator settings.

Per run: the teacher pass (Retort's cache is fresh each time, so it is computed, not read), the
training with its held-out evaluations and saves, the whole command's wall-clock and peak RSS, and
SST-2 dev accuracy of the best student. Then the means and spreads of accuracy; if the two sides'
mean dev accuracies differ by more than 0.5 point the script says so, prints no speed ratio and
exits 1. Otherwise it prints the median PyTorch / Retort time ratio of each phase with its min-max
over the seeds; a ratio counts as "ahead" only when its minimum is above 1.

    /work/venv/bin/python scripts/kd_fair_compare.py [--seeds 42 43 44] [--retort target/release/retort]
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ENV = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(2**31 - 1),
           RAYON_NUM_THREADS="2")


def timed(cmd):
    """Runs `cmd` under GNU time; returns (stdout, wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return p.stdout, wall, rss_kib / 1024


def run_retort(args, seed):
    out = pathlib.Path(args.out, f"retort-s{seed}")
    cache = pathlib.Path(args.out, f"cache-s{seed}")
    for d in (out, cache):
        shutil.rmtree(d, ignore_errors=True)
    sets = [f"data.train={args.split}/train.tsv", f"data.dev={args.split}/heldout.tsv",
            "train.eval_every=500", f"train.seed={seed}", f"output.dir={out}", f"distill.cache_dir={cache}",
            f"teacher.dir={args.teacher}"]
    if args.limit:
        sets.append(f"data.limit={args.limit}")
    cmd = [args.retort, "distill", "--config", "configs/sst2-distill.toml"]
    for s in sets:
        cmd += ["--set", s]
    _, wall, rss = timed(cmd)
    summary = json.loads((out / "summary.json").read_text())
    start = time.perf_counter()
    dev, _, _ = timed([args.retort, "eval", "--model", str(out / "best"), "--data", args.dev, "--json"])
    return {"side": "retort", "seed": seed, "teacher_s": summary["teacher_phase_seconds"],
            "train_s": summary["run"]["seconds"], "wall_s": wall, "max_rss_mb": rss,
            "dev_s": time.perf_counter() - start,
            "dev_accuracy": json.loads(dev)["scores"]["values"]["accuracy"],
            "heldout_best": summary["run"]["best_score"]}


def run_pytorch(args, seed):
    cmd = [args.python, "scripts/kd_pytorch_fair.py", "--teacher", args.teacher, "--train",
           f"{args.split}/train.tsv", "--heldout", f"{args.split}/heldout.tsv", "--dev", args.dev,
           "--seed", str(seed), "--attn", args.attn]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    out, wall, rss = timed(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    r.update(wall_s=wall, max_rss_mb=rss)
    return r


def spread(values):
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f})"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--retort", default="target/release/retort")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--teacher", default="runs/sst2-teacher/best")
    p.add_argument("--split", default="runs/sst2-split")
    p.add_argument("--dev", default="../shared/data/sst2/dev.tsv")
    p.add_argument("--out", default="runs/fair")
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--limit", type=int, default=0, help="first N training sentences: a smoke test")
    args = p.parse_args()
    runs = []
    for k, seed in enumerate(args.seeds):
        sides = [run_retort, run_pytorch] if k % 2 == 0 else [run_pytorch, run_retort]
        for side in sides:
            r = side(args, seed)
            print(json.dumps(r), flush=True)
            runs.append(r)
    by = {s: [r for r in runs if r["side"] == s] for s in ("retort", "pytorch")}
    acc = {s: [r["dev_accuracy"] for r in rs] for s, rs in by.items()}
    for s in ("retort", "pytorch"):
        a = acc[s]
        print(f"{s}: dev accuracy mean {statistics.mean(a):.4f} (min {min(a):.4f}, max {max(a):.4f}) over seeds "
              f"{args.seeds}; peak RSS {max(r['max_rss_mb'] for r in by[s]):.0f} MiB")
    gap = abs(statistics.mean(acc["retort"]) - statistics.mean(acc["pytorch"]))
    if gap > 0.005:
        print(f"mean dev accuracies differ by {100 * gap:.2f} points (> 0.5): not equal accuracy, no speed ratio")
        sys.exit(1)
    pytorch = by["pytorch"][0]
    print(f"baseline: PyTorch {pytorch['torch']} eager, transformers {pytorch['transformers']}, "
          f"attn_implementation={pytorch['attn_implementation']}, AdamW {pytorch['adamw']}, dynamic padding, "
          "length-grouped batches, teacher logits precomputed in a sorted inference_mode pass")
    ratios = {}
    for phase in ("teacher_s", "train_s", "wall_s"):
        pairs = zip(sorted(by["pytorch"], key=lambda r: r["seed"]), sorted(by["retort"], key=lambda r: r["seed"]))
        ratios[phase] = [pt[phase] / rt[phase] for pt, rt in pairs]
        verdict = "ahead" if min(ratios[phase]) > 1 else ("behind" if max(ratios[phase]) < 1 else "level")
        print(f"{phase}: PyTorch / Retort time {spread(ratios[phase])}: Retort {verdict}")
    print(f"min ratio: {min(min(v) for v in ratios.values()):.2f}")


if __name__ == "__main__":
    main()
