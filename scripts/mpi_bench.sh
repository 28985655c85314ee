#!/usr/bin/env bash
# Data-parallel training on the real all-MiniLM-L6-v2 (issue 14), in one run on this machine:
#   1 process × 1 thread  ·  mpirun -np 2, 1 thread per rank  ·  1 process × 2 threads
# each doing 50 fine-tuning steps (cofi finetune) and a short cofi prune (50 pruning steps, then 50 steps of
# fine-tuning the compact model), same arguments, global batch 32, max length 64, on the first 1,600 examples of
# movie-snippets (50 batches) and its whole dev set. Then compares every step's loss (relative difference), the
# dev metrics, the exact sparsity and kept structure, and reports examples/s of the training steps and the
# gradient all-reduce bytes and seconds per step (metrics.jsonl of each run).
#
#   scripts/mpi_bench.sh [TEACHER]   TEACHER: a teacher fine-tuned on movie-snippets (default: the demo's,
#                                    runs/demo/teacher/best; cofi demo makes it)
# Needs Open MPI (libopenmpi-dev, openmpi-bin); builds cofi with `--traits MPI` in release into .build/mpi.
# Keep the machine otherwise idle. Output in $OUT_DIR (default runs/mpi-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT_DIR:-runs/mpi-bench}"
TEACHER="${1:-runs/demo/teacher/best}"
[ -f "$TEACHER/model.safetensors" ] || { echo "no teacher at $TEACHER (run cofi demo, or pass a directory)" >&2; exit 1; }
swift build -c release --traits MPI --build-path .build/mpi --product cofi >&2
COFI=.build/mpi/release/cofi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)
swift run -c release cofi fetch >&2
# SKIP_FINETUNE=1 keeps the fine-tuning runs of an earlier call and redoes the pruning ones.
if [ -z "${SKIP_FINETUNE:-}" ]; then rm -rf "$OUT"; else rm -rf "$OUT"/pr-*; fi
mkdir -p "$OUT/data"
head -1601 .assets/movie-snippets/train.tsv > "$OUT/data/train.tsv"
cp .assets/movie-snippets/dev.tsv "$OUT/data/dev.tsv"
DATA=(--train "$OUT/data/train.tsv" --dev "$OUT/data/dev.tsv" --text-column sentence --max-length 64)
FT=(finetune --model .assets/all-MiniLM-L6-v2 "${DATA[@]}" --epochs 1 --logging-steps 1 --eval-steps 25)
PR=(prune --teacher "$TEACHER" --student "$TEACHER" "${DATA[@]}" --target-sparsity 0.25 --sparsity-epsilon 0.1
    --checkpoint-gate expected
    --epochs 1 --pre-pruning-epochs 0 --warmup-steps 40 --budget-aware --finetune-epochs 1 --eval-steps 5
    --finetune-eval-steps 25 --logging-steps 1)

run() {  # name, ranks (0: no mpirun), threads, command…
    local name=$1 ranks=$2 threads=$3; shift 3
    local start; start=$(date +%s%N)
    set +e
    if [ "$ranks" = 0 ]; then "$COFI" "$@" --threads "$threads" --out "$OUT/$name" > "$OUT/$name.out" 2> "$OUT/$name.err"
    else "${MPIRUN[@]}" -np "$ranks" "$COFI" "$@" --threads "$threads" --out "$OUT/$name" > "$OUT/$name.out" 2> "$OUT/$name.err"; fi
    local status=$?
    set -e
    echo "$name: $(( ($(date +%s%N) - start) / 1000000 )) ms wall, exit $status" >&2
}
grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' > "$OUT/cpu.txt"
if [ -z "${SKIP_FINETUNE:-}" ]; then run ft-1x1 0 1 "${FT[@]}"; run ft-2x1 2 1 "${FT[@]}"; run ft-1x2 0 2 "${FT[@]}"; fi
run pr-1x1 0 1 "${PR[@]}"; run pr-2x1 2 1 "${PR[@]}"; run pr-1x2 0 2 "${PR[@]}"

python3 - "$OUT" <<'EOF'
import json, sys, os
out = sys.argv[1]
def records(path):
    train, evals = {}, {}
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == "train": train[r["step"]] = r
        if r.get("event") == "eval": evals[r["step"]] = r
    return train, evals
def compare(a, b, label):
    ta, ea = records(a); tb, eb = records(b)
    assert ta.keys() == tb.keys(), f"{label}: different steps"
    rel = max(abs(ta[s]["loss"] - tb[s]["loss"]) / max(abs(ta[s]["loss"]), 1e-12) for s in ta)
    dev = max(abs(ea[s]["value"] - eb[s]["value"]) for s in ea) if ea else 0.0
    print(f"{label}: {len(ta)} steps, max relative loss difference {rel:.2e}; max dev-metric difference {dev:.4f} "
          f"({len(ea)} evaluations: " + ", ".join(f"{ea[s]['value']:.4f}/{eb[s]['value']:.4f}" for s in sorted(ea)) + ")")
    return rel
def speed(path, skip=2):
    t, _ = records(path)
    steps = sorted(t)[skip:]
    secs = sum(t[s]["step_seconds"] for s in steps)
    ex = 32 * len(steps)
    comm = [t[s] for s in steps if "allreduce_seconds" in t[s]]
    c = ""
    if comm:
        c = (f"; all-reduce {comm[0]['allreduce_bytes_per_step']/1e6:.1f} MB/step in {comm[0]['allreduce_buckets']} buckets, "
             f"{1e3*sum(x['allreduce_seconds'] for x in comm)/len(comm):.1f} ms/step from first bucket to last, "
             f"{1e3*sum(x['exposed_communication_seconds'] for x in comm)/len(comm):.1f} ms/step after the backward pass; "
             f"step {1e3*secs/len(steps):.0f} ms")
    return ex / secs, c
print("processor:", open(f"{out}/cpu.txt").read().strip())
compare(f"{out}/ft-1x1/metrics.jsonl", f"{out}/ft-2x1/metrics.jsonl", "finetune 1x1 vs 2 ranks")
for stage in ["prune", "finetune"]:
    compare(f"{out}/pr-1x1/{stage}/metrics.jsonl", f"{out}/pr-2x1/{stage}/metrics.jsonl", f"prune/{stage} 1x1 vs 2 ranks")
a = json.load(open(f"{out}/pr-1x1/summary.json")); b = json.load(open(f"{out}/pr-2x1/summary.json"))
for k in ["exactSparsity", "hiddenSize", "layers", "prunedMetric", "finalMetric", "prunedStep"]:
    print(f"  {k}: 1 process {a.get(k)} | 2 ranks {b.get(k)}" + ("  (identical)" if a.get(k) == b.get(k) else ""))
for kind, base in [("finetune", "ft"), ("prune stage", "pr")]:
    sub = "" if base == "ft" else "prune/"
    r = {n: speed(f"{out}/{base}-{n}/{sub}metrics.jsonl") for n in ["1x1", "2x1", "1x2"]}
    print(f"{kind} examples/s (steps 3-50): 1x1 {r['1x1'][0]:.1f}, 2 ranks x 1 {r['2x1'][0]:.1f} "
          f"({r['2x1'][0]/r['1x1'][0]:.2f}x), 1x2 threads {r['1x2'][0]:.1f} ({r['1x2'][0]/r['1x1'][0]:.2f}x){r['2x1'][1]}")
EOF
