#!/usr/bin/env bash
# Inference speed of `cofi bench` (the native runtime) next to PyTorch and ONNX Runtime on the same models, the same
# workloads and 2 threads each, run one after the other on this machine, in one go:
#
#   scripts/runtime_bench.sh --model DIR [--baseline DIR] [--budget S] [--warmup N] [--repeats N]
#                            [--max-length 64] [--no-eval] [--named SHAPE ...] [--peer-model NAME_OR_DIR ...]
#   e.g. scripts/runtime_bench.sh --model runs/prune90/final --baseline runs/teacher/best
#
# 1. makes the virtual environment $VENV (default .venv-peer) from scripts/requirements-peer.txt (torch 2.13.0+cpu,
#    transformers, onnxruntime, onnx, onnxscript, pinned, from PyPI) unless it already has exactly those pins;
# 2. builds `swift build -c release --product cofi` (SKIP_BUILD=1: use the binary as it is; COFI=PATH: another
#    binary) and stops with a clear message if that binary has no `bench` subcommand;
# 3. checks each model directory's dev accuracy with `cofi eval --task movie-snippets --max-length L --json`
#    (--no-eval skips it), to set next to the accuracy the peers get from their own timed dev passes;
# 4. runs `cofi bench --model DIR [--baseline DIR] --task movie-snippets --max-length L --threads 2 --json …`;
# 5. runs `scripts/peer_runtime.py` on the same directories (and any --peer-model: the named random-init shapes
#    bert-base, minilm-l6, cofi-s95 of ../shared/BASELINES.md, measured by the peers only), PyTorch and ONNX Runtime
#    each in its own process, and ONNX Runtime once more on the file `cofi export` writes for each model directory
#    (column ORT(cx): what a user deploys from cofi);
#    --named SHAPE (bert-base, minilm-l6, cofi-s95) writes that random-init shape once as a model directory
#    ($OUT_DIR/named/SHAPE, by scripts/peer_models.py) and measures it on every side — cofi bench included — from
#    the same weights;
# 6. prints one side-by-side table: p50 ms per call (latency) or seq/s (throughput) for cofi, PyTorch and ONNX
#    Runtime, with ratios = peer time / cofi time (p50 for latencies, seq/s for throughputs; > 1: cofi is faster),
#    peak RSS, the dev-accuracy checks, the date, machine, load averages and versions.
#
# Workloads (the same on every side): latency_b1_t32/t128/t384 (batch 1, exactly T real tokens), throughput_b32_t128,
# dev_throughput (the movie-snippets dev set, 1,000 texts, truncated at L = 64 tokens, batches of 32 in file order;
# cofi packs each batch without padding, the peers pad it to its longest sequence as HF pipelines do; tokenization
# is not timed on either side). See `cofi help bench` and the top of scripts/peer_runtime.py.
#
# Raw results stay in $OUT_DIR (default .build/runtime-bench): cofi.jsonl, peer.jsonl, eval-*.json, table.txt.
# Keep the machine otherwise idle while it runs (check `uptime`): every side uses 2 threads, the machine's cores,
# and PyTorch in particular slows down many times over when the cores are shared.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${VENV:-$ROOT/.venv-peer}"
OUT_DIR="${OUT_DIR:-$ROOT/.build/runtime-bench}"
REQS="$ROOT/scripts/requirements-peer.txt"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "error: $*" >&2; exit 1; }

ARGS_TEXT="$*"
MODEL="" BASELINE="" BUDGET=5 WARMUP=2 REPEATS="" MAXLEN=64 EVAL=1 PEER_MODELS=() NAMED=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="${2:?--model needs a directory}"; shift 2 ;;
        --baseline) BASELINE="${2:?--baseline needs a directory}"; shift 2 ;;
        --budget) BUDGET="${2:?}"; shift 2 ;;
        --warmup) WARMUP="${2:?}"; shift 2 ;;
        --repeats) REPEATS="${2:?}"; shift 2 ;;
        --max-length) MAXLEN="${2:?}"; shift 2 ;;
        --no-eval) EVAL=0; shift ;;
        --peer-model) PEER_MODELS+=("${2:?}"); shift 2 ;;
        --named) NAMED+=("${2:?--named needs bert-base, minilm-l6 or cofi-s95}"); shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage 2 ;;
    esac
