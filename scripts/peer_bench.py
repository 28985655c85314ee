#!/usr/bin/env python3
"""PyTorch peer harness for cofi-bench: the same workloads, shapes and JSON lines as `Sources/cofi-bench`.

Needs the reference environment of `scripts/reference/requirements.txt` (torch 2.13.0+cpu, transformers):

    python3 -m venv .venv-ref && .venv-ref/bin/pip install -r scripts/reference/requirements.txt
    .venv-ref/bin/python scripts/peer_bench.py [--models bert-base,minilm-l6,cofi-s95]
        [--workloads fwd_b1,fwd_b32,fwd_bwd_b32] [--repeats N] [--warmup N] [--budget S]

Workloads, all at T = 128 with every token real (attention mask all ones), random-init
`BertForSequenceClassification` (2 labels, vocab 30,522, max positions 512, default attention implementation),
`torch.set_num_threads(2)`:
  fwd_b1       forward, B = 1, eval mode + `torch.inference_mode()`
  fwd_b32      forward, B = 32, eval mode + `torch.inference_mode()`
  fwd_bwd_b32  forward + backward, B = 32, train mode (dropout on), cross-entropy on random labels,
               `loss.backward()`, no optimizer step (gradients set to None between steps, outside the timing)

The CoFi-s95 shape (BASELINES.md; built in scripts/peer_models.py) is BERT-base cut physically: layer l keeps its first heads[l] heads (the
query/key/value rows and output.dense columns of those heads, the same as what `prune_heads` did in transformers
4.x, which transformers 5 no longer has) and its first ffn[l] FFN units (narrower intermediate.dense /
output.dense). A layer with 0 heads gets an identity attention and one with FFN width 0 an identity feed-forward
chunk: the sublayer is skipped, LayerNorm included.

Repeats: `--repeats N` gives every workload N timed runs; by default each workload gets as many as fit in
`--budget` seconds (default 10) judged from the last warm-up run, clamped to 3..50, as cofi-bench does.

Output: progress and a table on stderr/stdout, then one JSON line per measurement on stdout:
  {"impl":"pytorch","model":...,"workload":...,"batch":...,"seq_len":...,"median_ms":...,"min_ms":...,
   "seq_per_s":...,"gflops":...,"repeats":...}   (fwd_bwd_b32 adds "fwd_ms" and "bwd_ms")
GFLOP/s counts the encoder forward FLOPs of BertShape.forwardFLOPs (linears + the two attention products),
3x for forward + backward.
"""

import argparse
import json
import statistics
import sys
import time

import torch

# The shapes and their construction are shared with peer_runtime.py.
from peer_models import MODELS, VOCAB, build_model, forward_flops  # noqa: F401 (forward_flops: re-exported)

WORKLOADS = ["fwd_b1", "fwd_b32", "fwd_bwd_b32"]


def measure(args, body):
    """`warmup` untimed runs, then the timed runs; `body` returns a list of phase times in seconds."""
    last = 0.0
    for _ in range(args.warmup):
        last = sum(body())
    if args.warmup == 0 and args.repeats is None:
        last = sum(body())  # one probe run to size the repeats
    runs = args.repeats if args.repeats is not None else min(50, max(3, int(args.budget / max(last, 1e-6))))
    return [body() for _ in range(runs)]


def result(model, workload, batch, seq_len, runs, flops_per_run, phases=None):
    med = statistics.median(runs)
    r = {
        "impl": "pytorch",
        "model": model,
        "workload": workload,
        "batch": batch,
        "seq_len": seq_len,
        "median_ms": round(med * 1e3, 3),
        "min_ms": round(min(runs) * 1e3, 3),
        "seq_per_s": round(batch / med, 3),
        "gflops": round(flops_per_run / med / 1e9, 2),
        "repeats": len(runs),
    }
    for k, v in sorted((phases or {}).items()):
        r[k] = round(statistics.median(v) * 1e3, 3)
    return r


def row(r) -> str:
    return (
        f"{r['model']:<11}{r['workload']:<13}{r['median_ms']:>11.2f}{r['min_ms']:>11.2f}"
        f"{r['seq_per_s']:>10.2f}{r['gflops']:>9.1f}{r['repeats']:>6}"
    )


def report(r) -> None:
    extra = f"   (fwd {r['fwd_ms']:.1f} ms, bwd {r['bwd_ms']:.1f} ms)" if "fwd_ms" in r else ""
    print("[peer-bench] " + row(r) + extra, file=sys.stderr, flush=True)


def run_model(name: str, args) -> list:
    T, B = 128, 32
    model, flops_seq = build_model(name)
    g = torch.Generator().manual_seed(1234)
    ids1 = torch.randint(1, VOCAB, (1, T), generator=g)
    ids32 = torch.randint(1, VOCAB, (B, T), generator=g)
    labels = torch.randint(0, 2, (B,), generator=g)

    def inputs(ids):
        return dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))

    in1, in32 = inputs(ids1), inputs(ids32)
    sink = []

    def forward(inp):
        def body():
            with torch.inference_mode():
                t0 = time.perf_counter()
                logits = model(**inp).logits
                t1 = time.perf_counter()
            sink.append(float(logits[0, 0]))
            return [t1 - t0]

        return body

    out = []
    model.eval()
    if "fwd_b1" in args.workloads:
        runs = measure(args, forward(in1))
        out.append(result(name, "fwd_b1", 1, T, [r[0] for r in runs], flops_seq))
        report(out[-1])
    if f"fwd_b{B}" in args.workloads:
        runs = measure(args, forward(in32))
        out.append(result(name, f"fwd_b{B}", B, T, [r[0] for r in runs], flops_seq * B))
        report(out[-1])
    if f"fwd_bwd_b{B}" not in args.workloads:
        return out

    model.train()

    def train_step():
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model(**in32, labels=labels).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        sink.append(float(loss.detach()))
        return [t1 - t0, t2 - t1]

    runs = measure(args, train_step)
    model.zero_grad(set_to_none=True)
    out.append(
        result(name, f"fwd_bwd_b{B}", B, T, [a + b for a, b in runs], 3 * flops_seq * B,
               {"fwd_ms": [a for a, _ in runs], "bwd_ms": [b for _, b in runs]})
    )
    report(out[-1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated shapes (default: all three)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated workloads (default: all three)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per workload (default: fit --budget)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before each workload (default 2)")
    p.add_argument("--budget", type=float, default=10.0, help="seconds of timed runs per workload (default 10)")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            p.error(f"unknown model '{m}' (known: {', '.join(MODELS)})")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload '{w}' (known: {', '.join(WORKLOADS)})")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")

    torch.set_num_threads(2)
    print(f"[peer-bench] torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    results = []
    for m in models:
        results += run_model(m, args)
    print(f"{'model':<11}{'workload':<13}{'median ms':>11}{'min ms':>11}{'seq/s':>10}{'GFLOP/s':>9}{'runs':>6}")
    for r in results:
        print(row(r))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
