#!/usr/bin/env python3
"""The ONNX export of a model directory checked on a real dev set: `cofi export`'s file passes `onnx.checker`
(full check) and ONNX Runtime's logits equal `cofi predict --logits`'s on every dev text.

    .venv-peer/bin/python scripts/onnx_check.py --model DIR [--cofi .build/release/cofi] [--dev FILE]
        [--max-length 64] [--tolerance 1e-4] [--json FILE]

1. `cofi export --model DIR --onnx WORK/model.onnx` (timed), then `onnx.checker.check_model(full_check=True)`;
2. `cofi predict --model DIR --logits --max-length L` on the dev texts (SST-2 format, default the movie-snippets
   dev set of .assets), as JSON-lines records;
3. ONNX Runtime (CPUExecutionProvider, all graph optimizations) on the same texts tokenized by the Hugging Face
   tokenizer of DIR (truncated at L), in padded batches of 32 in file order;
4. prints, and with --json writes, the largest absolute and relative logit difference, the dev accuracy of each
   side, how many predicted labels agree, and the file's size and export time. Exit status 1 when a difference is
   over the tolerance, a logit is not finite, or a label differs.
Needs scripts/requirements-peer.txt's environment (onnx, onnxruntime, numpy, transformers for the tokenizer).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from peer_finetune import read_sst2
    from transformers import AutoTokenizer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--cofi", default=os.path.join(ROOT, ".build/release/cofi"))
    p.add_argument("--dev", default=os.path.join(ROOT, ".assets/movie-snippets/dev.tsv"))
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--json")
    args = p.parse_args()

    texts, labels = read_sst2(args.dev)
    work = tempfile.mkdtemp(prefix="onnx-check-")
    path = os.path.join(work, "model.onnx")
    t0 = time.perf_counter()
    subprocess.run([args.cofi, "export", "--model", args.model, "--onnx", path], check=True, stdout=sys.stderr)
    export_s = time.perf_counter() - t0
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    print(f"{args.model}: {path} passes onnx.checker (full check), opset {opset}, "
          f"{os.path.getsize(path) / 2**20:.1f} MiB, exported in {export_s:.1f} s", file=sys.stderr)

    records = os.path.join(work, "dev.jsonl")
    with open(records, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = subprocess.run([args.cofi, "predict", "--model", args.model, "--logits", "--max-length", str(args.max_length),
                          "--input", records], check=True, capture_output=True, text=True).stdout
    cofi = [json.loads(line) for line in out.splitlines()]
    assert len(cofi) == len(texts), f"cofi predict answered {len(cofi)} of {len(texts)} texts"
    cofi_logits = np.asarray([c["logits"] for c in cofi], dtype=np.float64)

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    ort_logits = []
    for s in range(0, len(texts), 32):
        enc = tokenizer(texts[s : s + 32], truncation=True, max_length=args.max_length, padding=True, return_tensors="np")
        feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        ort_logits.append(session.run(["logits"], feed)[0])
    ort_logits = np.concatenate(ort_logits).astype(np.float64)

    finite = bool(np.isfinite(cofi_logits).all() and np.isfinite(ort_logits).all())
    diff = np.abs(cofi_logits - ort_logits)
    relative = diff / np.maximum(1.0, np.abs(cofi_logits))
    labels = np.asarray(labels)
    cofi_pred, ort_pred = cofi_logits.argmax(-1), ort_logits.argmax(-1)
    result = {
        "model": args.model, "texts": len(texts), "opset": opset, "onnx_mib": round(os.path.getsize(path) / 2**20, 2),
        "export_seconds": round(export_s, 2), "checker": "passed", "finite": finite,
        "max_abs_diff": float(diff.max()), "max_rel_diff": float(relative.max()),
        "accuracy_cofi": float((cofi_pred == labels).mean()), "accuracy_ort": float((ort_pred == labels).mean()),
        "labels_agree": int((cofi_pred == ort_pred).sum()), "ort": ort.__version__, "onnx": onnx.__version__,
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")
    ok = finite and result["max_rel_diff"] <= args.tolerance and result["labels_agree"] == len(texts)
    print(f"{args.model}: logits max abs diff {result['max_abs_diff']:.2e} (relative {result['max_rel_diff']:.2e}, "
          f"tolerance {args.tolerance}), dev accuracy cofi {result['accuracy_cofi']:.4f} / ORT {result['accuracy_ort']:.4f}, "
          f"{result['labels_agree']}/{len(texts)} labels agree: {'OK' if ok else 'FAILED'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
