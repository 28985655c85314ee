#!/usr/bin/env bash
# Side-by-side speed of cofi-bench (Swift) and the PyTorch peer harness on the same machine, in one go.
#
#   scripts/bench.sh [--models bert-base,minilm-l6,cofi-s95] [--workloads fwd_b1,fwd_b32,fwd_bwd_b32]
#                    [--repeats N] [--warmup N] [--budget S]
#
# 1. builds `swift build -c release --product cofi-bench` and runs it with the given flags;
# 2. runs `scripts/peer_bench.py` with the same flags, if the virtual environment $VENV (default .venv-ref,
#    made from scripts/reference/requirements.txt) exists;
# 3. prints both tables and a joined one with the speed ratio: PyTorch time / our time (for latencies) and our
#    seq/s / PyTorch seq/s (for throughputs) — the same number; > 1 means we are faster.
# Raw JSON lines are kept in $OUT_DIR (default .build/bench): swift.jsonl, pytorch.jsonl.
# Keep the machine otherwise idle while it runs: both sides use 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-ref}"
OUT_DIR="${OUT_DIR:-.build/bench}"
mkdir -p "$OUT_DIR"
SWIFT_OUT="$OUT_DIR/swift.jsonl"
TORCH_OUT="$OUT_DIR/pytorch.jsonl"
rm -f "$SWIFT_OUT" "$TORCH_OUT"

echo "== building cofi-bench (release)" >&2
swift build -c release --product cofi-bench >&2
BIN="$(swift build -c release --show-bin-path)/cofi-bench"

echo "== cofi-bench $*" >&2
"$BIN" "$@" | tee "$OUT_DIR/swift.txt"
grep '^{' "$OUT_DIR/swift.txt" > "$SWIFT_OUT"

if [[ -x "$VENV/bin/python" ]]; then
    echo "== PyTorch peer harness ($VENV) $*" >&2
    "$VENV/bin/python" scripts/peer_bench.py "$@" | tee "$OUT_DIR/pytorch.txt"
    grep '^{' "$OUT_DIR/pytorch.txt" > "$TORCH_OUT"
else
    echo "== no virtual environment at $VENV (set VENV=…; see scripts/reference/requirements.txt): Swift only" >&2
    : > "$TORCH_OUT"
fi

PY="$(command -v python3 || true)"
[[ -n "$PY" ]] || PY="$VENV/bin/python"
"$PY" - "$SWIFT_OUT" "$TORCH_OUT" <<'EOF'
import json, sys

def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows[(r["model"], r["workload"])] = r
    return rows

ours, peer = load(sys.argv[1]), load(sys.argv[2])
print()
print("Side by side (T = 128; ratio = PyTorch time / our time; > 1: we are faster)")
head = f"{'model':<11}{'workload':<13}{'ours ms':>10}{'torch ms':>10}{'ours seq/s':>12}{'torch seq/s':>13}" \
       f"{'ours GF/s':>11}{'torch GF/s':>12}{'ratio':>8}"
print(head)
print("-" * len(head))
for key, o in ours.items():
    p = peer.get(key)
    line = f"{o['model']:<11}{o['workload']:<13}{o['median_ms']:>10.2f}"
    if p is None:
        line += f"{'—':>10}{o['seq_per_s']:>12.2f}{'—':>13}{o['gflops']:>11.1f}{'—':>12}{'—':>8}"
    else:
        ratio = p["median_ms"] / o["median_ms"]
        line += (f"{p['median_ms']:>10.2f}{o['seq_per_s']:>12.2f}{p['seq_per_s']:>13.2f}"
                 f"{o['gflops']:>11.1f}{p['gflops']:>12.1f}{ratio:>8.2f}")
    print(line)
phases = [(k, o, peer.get(k)) for k, o in ours.items() if "fwd_ms" in o]
if phases:
    print()
    print("Forward + backward phases (ms)")
    print(f"{'model':<11}{'ours fwd':>10}{'ours bwd':>10}{'torch fwd':>11}{'torch bwd':>11}")
    for (m, _), o, p in phases:
        pf = f"{p['fwd_ms']:>11.1f}{p['bwd_ms']:>11.1f}" if p else f"{'—':>11}{'—':>11}"
        print(f"{m:<11}{o['fwd_ms']:>10.1f}{o['bwd_ms']:>10.1f}" + pf)
EOF