done
[[ -n "$MODEL" ]] || die "give --model DIR (e.g. a cofi prune output's final/)"
for d in "$MODEL" ${BASELINE:+"$BASELINE"}; do
    [[ -f "$d/config.json" && -f "$d/model.safetensors" ]] || die "$d: not a model directory (config.json + model.safetensors)"
done
MODEL="$(cd "$MODEL" && pwd)"
[[ -z "$BASELINE" ]] || BASELINE="$(cd "$BASELINE" && pwd)"
DEV="$ROOT/.assets/movie-snippets/dev.tsv"
[[ -f "$DEV" ]] || die "$DEV: no such file (run cofi fetch, then any cofi command with --task movie-snippets builds it)"

# The names cofi bench gives directories: the last component, with the parent for best/ final/ checkpoint/ pruned/.
display_name() {
    local base parent
    base="$(basename "$1")"; parent="$(basename "$(dirname "$1")")"
    case "$base" in best|final|checkpoint|pruned) echo "$parent/$base" ;; *) echo "$base" ;; esac
}
NAME="$(display_name "$MODEL")"
BASE_NAME=""
if [[ -n "$BASELINE" ]]; then
    BASE_NAME="$(display_name "$BASELINE")"
    [[ "$BASE_NAME" != "$NAME" ]] || BASE_NAME="baseline:$BASE_NAME"
fi
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/cofi.jsonl "$OUT_DIR"/cofi-named-*.jsonl "$OUT_DIR"/peer.jsonl "$OUT_DIR"/eval-*.json "$OUT_DIR"/table.txt
load() { cut -d' ' -f1-3 /proc/loadavg; }

# 1. The peer environment.
STAMP="$VENV/.requirements-peer.sha256"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    echo "== making the peer environment $VENV from scripts/requirements-peer.txt" >&2
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r "$REQS" >&2
    echo "$WANT" > "$STAMP"
fi
PY="$VENV/bin/python"

# 2. The cofi binary.
if [[ -n "${COFI:-}" ]]; then
    BIN="$COFI"
