#!/usr/bin/env python3
"""The paper's MNLI recipe on BERT-base under `mpirun -np N cofi prune`, on paper: time per step and days at
8, 32 and 128 ranks over 10, 25 and 100 Gb/s, from compute measured on this machine and a ring all-reduce model.

    scripts/mpi_projection.py BENCH.jsonl [--latency-us 20] [--bucket-mb 25]

BENCH.jsonl: `cofi-bench --models bert-base,cofi-s95 --workloads fwd_b1,fwd_b32,fwd_bwd_b32` JSON lines (one rank =
one machine like this one, with its threads). The model of one step on N ranks (global batch 32, b = 32/N rows a
rank):
  compute(b) = teacher forward(b) + student forward(b) + student backward(b), each interpolated linearly in b
               between the measured B = 1 and B = 32 runs (backward = fwd_bwd - fwd at B = 32, scaled by b / 32);
  all-reduce of S bytes (the gradients cofi reduces: everything but the embeddings, the layer transformation,
               log alpha, lambda) in a ring: 2 (N-1)/N * S / bandwidth + 2 (N-1) * latency per bucket;
  overlap:     the buckets start during the backward pass, so a step takes
               forward + max(backward, all-reduce) + the last bucket's all-reduce (which can only start at the end).
Recipe (cofi-spec section 6, large task): 392,702 MNLI examples, batch 32 -> 12,272 steps an epoch; 20 pruning epochs
(1 of them pre-pruning distillation) at the full model's cost, then 20 fine-tuning epochs of the compact model
(CoFi-s95 shape) still distilled from the full teacher. Beyond 32 ranks a global batch of 32 leaves ranks idle; the
128-rank rows use a global batch of 128 (1 row a rank, 4x fewer steps: a different recipe, marked).
"""
import json
import sys

args = sys.argv[1:]
if not args:
    sys.exit(__doc__)
latency = 20e-6
bucket = 25 * 2**20
if "--latency-us" in args:
    latency = float(args[args.index("--latency-us") + 1]) * 1e-6
if "--bucket-mb" in args:
    bucket = float(args[args.index("--bucket-mb") + 1]) * 2**20

ms = {}
for line in open(args[0]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("seq_len") in (None, 128):
            ms[(r["model"], r["workload"])] = r["median_ms"] / 1e3

def phases(model, b):
    f1, f32, fb32 = ms[(model, "fwd_b1")], ms[(model, "fwd_b32")], ms[(model, "fwd_bwd_b32")]
    fwd = f1 + (f32 - f1) * (b - 1) / 31
    bwd = (fb32 - f32) * b / 32
    return fwd, bwd

# Gradients reduced in the pruning stage of BERT-base: the encoder (12 x 7,087,872), pooler (768*768+768), a 3-class
# head (768*3+3), the layer transformation (768*768+768) and the gates (12 heads x 12 layers, 12 MHA, 12 FFN,
# 12 x 3072 units, 768 hidden) plus 2 multipliers.
floats = 12 * 7_087_872 + 2 * (768 * 768 + 768) + 768 * 3 + 3 + (144 + 12 + 12 + 12 * 3072 + 768) + 2
S = 4 * floats
# Fine-tuning the compact model (CoFi-s95: about 5 % of the encoder left) reduces far fewer: its encoder, the pooler,
# the head and the layer transformation (its columns cut to the kept hidden dimensions; counted whole here).
floats_compact = round(0.05 * 12 * 7_087_872) + 2 * (768 * 768 + 768) + 768 * 3 + 3
S_compact = 4 * floats_compact

def ring(bytes_, n, gbps):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * bytes_ / (gbps * 1e9 / 8) + 2 * (n - 1) * latency

def step(n, gbps, student="bert-base", batch=32, size=S):
    b = batch / n
    tf, _ = phases("bert-base", b)  # the teacher's forward pass, without gradients
    sf, sb = phases(student, b)
    nb = max(1, -(-size // bucket))
    comm = sum(ring(min(bucket, size - i * bucket), n, gbps) for i in range(nb)) if n > 1 else 0.0
    last = ring(min(bucket, size), n, gbps) if n > 1 else 0.0
    return tf + sf + max(sb, comm) + last, comm, tf + sf + sb

print(f"gradients a pruning step: {S / 1e6:.0f} MB ({floats:,} floats) in buckets of {bucket / 2**20:.0f} MB; "
      f"fine-tuning the compact model: {S_compact / 1e6:.0f} MB; latency {latency * 1e6:.0f} us per ring hop")
print()
print("| ranks | link | global batch | pruning step (s) | its all-reduce (s) | its compute (s) | fine-tuning step (s) | days |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, links in ((1, (0,)), (8, (10, 25, 100)), (32, (10, 25, 100)), (128, (10, 25, 100))):
    for gbps in links:
        batch = 32 if n <= 32 else n
        t, comm, compute = step(n, gbps or 1, batch=batch)
        tf, _, _ = step(n, gbps or 1, student="cofi-s95", batch=batch, size=S_compact)
        steps = -(-392_702 // batch)
        days = 20 * steps * (t + tf) / 86400
        mark = "" if batch == 32 else " (not the paper's)"
        link = f"{gbps} Gb/s" if gbps else "–"
        print(f"| {n} | {link} | {batch}{mark} | {t:.3f} | {comm:.3f} | {compute:.3f} | {tf:.3f} | {days:.2f} |")
