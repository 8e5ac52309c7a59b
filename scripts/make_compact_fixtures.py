#!/usr/bin/env python3
"""Builds tests/fixtures/tiny-bilstm and tests/fixtures/tiny-cnn: small random BiLSTM and CNN
classifiers written as PyTorch modules (nn.Embedding, nn.LSTM, nn.Conv1d, nn.Linear), in the
checkpoint format Retort reads (config.json + model.safetensors, tensors named as the modules
name them), with the tiny BERT fixture's tokenizer, and their logits for a few sentences
computed by PyTorch itself (each sentence alone, unpadded) in expected.safetensors.

The Rust tests load the checkpoints and must reproduce the logits on a padded batch: this
pins the gate order, the two LSTM biases, the backward direction's start at each sentence's
last token, the convolution layout, the pooling and the head.

    /work/venv/bin/python scripts/make_compact_fixtures.py
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.txt"]
LABELS = ["negative", "neutral", "positive"]
# Token ids of the tiny BERT vocabulary (316 tokens); lengths 1, 2 (shorter than the CNN's
# widest kernel), 5 and 9, with [CLS] = 2 and [SEP] = 3 as the tokenizer would place them.
SENTENCES = [[2], [2, 3], [2, 40, 41, 42, 3], [2, 50, 51, 52, 53, 54, 55, 56, 3]]


class BiLstm(nn.Module):
    def __init__(self, vocab, emb, units, mlp, labels):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, units, batch_first=True, bidirectional=True)
        self.mlp = nn.Linear(2 * units, mlp)
        self.classifier = nn.Linear(mlp, labels)

    def forward(self, ids):  # one sentence, [1, seq]
        states, _ = self.lstm(self.embeddings(ids))
        pooled = states.max(dim=1).values
        return self.classifier(torch.relu(self.mlp(pooled)))


class Cnn(nn.Module):
    def __init__(self, vocab, emb, filters, widths, mlp, labels):
        super().__init__()
        self.widths = widths
        self.embeddings = nn.Embedding(vocab, emb)
        self.convs = nn.ModuleList(nn.Conv1d(emb, filters, w) for w in widths)
        self.mlp = nn.Linear(filters * len(widths), mlp)
        self.classifier = nn.Linear(mlp, labels)

    def forward(self, ids):  # one sentence, [1, seq]
        x = self.embeddings(ids).transpose(1, 2)  # [1, emb, seq]
        short = max(self.widths) - x.shape[2]
        if short > 0:  # zeros after a sentence shorter than the widest kernel
            x = nn.functional.pad(x, (0, short))
        pooled = []
        for conv in self.convs:
            maps = torch.relu(conv(x))
            # Windows that start at a real token and end inside the sentence (the first
            # window when the sentence is shorter than the kernel).
            valid = max(len(ids[0]) - conv.kernel_size[0] + 1, 1)
            pooled.append(maps[:, :, :valid].max(dim=2).values)
        return self.classifier(torch.relu(self.mlp(torch.cat(pooled, dim=1))))


def config(model_type, **fields):
    return {
        "model_type": model_type,
        "architectures": [
            {"retort-bilstm": "RetortBiLstm", "retort-cnn": "RetortCnn"}[model_type]
            + "ForSequenceClassification"
        ],
        "vocab_size": 316,
        "max_position_embeddings": 64,
        "dropout": 0.1,
        "classifier_dropout": 0.1,
        "pad_token_id": 0,
        "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "label2id": {l: i for i, l in enumerate(LABELS)},
        **fields,
    }


def write(name, model, cfg):
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    for f in TOKENIZER_FILES:
        shutil.copy(FIXTURES / "tiny-bert" / f, out / f)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / "model.safetensors")
    model.eval()
    with torch.inference_mode():
        logits = {
            f"logits.{i}": model(torch.tensor([ids]))[0] for i, ids in enumerate(SENTENCES)
        }
    logits.update({f"ids.{i}": torch.tensor(ids, dtype=torch.int64) for i, ids in enumerate(SENTENCES)})
    save_file(logits, out / "expected.safetensors")
    print(f"wrote {out}")


def main():
    torch.manual_seed(0)
    bilstm = BiLstm(316, 16, 8, 12, len(LABELS))
    # Biases away from zero, so that mixing up the two bias vectors or the gates shows.
    with torch.no_grad():
        for n, p in bilstm.lstm.named_parameters():
            if "bias" in n:
                p.uniform_(-0.5, 0.5)
    write(
        "tiny-bilstm",
        bilstm,
        config("retort-bilstm", embedding_size=16, hidden_size=8, mlp_size=12),
    )
    cnn = Cnn(316, 16, 6, [2, 3], 12, len(LABELS))
    with torch.no_grad():
        for conv in cnn.convs:
            conv.bias.uniform_(-0.2, 0.2)
    write(
        "tiny-cnn",
        cnn,
        config("retort-cnn", embedding_size=16, filters=6, kernel_sizes=[2, 3], mlp_size=12),
    )


if __name__ == "__main__":
    main()