elif [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    BIN="$(swift build -c release --show-bin-path)/cofi"
else
    echo "== building cofi (release)" >&2
    swift build -c release --product cofi >&2
    BIN="$(swift build -c release --show-bin-path)/cofi"
fi
[[ -x "$BIN" ]] || die "$BIN: no cofi binary (build it with swift build -c release --product cofi)"
if ! "$BIN" bench --help 2>&1 | grep -q -- '--baseline'; then
    die "$BIN has no 'bench' subcommand (cofi bench, issue 6 item 3): update the working tree and rebuild (swift build -c release --product cofi)"
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || COMMIT="$COMMIT+local changes"

# 3. Dev accuracy as cofi computes it.
if [[ "$EVAL" == 1 ]]; then
    for pair in "model:$MODEL" ${BASELINE:+"baseline:$BASELINE"}; do
        role="${pair%%:*}"; dir="${pair#*:}"
        echo "== cofi eval $dir --task movie-snippets --max-length $MAXLEN (load $(load))" >&2
        "$BIN" eval --model "$dir" --task movie-snippets --max-length "$MAXLEN" --json | grep '^{' > "$OUT_DIR/eval-$role.json"
    done
fi

# 4. cofi bench.
COMMON=(--warmup "$WARMUP" --budget "$BUDGET" ${REPEATS:+--repeats "$REPEATS"})
LOAD_COFI="$(load)"
echo "== cofi bench (load $LOAD_COFI)" >&2
BENCH_ARGS=(--model "$MODEL" --name "$NAME")
[[ -z "$BASELINE" ]] || BENCH_ARGS+=(--baseline "$BASELINE" --baseline-name "$BASE_NAME")
"$BIN" bench "${BENCH_ARGS[@]}" --task movie-snippets --max-length "$MAXLEN" --threads 2 "${COMMON[@]}" --json "$OUT_DIR/cofi.jsonl" \
    | tee "$OUT_DIR/cofi.txt"

# 4b. The named shapes, written once as model directories and measured by cofi bench from the same weights as the peers.
NAMED_ARGS=()
for shape in "${NAMED[@]}"; do
    dir="$OUT_DIR/named/$shape"
    if [[ ! -f "$dir/model.safetensors" ]]; then
        echo "== writing the random-init shape $shape to $dir (scripts/peer_models.py)" >&2
        "$PY" scripts/peer_models.py "$shape" "$dir" --tokenizer "$ROOT/.assets/all-MiniLM-L6-v2" >&2
    fi
    echo "== cofi bench $shape (load $(load))" >&2
    "$BIN" bench --model "$dir" --name "$shape" --task movie-snippets --max-length "$MAXLEN" --threads 2 "${COMMON[@]}" \
        --json "$OUT_DIR/cofi-named-$shape.jsonl" | tee -a "$OUT_DIR/cofi.txt"
    NAMED_ARGS+=(--model "$shape=$dir")
done

# 5. The peers.
LOAD_PEER="$(load)"
echo "== PyTorch and ONNX Runtime (scripts/peer_runtime.py, load $LOAD_PEER)" >&2
PEER_ARGS=(--model "$NAME=$MODEL")
[[ -z "$BASELINE" ]] || PEER_ARGS+=(--model "$BASE_NAME=$BASELINE")
PEER_ARGS+=("${NAMED_ARGS[@]}")
for m in "${PEER_MODELS[@]}"; do PEER_ARGS+=(--model "$m"); done
"$PY" scripts/peer_runtime.py "${PEER_ARGS[@]}" --dev "$DEV" --max-length "$MAXLEN" "${COMMON[@]}" --cofi "$BIN" \
    --json "$OUT_DIR/peer.jsonl" | tee "$OUT_DIR/peer.txt"

# 6. The joined table.
"$PY" - "$OUT_DIR" "$NAME" "$BASE_NAME" "$COMMIT" "$LOAD_COFI" "$LOAD_PEER" "$(load)" "$ARGS_TEXT" <<'EOF' | tee "$OUT_DIR/table.txt"
import glob, json, os, sys

out_dir, name, base_name, commit, load_cofi, load_peer, load_end, argv = sys.argv[1:]


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


rows, rss, meta, checks, speedup = {}, {}, {}, {}, None
cofi_files = [os.path.join(out_dir, "cofi.jsonl")] + sorted(glob.glob(os.path.join(out_dir, "cofi-named-*.jsonl")))
for r in [r for p in cofi_files for r in lines(p)] + lines(os.path.join(out_dir, "peer.jsonl")):
    if "workload" in r:
        rows[(r["model"], r["workload"], r["impl"])] = r
    elif "peak_rss_mib" in r:
        rss[(r["model"], r["impl"])] = r["peak_rss_mib"]
    elif "meta" in r:
        meta = r["meta"]
    elif "check" in r:
        checks[r["check"]["model"]] = r["check"]
    elif "speedup" in r:
        speedup = r["speedup"]
evals = {}
for path in glob.glob(os.path.join(out_dir, "eval-*.json")):
    for e in lines(path):
        evals[e["model"]] = e

IMPLS = ["cofi", "pytorch", "onnxruntime", "ort-cofi"]
WORKLOADS = ["latency_b1_t32", "latency_b1_t128", "latency_b1_t384", "throughput_b32_t128", "dev_throughput"]
models = list(dict.fromkeys(m for (m, _, _) in rows))
# Only cofi's models first, in its order, then the peers' extra shapes.
models = sorted(models, key=lambda m: (not any((m, w, "cofi") in rows for w in WORKLOADS), models.index(m)))


def value(r, w):
    """The number compared: p50 ms for latencies, seq/s for throughputs."""
    if r is None:
        return None
    return r["p50_ms"] if w.startswith("latency") else r["seq_per_s"]


def ratio(c, p, w):
    """Peer time / cofi time: p50 ratio for latencies, seq/s ratio for throughputs (> 1: cofi is faster)."""
    if c is None or p is None:
        return None
    return p["p50_ms"] / c["p50_ms"] if w.startswith("latency") else c["seq_per_s"] / p["seq_per_s"]


def f(x, w=10, d=2):
    return f"{'—':>{w}}" if x is None else f"{x:>{w}.{d}f}"


v = meta.get("versions", {})
print()
print(f"cofi bench (commit {commit}) next to PyTorch {v.get('torch')} (eager, transformers {v.get('transformers')}) "
      f"and ONNX Runtime {v.get('onnxruntime')} (onnx {v.get('onnx')}, onnxscript {v.get('onnxscript')}), 2 threads each")
print(f"{meta.get('date', '?')}; {meta.get('machine', '?')}, {meta.get('cores', '?')} cores ({meta.get('cpu_flags', '?')}); "
      f"load average (1/5/15 min) before cofi bench {load_cofi}, before the peers {load_peer}, at the end {load_end}")
print("latency: p50 ms per call; throughput: sequences/s; ratio = peer time / cofi time (> 1: cofi is faster); "
      "ORT(cx): ONNX Runtime on the file `cofi export` writes (model directories only)")
head = (f"{'model':<22}{'workload':<21}{'T':>5}{'cofi':>10}{'PyTorch':>10}{'ORT':>10}{'ORT(cx)':>10}{'torch/cofi':>12}"
        f"{'ORT/cofi':>10}{'ORTcx/cofi':>12}{'p99 ms: cofi':>14}{'PyTorch':>9}{'ORT':>9}{'ORT(cx)':>9}")
print(head)
print("-" * len(head))
for m in models:
    for w in WORKLOADS:
        c, t, o, x = (rows.get((m, w, i)) for i in IMPLS)
        if c is None and t is None and o is None and x is None:
            continue
        any_r = c or t or o or x
        T = "var" if any_r["seq_len"] is None else str(any_r["seq_len"])
        unit = "ms" if w.startswith("latency") else "seq/s"
        print(f"{m:<22}{w:<21}{T:>5}{f(value(c, w))}{f(value(t, w))}{f(value(o, w))}{f(value(x, w))}{f(ratio(c, t, w), 12)}"
              f"{f(ratio(c, o, w))}{f(ratio(c, x, w), 12)}{f(c and c['p99_ms'], 14)}{f(t and t['p99_ms'], 9)}"
              f"{f(o and o['p99_ms'], 9)}{f(x and x['p99_ms'], 9)}  {unit}")
    r = [rss.get((m, i)) for i in IMPLS]
    if any(x is not None for x in r):
        print(f"{m:<22}{'peak RSS MiB':<21}{'':>5}{f(r[0], d=0)}{f(r[1], d=0)}{f(r[2], d=0)}{f(r[3], d=0)}")

if base_name:
    print()
    print(f"speedup of {name} over {base_name} (baseline time / model time) within each implementation:")
    for w in WORKLOADS:
        parts = []
        for i in IMPLS:
            a, b = rows.get((name, w, i)), rows.get((base_name, w, i))
            s = None if a is None or b is None else ratio(a, b, w)
            parts.append(f"{i} {f(s, 1)}x")
        print(f"  {w:<21}" + ", ".join(parts))

print()
for m in models:
    c = checks.get(m, {})
    acc = c.get("dev_accuracy", {})
    e = next((e for p, e in evals.items() if os.path.abspath(p) == os.path.abspath(c.get("spec", "") or "/nonexistent")), None)
    parts = [f"cofi eval {e['value']:.4f}"] if e else []
    parts += [f"{k} {x:.4f}" for k, x in acc.items()]
    diff = c.get("ort_max_abs_diff")
    line = f"check {m} ({c.get('kind', '?')}): dev accuracy " + ", ".join(parts)
    if diff is not None:
        line += f"; ORT logits vs PyTorch max abs diff {diff:.1e}"
    if c.get("cofi_export_max_abs_diff") is not None:
        line += f"; ORT on cofi export vs PyTorch {c['cofi_export_max_abs_diff']:.1e}"
    if e and acc and any(abs(x - e["value"]) > 1e-9 for x in acc.values()):
        line += "  <-- MISMATCH with cofi eval"
    print(line)
busy = [float(x.split()[0]) for x in (load_cofi, load_peer, load_end)]
if max(busy) >= 1.0:
    print(f"WARNING: the machine was not idle (1-minute load average up to {max(busy):.2f} on {meta.get('cores', '?')} "
          "cores): every side runs 2 threads, so times are inflated and ratios unreliable — PyTorch's most of all. "
          "Rerun on an idle machine for numbers to publish.")
print(f"command: scripts/runtime_bench.sh {argv}")
EOF
echo "raw results in $OUT_DIR" >&2
