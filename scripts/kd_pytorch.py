#!/usr/bin/env python3
"""A plain PyTorch knowledge-distillation loop, written the way the usual tutorials and
TextBrewer do it: the teacher runs on every step, every batch is padded to a fixed maximum
length. Row 4 of BENCHMARKS.md (`scripts/bench_vs_pytorch.sh --end-to-end`) times it against
`retort distill` with the same settings as configs/sst2-distill.toml (dev-only; needs torch +
transformers).

Student: the teacher's layers --layers (DistilBERT-style, with its embeddings and head).
Loss: hard * CE(gold) + soft * T^2 * KL(teacher_T || student_T). AdamW, linear warmup then
decay, gradient clipping. Evaluated on dev once, at the end. Prints one JSON line.
"""
import argparse
import copy
import csv
import json
import random
import time

import torch
import torch.nn.functional as F


def read_tsv(path, limit, label2id):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if limit:
        rows = rows[:limit]
    texts = [r["sentence"] for r in rows]
    labels = [label2id[r["label"]] if r["label"] in label2id else int(r["label"]) for r in rows]
    return texts, torch.tensor(labels)


def student_from_layers(teacher, layers):
    """A copy of the teacher keeping only the given encoder layers."""
    student = copy.deepcopy(teacher)
    base = getattr(student, student.base_model_prefix)
    base.encoder.layer = torch.nn.ModuleList([base.encoder.layer[i] for i in layers])
    student.config.num_hidden_layers = len(layers)
    return student


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--teacher", default="runs/sst2-teacher/best")
    p.add_argument("--layers", default="1,3,5")
    p.add_argument("--train", default="../shared/data/sst2/train.tsv")
    p.add_argument("--dev", default="../shared/data/sst2/dev.tsv")
    p.add_argument("--limit", type=int, default=0, help="first N training examples (0: all)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--hard", type=float, default=0.5)
    p.add_argument("--soft", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    start = time.perf_counter()

    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              get_linear_schedule_with_warmup)
    from transformers.utils import logging

    logging.disable_progress_bar()

    tok = AutoTokenizer.from_pretrained(a.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(a.teacher).eval()
    student = student_from_layers(teacher, [int(i) for i in a.layers.split(",")]).train()
    label2id = teacher.config.label2id
    train_texts, train_labels = read_tsv(a.train, a.limit, label2id)
    dev_texts, dev_labels = read_tsv(a.dev, 0, label2id)

    def encode(texts):
        return tok(texts, padding="max_length", truncation=True, max_length=a.max_length, return_tensors="pt")

    train = encode(train_texts)
    dev = encode(dev_texts)
    steps = a.epochs * ((len(train_texts) + a.batch_size - 1) // a.batch_size)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in student.named_parameters() if not n.endswith(no_decay)], "weight_decay": a.weight_decay},
        {"params": [p for n, p in student.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=a.lr)
    sched = get_linear_schedule_with_warmup(opt, int(a.warmup_ratio * steps), steps)
    t = a.temperature
    for _ in range(a.epochs):
        order = torch.randperm(len(train_texts))
        for i in range(0, len(order), a.batch_size):
            idx = order[i : i + a.batch_size]
            batch = {k: v[idx] for k, v in train.items()}
            with torch.no_grad():
                tl = teacher(**batch).logits
            sl = student(**batch).logits
            kl = F.kl_div(F.log_softmax(sl / t, -1), F.log_softmax(tl / t, -1), log_target=True,
                          reduction="batchmean") * t * t
            loss = a.hard * F.cross_entropy(sl, train_labels[idx]) + a.soft * kl
            opt.zero_grad()
            loss.backward()
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(student.parameters(), a.grad_clip)
            opt.step()
            sched.step()

    student.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(dev_texts), 64):
            batch = {k: v[i : i + 64] for k, v in dev.items()}
            right += (student(**batch).logits.argmax(-1) == dev_labels[i : i + 64]).sum().item()
    print(json.dumps({
        "side": "pytorch", "train_examples": len(train_texts), "steps": steps,
        "dev_accuracy": right / len(dev_texts), "seconds_in_script": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()
