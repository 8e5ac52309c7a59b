"""How a pruned student's tokenizer reads a dataset differently from its teacher's (dev-only).

Usage: python scripts/compare_tokenizers.py --teacher runs/sst2-teacher/best \
           --student runs/sst2-student-b/best --data ../shared/data/sst2/dev.tsv
Prints the sentences tokenised identically, the token counts of both, and the student's [UNK]s.
Needs the `tokenizers` package (it comes with transformers).
"""
import argparse

from tokenizers import Tokenizer


def load(model_dir):
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--data", required=True, help="TSV whose first column is the sentence (header line skipped)")
    a = ap.parse_args()
    teacher, student = load(a.teacher), load(a.student)
    lines = open(a.data, encoding="utf-8").read().splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines]
    same = t_tokens = s_tokens = unk = 0
    for text in texts:
        t, s = teacher.encode(text).tokens, student.encode(text).tokens
        same += t == s
        t_tokens += len(t)
        s_tokens += len(s)
        unk += s.count("[UNK]")
    print(f"{same} of {len(texts)} sentences tokenised identically; tokens: teacher {t_tokens}, "
          f"student {s_tokens} ({unk} [UNK])")


if __name__ == "__main__":
    main()
