#!/usr/bin/env python3
"""Issue 16's controller table from finished `cofi prune` runs: for each run directory, how the sparsity controller
followed its target ramp, read from the run's own files (no training here; standard library only):

    python3 scripts/controller_table.py runs/track90 runs/track95 ... [--epsilon 0.01]

Per run (OUT of `cofi prune --out OUT`):
  target        the target sparsity t (prune/metrics.jsonl's start event)
  controller    paper, budget-aware or tracking (the recorded run arguments)
  ramp          the warm-up W in pruning steps (warmup_steps, else warmup_epochs × steps per epoch)
  max |s-t|     the largest |ŝ − t(k)| over the evaluations after 10 % of the ramp, with t(k) the ramp
                t0 + (t − t0)·c(min(1, k/W)), c(x) = x (linear) or 1 − (1 − x)³ (--ramp cubic), and t0 the
                ramp's start (from the first logged step's target)
  band at       the first evaluation whose EXACT sparsity is within t ± epsilon (the default checkpoint gate)
  first try     yes when some evaluation met the gate and the run delivered a model from it (summary.json has no
                gateMissed), else no
  exact, dev    the delivered model's exact sparsity, its dev metric when pruned, and after fine-tuning ("—" when
                the run fine-tuned for 0 epochs) (summary.json)

It prints a Markdown table, one row per run, in the order given.
"""
import argparse
import json
import os
import sys


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def read_jsonl(path):
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path} line {n}: not JSON ({e})")
    return events


def summarize(out, epsilon):
    metrics = os.path.join(out, "prune", "metrics.jsonl")
    if not os.path.isfile(metrics):
        fail(f"{metrics}: missing (expected the pruning stage's log of a `cofi prune --out {out}` run)")
    events = read_jsonl(metrics)
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None:
        fail(f"{metrics}: no start event")
    args = start.get("arguments", {})
    try:
        target = float(args["target_sparsity"])
    except (KeyError, ValueError):
        fail(f"{metrics}: the start event's arguments have no target_sparsity")
    per_epoch = int(start.get("steps_per_epoch", 0))
    if args.get("warmup_steps", "none") != "none":
        ramp = int(args["warmup_steps"])
    else:
        ramp = int(args.get("warmup_epochs", "0")) * per_epoch
    controller = ("tracking" if "tracking_horizon" in args
                  else "budget-aware" if args.get("budget_aware") == "true" else "paper")
    shape = args.get("ramp", "linear")
    if shape not in ("linear", "cubic"):
        fail(f"{metrics}: ramp is {shape!r}; expected linear or cubic")
    # The fraction of t - t0 the ramp has covered at progress x (cofi's SparsityTarget).
    covered = (lambda x: x) if shape == "linear" else (lambda x: 1 - (1 - x) ** 3)
    trains = [e for e in events if e.get("event") == "train" and "target_sparsity" in e]
    # t0: the ramp's start, from the first logged step's target.
    t0 = None
    if trains:
        first = trains[0]
        k = first["step"] - 1 if first["step"] > 0 else 0
        tk = first["target_sparsity"]
        c = covered(min(1, k / ramp)) if ramp else 1
        t0 = tk if ramp == 0 or k == 0 else (tk - target * c) / (1 - c)

    def t_at(step):
        if ramp == 0 or t0 is None:
            return target
        return t0 + (target - t0) * covered(min(1.0, step / ramp))

    evals = [e for e in events if e.get("event") == "eval" and "expected_sparsity" in e.get("metrics", {})]
    late = [e for e in evals if e["step"] * 10 >= ramp]
    worst = max((abs(e["metrics"]["expected_sparsity"] - t_at(e["step"])) for e in late), default=float("nan"))
    band = next((e["step"] for e in evals if abs(e["metrics"]["exact_sparsity"] - target) <= epsilon), None)
    summary_path = os.path.join(out, "summary.json")
    exact = pruned = dev = None
    missed = True
    if os.path.isfile(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        exact = summary.get("exactSparsity")
        pruned = summary.get("prunedMetric")
        dev = summary.get("finalMetric")
        missed = summary.get("gateMissed") is not None
    return {"run": out, "target": target, "controller": controller + ("" if shape == "linear" else f", {shape} ramp"), "ramp": ramp, "worst": worst, "band": band,
            "first_try": band is not None and not missed, "exact": exact, "pruned": pruned, "dev": dev}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="output directories of cofi prune runs")
    parser.add_argument("--epsilon", type=float, default=0.01, help="half-width of the band (default 0.01)")
    a = parser.parse_args()
    rows = [summarize(r, a.epsilon) for r in a.runs]
    print("| run | target | controller | ramp (steps) | max \\|ŝ − t\\| after 10 % of the ramp | band entered at step "
          "| first try | exact sparsity | pruned dev | fine-tuned dev |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        fmt = lambda v, d=4: "—" if v is None else f"{v:.{d}f}"
        print(f"| {r['run']} | {r['target']:.2f} | {r['controller']} | {r['ramp']} | {fmt(r['worst'])} | "
              f"{r['band'] if r['band'] is not None else 'never'} | {'yes' if r['first_try'] else 'no'} | "
              f"{fmt(r['exact'])} | {fmt(r['pruned'])} | {fmt(r['dev'])} |")


if __name__ == "__main__":
    main()
