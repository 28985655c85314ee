#!/usr/bin/env python3
"""Inference peer harness for `cofi bench`: PyTorch and ONNX Runtime on the same models and workloads, 2 threads.

Needs the environment of `scripts/requirements-peer.txt` (torch 2.13.0+cpu, transformers, onnxruntime, onnx,
onnxscript, all from PyPI); `scripts/runtime_bench.sh` makes it and runs this next to `cofi bench`:

    python3 -m venv .venv-peer && .venv-peer/bin/pip install -r scripts/requirements-peer.txt
    .venv-peer/bin/python scripts/peer_runtime.py --model DIR_OR_NAME [--model ...] [--json FILE]
        [--impls pytorch,onnxruntime] [--workloads latency_b1_t32,...] [--repeats N] [--warmup 2] [--budget 5]
        [--dev .assets/movie-snippets/dev.tsv] [--max-length 64] [--tokenizer DIR] [--work-dir DIR]

Models (`--model`, repeatable; `NAME=SPEC` sets the name used in the output, otherwise it is derived from SPEC):
  a directory    config.json + model.safetensors (+ the tokenizer files): a fine-tuned dense BERT classifier or a
                 compact model from `cofi prune` (a `cofi` block in config.json), loaded at its own per-layer sizes
                 by scripts/peer_models.py; identity sublayers where nothing is left
  bert-base, minilm-l6, cofi-s95
                 the random-init shapes of ../shared/BASELINES.md (peer_models.py); their dev set is tokenized by
                 --tokenizer (default .assets/all-MiniLM-L6-v2, the same uncased 30,522-word vocabulary)

Implementations, each in its own child process (so peak RSS is that implementation's alone), 2 threads:
  pytorch        transformers BertForSequenceClassification (default attention implementation), eval mode,
                 `torch.inference_mode()`, `torch.set_num_threads(2)`
  onnxruntime    the same module exported by `torch.onnx.export` (dynamo exporter, dynamic batch and sequence
                 axes), CPUExecutionProvider, intra_op_num_threads 2, inter_op_num_threads 1, all graph
                 optimizations (ORT_ENABLE_ALL); the child imports onnxruntime and numpy only
  ort-cofi       ONNX Runtime, set up the same way, on the file `cofi export` writes for a model directory (needs
                 --cofi BIN; skipped for the named shapes and without --cofi): what a user deploys from cofi

Checks before any timing (the run stops if one fails):
  - ONNX Runtime's logits equal PyTorch's within 1e-4 (absolute) at B=1 T=32, B=1 T=384, B=32 T=128 and on the
    first padded dev batch, for both ONNX files (torch's export and cofi's);
  - for a model directory, each implementation's dev accuracy (from its own timed dev passes) is printed next to
    the other's; they must agree, and should equal what `cofi eval --model DIR --task movie-snippets
    --max-length 64` reports.

Workloads (the same as `cofi bench`):
  latency_b1_t32, latency_b1_t128, latency_b1_t384
                 batch 1, exactly T tokens (capped at the model's max positions, as cofi bench does), all real (attention mask all ones, segment 0): [CLS], ids drawn from a
                 generator seeded by the shape, [SEP]
  throughput_b32_t128
                 batch 32, T = 128, all real
  dev_throughput the --dev file (SST-2 format; movie-snippets: 1,000 texts), tokenized by the model's HF tokenizer
                 with truncation at --max-length (64), batches of 32 in file order, each padded to its longest
                 sequence (the usual HF-style padded pipeline). Tokenization is done once, before timing, and is
                 NOT timed: only the model calls are.
Timing follows `cofi bench` (Sources/cofi/Bench.swift): each call is timed by time.perf_counter. The call workloads
get --warmup untimed calls (default 2), then --repeats timed calls, or as many as fit in --budget seconds (default
5) judged from the last warm-up call, clamped to 5..1000. dev_throughput warms up on the first --warmup batches,
then times every batch call of whole passes over the dev set: --repeats passes, or as many as fit in --budget
judged from the first (at least one); its repeats count passes. p50/p90/p99 are percentiles of the per-call times
with linear interpolation (numpy's default); seq_per_s is the sequences of all timed calls over their total time.

Output: progress on stderr; a table on stdout; with --json FILE, JSON lines:
  {"meta": {date, machine (lscpu model name), cores, load averages at start and end, versions, settings}}
  {"check": {"model":..., "kind":..., "shape":..., "ort_max_abs_diff":..., "dev_accuracy": {impl: acc}}}
  {"impl":"pytorch"|"onnxruntime","model":NAME,"workload":W,"batch":B,"seq_len":T or null,
   "p50_ms":..,"p90_ms":..,"p99_ms":..,"seq_per_s":..,"repeats":N}
  {"impl":...,"model":NAME,"peak_rss_mib":...}   (ru_maxrss of that implementation's child process)
Keep the machine otherwise idle while it runs: both implementations use 2 threads, the machine's cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers builds everything from local files
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORKLOADS = ["latency_b1_t32", "latency_b1_t128", "latency_b1_t384", "throughput_b32_t128", "dev_throughput"]
IMPLS = ["pytorch", "onnxruntime", "ort-cofi"]
NAMED = ["bert-base", "minilm-l6", "cofi-s95"]
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
THREADS = 2
ORT_TOLERANCE = 1e-4
SEED = 1234


def log(msg: str) -> None:
    print(f"[peer-runtime] {msg}", file=sys.stderr, flush=True)


def workload_shape(w: str):
    """(batch, seq_len) of a workload; seq_len None for the dev set."""
    if w == "dev_throughput":
        return 32, None
    b, t = w.split("_")[1:]
    return int(b[1:]), int(t[1:])


def percentile(values: list, q: float) -> float:
    """The q-th percentile with linear interpolation between order statistics (numpy's default; as cofi bench)."""
    s = sorted(values)
    position = q / 100 * (len(s) - 1)
    lo = math.floor(position)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (position - lo)


def synthetic_inputs(batch: int, seq_len: int, vocab: int):
    """batch × seq_len ids from a generator seeded by the shape ([CLS] … [SEP] around random word ids), mask all
    ones, segment 0 — int64 numpy arrays."""
    import numpy as np

    rng = np.random.default_rng([SEED, batch, seq_len])
    ids = rng.integers(1000, vocab, size=(batch, seq_len), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def machine_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return "unknown"
    return ", ".join(x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if x in flags) or "none of avx2/fma/avx512"


# --------------------------------------------------------------------------------------------------------------
# Models


def parse_model_arg(arg: str):
    """`NAME=SPEC` or `SPEC` → (name, spec). A directory's default name is its last component, or the last two
    when the last is a generic checkpoint name (best, final, checkpoint, pruned), as cofi bench names them."""
    if "=" in arg and not os.path.exists(arg):
        name, spec = arg.split("=", 1)
        return name, spec
    if arg in NAMED:
        return arg, arg
    parts = os.path.normpath(os.path.abspath(arg)).split(os.sep)
    name = "/".join(parts[-2:]) if parts[-1] in ("best", "final", "checkpoint", "pruned") and len(parts) > 1 else parts[-1]
    return name, arg


def build_torch_model(spec: str):
    """(model in eval mode, shape dict, kind) for a named shape or a model directory."""
    import torch

    from peer_models import build_model, load_model_dir, shape_of

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars
    if spec in NAMED:
        model, _ = build_model(spec)
        return model.eval(), shape_of(spec), "random-init"
    model, shape = load_model_dir(spec)
    return model, shape, "compact" if shape.get("compact") else "dense"


def logits_only(model):
    """The model as a module (input_ids, attention_mask, token_type_ids) → logits (what is exported and timed)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    return LogitsOnly(model).eval()


def export_onnx(model, path: str) -> None:
    import torch

    wrapper = logits_only(model)
    example = synthetic_inputs(2, 16, model.config.vocab_size)
    args = tuple(torch.from_numpy(example[k]) for k in INPUT_NAMES)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    dynamic = {k: {0: batch, 1: seq} for k in INPUT_NAMES}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside the exporter and "axis name … will not be used"
        torch.onnx.export(wrapper, args, path, input_names=INPUT_NAMES, output_names=["logits"],
                          dynamic_shapes=dynamic, dynamo=True, optimize=True, verbose=False)


def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def read_dev(path: str):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from peer_finetune import read_sst2  # the same SST-2 reader as the fine-tuning peer

    return read_sst2(path)


def tokenize_dev(texts: list, tokenizer_dir: str, max_length: int, batch_size: int):
    """HF-style padded batches in file order: a list of {input_ids, attention_mask, token_type_ids} int64 arrays,
    each padded to its longest sequence."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    batches = []
    for s in range(0, len(texts), batch_size):
        enc = tok(texts[s : s + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="np")
        batches.append({k: enc[k].astype("int64") for k in INPUT_NAMES})
    return batches, type(tok).__name__


def prepare(name: str, spec: str, args, work_dir: str) -> dict:
    """Builds the model, exports and checks the ONNX file, tokenizes the dev set into an .npz for the children."""
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    model, shape, kind = build_torch_model(spec)
    if name in NAMED and spec not in NAMED:
        kind = "random-init"  # a named shape written as a directory (runtime_bench.sh --named)
    vocab = model.config.vocab_size
    log(f"{name}: {kind} {spec} — hidden {shape['hidden']}, heads {shape['heads']}, FFN {shape['ffn']} "
        f"({time.perf_counter() - t0:.1f} s)")
    safe = name.replace("/", "_")
    onnx_path = os.path.join(work_dir, f"{safe}.onnx")
    inputs_path = os.path.join(work_dir, f"{safe}.inputs.npz")

    tokenizer_dir = spec if os.path.isdir(spec) and os.path.isfile(os.path.join(spec, "vocab.txt")) else args.tokenizer
    texts, labels = read_dev(args.dev)
    batches, tok_class = tokenize_dev(texts, tokenizer_dir, args.max_length, 32)
    lengths = [int(b["attention_mask"].sum()) for b in batches]
    padded = [b["input_ids"].size for b in batches]
    log(f"{name}: dev {args.dev}: {len(texts)} texts, {len(batches)} batches of 32, {sum(lengths)} real / "
        f"{sum(padded)} padded tokens (tokenizer {tok_class} of {tokenizer_dir}, max length {args.max_length})")
    arrays = {"labels": np.asarray(labels, dtype=np.int64), "vocab": np.asarray(vocab),
              "max_positions": np.asarray(model.config.max_position_embeddings)}
    for i, b in enumerate(batches):
        for k in INPUT_NAMES:
            arrays[f"dev{i}_{k}"] = b[k]
    np.savez(inputs_path, **arrays)

    check = {"model": name, "spec": spec, "kind": kind, "shape": {k: shape[k] for k in ("hidden", "head_dim", "heads", "ffn")},
             "dev_texts": len(texts), "dev_real_tokens": sum(lengths), "dev_padded_tokens": sum(padded)}
    cofi_onnx = None
    if "ort-cofi" in args.impls and args.cofi and os.path.isdir(spec):
        cofi_onnx = os.path.join(work_dir, f"{safe}.cofi.onnx")
        t0 = time.perf_counter()
        subprocess.run([args.cofi, "export", "--model", spec, "--onnx", cofi_onnx], check=True, stdout=subprocess.DEVNULL)
        log(f"{name}: cofi export wrote {cofi_onnx} ({os.path.getsize(cofi_onnx) / 2**20:.1f} MiB, "
            f"{time.perf_counter() - t0:.1f} s)")
    exports = [(key, path) for key, path in (("ort", onnx_path), ("cofi_export", cofi_onnx))
               if path is not None and (key != "ort" or "onnxruntime" in args.impls)]
    if exports:
        longest = min(384, model.config.max_position_embeddings)
        cases = [synthetic_inputs(1, 32, vocab), synthetic_inputs(1, longest, vocab), synthetic_inputs(32, 128, vocab),
                 batches[0]]
        wrapper = logits_only(model)
        with torch.inference_mode():
            refs = [wrapper(*(torch.from_numpy(feed[k]) for k in INPUT_NAMES)).numpy() for feed in cases]
    for key, path in exports:
        if key == "ort":
            t0 = time.perf_counter()
            export_onnx(model, onnx_path)
            log(f"{name}: exported {onnx_path} ({os.path.getsize(onnx_path) / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s)")
        sess = ort_session(path)
        worst = float(np.max([np.abs(sess.run(["logits"], feed)[0] - ref).max() for feed, ref in zip(cases, refs)]))  # keeps a NaN
        check[f"{key}_max_abs_diff"] = worst
        what = "torch.onnx.export's" if key == "ort" else "cofi export's"
        if not worst <= ORT_TOLERANCE:
            sys.exit(f"error: {name}: ONNX Runtime's logits on {what} file differ from PyTorch's by {worst:.3g} (> {ORT_TOLERANCE})")
        log(f"{name}: ONNX Runtime logits on {what} file = PyTorch's (max abs diff {worst:.2e} ≤ {ORT_TOLERANCE})")
        del sess
    del model
    return {"name": name, "spec": spec, "onnx": onnx_path, "cofi_onnx": cofi_onnx, "inputs": inputs_path, "check": check}


# --------------------------------------------------------------------------------------------------------------
# Child: one implementation, one model, all workloads


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def time_calls(call, warmup: int, repeats, budget: float) -> list:
    """Seconds of each timed call: `warmup` untimed calls (at least one without --repeats, to size the run),
    then --repeats, or as many as fit in `budget` judged from the last warm-up call, 5..1000 (as cofi bench)."""
    last = 0.0
    for _ in range(max(warmup, 1 if repeats is None else 0)):
        last, _ = timed(call)
    n = repeats if repeats is not None else min(1000, max(5, int(budget / max(last, 1e-6))))
    return [timed(call)[0] for _ in range(n)]


def time_passes(calls: list, warmup: int, repeats, budget: float):
    """Seconds of every batch call of whole passes over `calls`, the number of passes and the last pass's outputs:
    warm-up on the first `warmup` batches, then --repeats passes, or as many as fit in `budget` judged from the
    first pass (at least one), as cofi bench does."""
    for c in calls[:warmup]:
        c()
    times, passes = [], 0
    while True:
        outs = []
        for c in calls:
            t, out = timed(c)
            times.append(t)
            outs.append(out)
        passes += 1
        if passes >= (repeats if repeats is not None else max(1, int(budget / sum(times)))):
            return times, passes, outs


def peak_rss_mib() -> float:
    """This process's peak resident set: VmHWM of /proc/self/status (reset by exec, unlike ru_maxrss, which a
    child inherits from the parent it was forked from), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / 2**20 if sys.platform == "darwin" else r / 1024, 1)


def child(args) -> None:
    import numpy as np

    data = np.load(args.inputs)
    vocab, max_positions = int(data["vocab"]), int(data["max_positions"])
    labels = data["labels"]
    n_dev = sum(1 for k in data.files if k.endswith("_input_ids"))
    dev = [{k: data[f"dev{i}_{k}"] for k in INPUT_NAMES} for i in range(n_dev)]

    if args.child == "pytorch":
        import torch

        torch.set_num_threads(THREADS)
        model, _, _ = build_torch_model(args.spec)
        wrapper = logits_only(model)

        def as_call(feed):
            tensors = [torch.from_numpy(feed[k]) for k in INPUT_NAMES]

            def call():
                with torch.inference_mode():
                    return wrapper(*tensors)

            return call

        to_numpy = lambda x: x.numpy()  # noqa: E731
        version = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    else:
        import onnxruntime as ort

        sess = ort_session(args.onnx)  # for ort-cofi, the parent passes cofi export's file here

        def as_call(feed):
            return lambda: sess.run(["logits"], feed)[0]

        to_numpy = lambda x: x  # noqa: E731
        version = f"onnxruntime {ort.__version__}, {THREADS} intra-op threads"
    log(f"{args.child} {args.name}: {version}; load average {os.getloadavg()[0]:.2f}")

    out = []
    for w in args.workloads:
        batch, seq_len = workload_shape(w)
        if seq_len is not None:
            seq_len = min(seq_len, max_positions)  # as cofi bench: T capped at the model's max positions
        if w == "dev_throughput":
            calls = [as_call(b) for b in dev]
            times, repeats, outs = time_passes(calls, args.warmup, args.repeats, args.budget)
            preds = np.concatenate([to_numpy(x).argmax(-1) for x in outs])
            acc = float((preds == labels).mean())
            out.append({"check": {"model": args.name, "impl": args.child, "dev_accuracy": acc}})
            sequences = len(labels) * repeats
        else:
            call = as_call(synthetic_inputs(batch, seq_len, vocab))
            times = time_calls(call, args.warmup, args.repeats, args.budget)
            repeats, sequences = len(times), batch * len(times)
        r = {"impl": args.child, "model": args.name, "workload": w, "batch": batch, "seq_len": seq_len,
             "p50_ms": round(percentile(times, 50) * 1e3, 3), "p90_ms": round(percentile(times, 90) * 1e3, 3),
             "p99_ms": round(percentile(times, 99) * 1e3, 3), "seq_per_s": round(sequences / sum(times), 3),
             "repeats": repeats}
        out.append(r)
        extra = f", dev accuracy {acc:.4f}" if w == "dev_throughput" else ""
        log(f"{args.child} {args.name} {w}: p50 {r['p50_ms']:.2f} ms, p90 {r['p90_ms']:.2f}, p99 {r['p99_ms']:.2f}, "
            f"{r['seq_per_s']:.1f} seq/s, {repeats} {'passes' if w == 'dev_throughput' else 'calls'}{extra}")
    out.append({"impl": args.child, "model": args.name, "peak_rss_mib": peak_rss_mib()})
    for r in out:
        print(json.dumps(r), flush=True)


# --------------------------------------------------------------------------------------------------------------
# Parent


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    v = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "tokenizers", "onnxruntime", "onnx", "onnxscript", "numpy"):
        try:
            v[pkg] = version(pkg)
        except PackageNotFoundError:
            v[pkg] = None
    return v


def fmt(x, width: int, digits: int = 2) -> str:
    return f"{'—':>{width}}" if x is None else f"{x:>{width}.{digits}f}"


def print_table(results: list, checks: dict) -> None:
    rows = {(r["model"], r["workload"], r["impl"]): r for r in results if "workload" in r}
    rss = {(r["model"], r["impl"]): r["peak_rss_mib"] for r in results if "peak_rss_mib" in r}
    models = list(dict.fromkeys(r["model"] for r in results if "model" in r))
    print("ms per call (dev_throughput: per batch of 32) and sequences/s")
    head = (f"{'model':<16}{'workload':<21}{'torch p50':>10}{'p90':>9}{'p99':>9}{'ort p50':>10}{'p90':>9}{'p99':>9}"
            f"{'torch seq/s':>12}{'ort seq/s':>11}")
    print(head)
    print("-" * len(head))
    for m in models:
        for w in WORKLOADS:
            t, o = rows.get((m, w, "pytorch")), rows.get((m, w, "onnxruntime"))
            if t is None and o is None:
                continue
            g = lambda r, k: None if r is None else r[k]  # noqa: E731
            print(f"{m:<16}{w:<21}{fmt(g(t, 'p50_ms'), 10)}{fmt(g(t, 'p90_ms'), 9)}{fmt(g(t, 'p99_ms'), 9)}"
                  f"{fmt(g(o, 'p50_ms'), 10)}{fmt(g(o, 'p90_ms'), 9)}{fmt(g(o, 'p99_ms'), 9)}"
                  f"{fmt(g(t, 'seq_per_s'), 12, 1)}{fmt(g(o, 'seq_per_s'), 11, 1)}")
        print(f"{m:<16}{'peak RSS MiB':<21}{fmt(rss.get((m, 'pytorch')), 10, 0)}{'':>18}{fmt(rss.get((m, 'onnxruntime')), 10, 0)}")
    for m in models:
        c = checks.get(m, {})
        acc = c.get("dev_accuracy", {})
        diff = c.get("ort_max_abs_diff")
        print(f"check {m}: dev accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items())
              + ("" if diff is None else f"; ORT vs torch logits max abs diff {diff:.2e}"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]DIR_OR_SHAPE",
                   help=f"a model directory or one of {', '.join(NAMED)}; repeatable")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated (default: pytorch,onnxruntime)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: all five)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per workload, passes for dev_throughput (default: fit --budget)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls (dev set: batches) per workload (default 2)")
    p.add_argument("--budget", type=float, default=5.0, help="seconds of timed calls per workload (default 5)")
    p.add_argument("--dev", default=os.path.join(ROOT, ".assets", "movie-snippets", "dev.tsv"),
                   help="SST-2-format dev file (default .assets/movie-snippets/dev.tsv)")
    p.add_argument("--max-length", type=int, default=64, help="tokenizer truncation for the dev set (default 64)")
    p.add_argument("--tokenizer", default=os.path.join(ROOT, ".assets", "all-MiniLM-L6-v2"),
                   help="tokenizer directory for the named shapes (default .assets/all-MiniLM-L6-v2)")
    p.add_argument("--work-dir", default=os.path.join(ROOT, ".build", "peer-runtime"),
                   help="ONNX files and tokenized inputs (default .build/peer-runtime)")
    p.add_argument("--json", default=None, help="write the JSON lines here")
    p.add_argument("--cofi", default=None, help="the cofi binary, for the ort-cofi implementation (`cofi export`)")
    # internal: one child process per implementation and model
    p.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--onnx", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    args = p.parse_args()

    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload '{w}' (known: {', '.join(WORKLOADS)})")
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for i in args.impls:
        if i not in IMPLS:
            p.error(f"unknown implementation '{i}' (known: {', '.join(IMPLS)})")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.warmup < 0 or not args.budget > 0:
        p.error("--warmup must be 0 or more and --budget a positive number of seconds")
    if args.child:
        return child(args)

    if not args.model:
        p.error("give at least one --model")
    models = [parse_model_arg(m) for m in args.model]
    for name, spec in models:
        if spec not in NAMED and not os.path.isdir(spec):
            p.error(f"--model {spec}: not a directory and not one of {', '.join(NAMED)}")
    if len({n for n, _ in models}) != len(models):
        p.error("two models have the same name; name them with NAME=DIR")
    if not os.path.isfile(args.dev):
        p.error(f"--dev {args.dev}: no such file")
    os.makedirs(args.work_dir, exist_ok=True)

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()], "versions": versions(), "threads": THREADS,
            "dev": os.path.relpath(args.dev, ROOT), "max_length": args.max_length, "dev_batch": 32,
            "dev_throughput": "model calls only, tokenization excluded (pre-tokenized, padded per batch)",
            "percentiles": "linear interpolation over per-call times", "warmup": args.warmup,
            "budget_s": args.budget, "repeats": args.repeats}
    log(f"{meta['date']} on {meta['machine']} ({meta['cores']} cores; {meta['cpu_flags']}), load average "
        f"{meta['load_average_start']}; " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))

    results, checks = [], {}
    for name, spec in models:
        prep = prepare(name, spec, args, args.work_dir)
        checks[name] = prep["check"]
        checks[name]["dev_accuracy"] = {}
        for impl in args.impls:
            onnx_file = prep["cofi_onnx"] if impl == "ort-cofi" else prep["onnx"]
            if impl == "ort-cofi" and onnx_file is None:
                continue  # a named shape, or no --cofi
            cmd = [sys.executable, os.path.abspath(__file__), "--child", impl, "--spec", spec, "--name", name,
                   "--onnx", onnx_file, "--inputs", prep["inputs"], "--workloads", ",".join(args.workloads),
                   "--warmup", str(args.warmup), "--budget", str(args.budget)]
            if args.repeats is not None:
                cmd += ["--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                sys.exit(f"error: the {impl} run of {name} failed (exit {proc.returncode})")
            for line in proc.stdout.splitlines():
                r = json.loads(line)
                if "check" in r:
                    checks[name]["dev_accuracy"][impl] = r["check"]["dev_accuracy"]
                else:
                    results.append(r)
        accs = set(checks[name]["dev_accuracy"].values())
        if len(accs) > 1:
            log(f"WARNING {name}: the implementations disagree on dev accuracy: {checks[name]['dev_accuracy']}")
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    print_table(results, checks)
    print(f"{meta['date']}, {meta['machine']}, load average at start {meta['load_average_start']}, "
          f"at end {meta['load_average_end']}")
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps({"meta": meta}) + "\n")
            for c in checks.values():
                f.write(json.dumps({"check": c}) + "\n")
            for r in results:
                f.write(json.dumps(r) + "\n")
        log(f"JSON lines in {args.json}")


if __name__ == "__main__":
    main()
