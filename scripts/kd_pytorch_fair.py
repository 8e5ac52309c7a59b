#!/usr/bin/env python3
"""The PyTorch side of a fair whole-run comparison with `retort distill` (issue 16), written as a
careful PyTorch user would, with Retort's recipe (configs/sst2-distill.toml on runs/sst2-split):

- student: the teacher's layers 1, 3, 5 with its embeddings, pooler and classifier;
- loss: 0.5 * CE(gold) + 0.5 * T^2 * KL(softmax(t/T) || softmax(s/T)), T = 2, mean over rows;
- teacher logits computed once, in a length-sorted `inference_mode` pass with dynamic padding;
- training batches grouped by length as Retort's (shuffle, sort within pools of 50 batches, shuffle
  the batches; what HF Trainer's `group_by_length` does), padded to their longest sentence;
- AdamW (fused where this torch has it, else foreach), betas 0.9/0.999, eps 1e-8, weight decay
  0.01 except biases and LayerNorm, linear warmup over 6% of the steps then linear decay to 0,
  global-norm clipping at 1.0;
- the held-out sentences scored every `--eval-every` steps and at the end (`inference_mode`,
  sorted batches), the best student saved with `save_pretrained` (as Retort saves best/), and
  SST-2 dev scored with the best student at the end.

Prints one JSON line: versions, attention implementation, threads, per-phase seconds (tokenise,
teacher pass, training with its evaluations and saves, the evaluations alone, the final dev
pass), accuracies, and the process's peak RSS. Run with the allocator settings Retort uses
(scripts/kd_fair_compare.sh sets MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_).

    python scripts/kd_pytorch_fair.py --teacher runs/sst2-teacher/best --seed 42
"""
import argparse
import csv
import json
import os
import random
import resource
import tempfile
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from kd_pytorch import student_from_layers  # the same student as the naive loop's


def read_tsv(path, label2id):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    # Labels by name, or by class index as GLUE writes them.
    labels = [label2id[r["label"]] if r["label"] in label2id else int(r["label"]) for r in rows]
    return [r["sentence"] for r in rows], labels


def pad(batch_ids, pad_id):
    longest = max(len(x) for x in batch_ids)
    ids = torch.full((len(batch_ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), longest), dtype=torch.long)
    for i, x in enumerate(batch_ids):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return ids, mask


def sorted_batches(ids, batch_size):
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def grouped_batches(ids, batch_size, rng):
    order = list(range(len(ids)))
    rng.shuffle(order)
    batches = []
    for p in range(0, len(order), batch_size * 50):
        pool = sorted(order[p : p + batch_size * 50], key=lambda i: len(ids[i]))
        batches += [pool[k : k + batch_size] for k in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def logits_of(model, ids, pad_id, batch_size=64):
    model.eval()
    out = torch.empty((len(ids), model.config.num_labels))
    for b in sorted_batches(ids, batch_size):
        x, m = pad([ids[i] for i in b], pad_id)
        out[b] = model(input_ids=x, attention_mask=m).logits.float()
    return out


def accuracy(model, ids, labels, pad_id):
    pred = logits_of(model, ids, pad_id).argmax(-1)
    return (pred == torch.tensor(labels)).float().mean().item()


def adamw(model, lr, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True), "fused"
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=True), "foreach"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", default="runs/sst2-teacher/best")
    p.add_argument("--train", default="runs/sst2-split/train.tsv")
    p.add_argument("--heldout", default="runs/sst2-split/heldout.tsv")
    p.add_argument("--dev", default="../shared/data/sst2/dev.tsv")
    p.add_argument("--layers", default="1,3,5")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--limit", type=int, default=0, help="first N training sentences (0: all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--attn", default="sdpa", help="transformers' attn_implementation")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher, attn_implementation=args.attn)
    label2id = {k: int(v) for k, v in teacher.config.label2id.items()}
    pad_id = tok.pad_token_id
    texts, labels = read_tsv(args.train, label2id)
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    enc = lambda t: tok(t, truncation=True, max_length=args.max_len)["input_ids"]
    train_ids = enc(texts)
    held_texts, held_labels = read_tsv(args.heldout, label2id)
    held_ids = enc(held_texts)
    dev_texts, dev_labels = read_tsv(args.dev, label2id)
    dev_ids = enc(dev_texts)
    tokenise_s = time.perf_counter() - start

    start = time.perf_counter()
    teacher_logits = logits_of(teacher, train_ids, pad_id)
    teacher_s = time.perf_counter() - start

    student = student_from_layers(teacher, [int(x) for x in args.layers.split(",")])
    del teacher
    opt, kind = adamw(student, args.lr, args.weight_decay)
    steps_per_epoch = (len(train_ids) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = round(args.warmup_ratio * total)
    # Retort's schedule: (step + 1) / warmup during warmup, then (total - step) / (total - warmup).
    lr_at = lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    labels_t = torch.tensor(labels)
    T = args.temperature
    best, best_step, eval_s, step = -1.0, 0, 0.0, 0
    out_dir = tempfile.mkdtemp(prefix="kd-fair-")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        student.train()
        for b in grouped_batches(train_ids, args.batch_size, rng):
            x, m = pad([train_ids[i] for i in b], pad_id)
            s = student(input_ids=x, attention_mask=m).logits
            t = teacher_logits[b]
            hard = F.cross_entropy(s, labels_t[b])
            soft = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                            reduction="batchmean") * T * T
            loss = 0.5 * hard + 0.5 * soft
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), args.clip)
            opt.step()
            sched.step()
            step += 1
            if step % args.eval_every == 0 or step == total:
                e0 = time.perf_counter()
                acc = accuracy(student, held_ids, held_labels, pad_id)
                if acc > best:
                    best, best_step = acc, step
                    student.save_pretrained(out_dir)
                eval_s += time.perf_counter() - e0
                student.train()
    train_s = time.perf_counter() - start
    last_dev = accuracy(student, dev_ids, dev_labels, pad_id)
    start = time.perf_counter()
    best_model = AutoModelForSequenceClassification.from_pretrained(out_dir, attn_implementation=args.attn)
    dev = accuracy(best_model, dev_ids, dev_labels, pad_id)
    dev_s = time.perf_counter() - start
    print(json.dumps({
        "side": "pytorch", "seed": args.seed, "torch": torch.__version__,
        "transformers": transformers.__version__, "attn_implementation": args.attn,
        "adamw": kind, "threads": torch.get_num_threads(), "steps": step, "examples": len(train_ids),
        "malloc": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "tokenise_s": tokenise_s, "teacher_s": teacher_s, "train_s": train_s, "eval_s": eval_s,
        "dev_s": dev_s, "heldout_best": best, "best_step": best_step, "dev_accuracy": dev,
        "dev_accuracy_last": last_dev,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
