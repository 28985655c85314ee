#!/usr/bin/env bash
# kill -9 at several moments of a short `cofi finetune` (and, with --prune, of a short `cofi prune`), then --resume
# (or --force where no checkpoint exists yet) until the run finishes; each result must equal an uninterrupted run:
# byte-identical weights, optimiser moments and objective tensors, metrics.jsonl equal except times (and the
# resume/stopped events), and no hidden leftovers (partial checkpoints, temporary files) anywhere in the run.
#
#   scripts/kill_resume_check.sh [--cofi PATH] [--model DIR] [--prune] [--keep]
#
# Default: .build/release/cofi (build it first: swift build -c release --product cofi) and .assets/all-MiniLM-L6-v2.
# Prints one line per moment and exits 1 if any moment differs or leaves something behind.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cofi="$root/.build/release/cofi"
model="$root/.assets/all-MiniLM-L6-v2"
prune=0
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cofi) cofi="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --prune) prune=1; shift ;;
        --keep) keep=1; shift ;;
        *) echo "usage: $0 [--cofi PATH] [--model DIR] [--prune] [--keep]" >&2; exit 2 ;;
    esac
done
[ -x "$cofi" ] || { echo "$cofi: not built (swift build -c release --product cofi)" >&2; exit 2; }
[ -f "$model/model.safetensors" ] || { echo "$model: no model.safetensors (cofi fetch)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/cofi-kill-resume.XXXXXX")"
if [ "$keep" = 0 ]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work"; fi

# A small user CSV: 48 training and 8 dev rows of two labels.
python3 - "$work" <<'EOF'
import sys
good = ["a wonderful, moving film", "great acting and a clever plot", "i loved every minute", "funny and warm",
        "a delight", "beautifully shot", "the best film of the year", "charming"]
bad = ["a dull, lifeless mess", "the plot makes no sense", "i was bored", "awful acting", "a waste of time",
       "badly edited", "the worst film of the year", "tedious"]
def rows(n, offset):
    out = ["text,label"]
    for i in range(n):
        k = i + offset
        words = good if k % 2 == 0 else bad
        text = words[k % 8] + (" and " + words[(k * 3 + 1) % 8] if k % 3 else "")
        out.append('"%s",%s' % (text, "positive" if k % 2 == 0 else "negative"))
    return "\n".join(out) + "\n"
open(sys.argv[1] + "/train.csv", "w").write(rows(48, 0))
open(sys.argv[1] + "/dev.csv", "w").write(rows(8, 5))
EOF

# 12 steps of 4 examples (one epoch), evaluated and checkpointed every 2 steps.
finetune_args=(finetune --model "$model" --train "$work/train.csv" --dev "$work/dev.csv" --max-length 16
               --batch-size 4 --max-steps 12 --eval-steps 2 --logging-steps 1 --learning-rate 3e-4)
finetune_eval=2
# The fine-tuned reference as teacher and student: 1 pre-pruning + 2 pruning epochs of 6 steps and 1 fine-tuning
# epoch, evaluated every 3 steps, a wide checkpoint gate so that every evaluation may become best/.
prune_args=(prune --teacher "$work/finetune-reference/best" --student "$work/finetune-reference/best"
            --train "$work/train.csv" --dev "$work/dev.csv" --max-length 16 --batch-size 8 --target-sparsity 0.5
            --sparsity-epsilon 0.45 --checkpoint-gate expected --epochs 3 --pre-pruning-epochs 1 --warmup-steps 4
            --finetune-epochs 1 --eval-steps 3 --logging-steps 1 --budget-aware)
prune_eval=3

# Waits until the path pattern $1 (a glob) matches in the tree $2, for at most $3 seconds; 0 if it did.
wait_for() {
    local pattern="$1" dir="$2" limit="$3" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        if compgen -G "$dir/$pattern" > /dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# Waits until the metrics log $1 has a "train" record of step $2 or later.
wait_for_step() {
    local log="$1" step="$2" start=$SECONDS
    while [ $((SECONDS - start)) -lt 300 ]; do
        if [ -f "$log" ] && grep -q '"event":"train"' "$log" 2>/dev/null \
            && [ "$(grep -o '"event":"train","step":[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')" -ge "$step" ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.005
    done
    return 1
}

# Compares run directory $1 with the uninterrupted $2; prints "identical" or what differs.
compare() {
    python3 - "$1" "$2" <<'EOF'
import json, os, sys
a, b = sys.argv[1], sys.argv[2]
times = {"time", "seconds", "train_seconds", "evaluation_seconds", "examples_per_second", "step_seconds",
         "model_seconds", "wall_seconds"}
diffs = []
for dirpath, _, files in os.walk(b):
    for f in files:
        rel = os.path.relpath(os.path.join(dirpath, f), b)
        other = os.path.join(a, rel)
        if not os.path.exists(other):
            diffs.append("missing " + rel); continue
        if f.endswith(".safetensors") or f in ("vocab.txt", "config.json", "DONE"):
            if open(other, "rb").read() != open(os.path.join(b, rel), "rb").read():
                diffs.append(rel)
        elif f == "metrics.jsonl":
            def records(p):
                out = []
                for line in open(p):
                    r = json.loads(line)
                    if r.get("event") in ("resume", "stopped"):
                        continue
                    out.append({k: v for k, v in r.items() if k not in times})
                return out
            if records(other) != records(os.path.join(b, rel)):
                diffs.append(rel)
        elif f in ("trainer_state.json", "summary.json"):
            def state(p):
                s = json.load(open(p))
                for k in times | {"stageSeconds", "finalDirectory"}:
                    s.pop(k, None)
                return s
            if state(other) != state(os.path.join(b, rel)):
                diffs.append(rel)
print("identical" if not diffs else "DIFFERENT: " + ", ".join(sorted(diffs)))
EOF
}

failures=0
# Runs command $1 (finetune or prune) into $out, killing it at moment $2; then resumes until it finishes.
# Moments: start (before the first step), step:N (after step N's record), checkpoint[:N] (while the Nth
# checkpoint/ is being staged), best[:N] (while the Nth best/ is), twice (a kill at step 3, then again at step 7 of
# the resumed run). For prune the steps and checkpoints are the pruning stage's (prune/).
check() {
    local kind="$1" moment="$2" reference="$3"
    local out="$work/$kind-${moment//:/-}"
    local args=("${finetune_args[@]}") stage_dir="$out" every=$finetune_eval
    if [ "$kind" = prune ]; then args=("${prune_args[@]}"); stage_dir="$out/prune"; every=$prune_eval; fi
    local kills=0 t0=$SECONDS
    local targets=("$moment")
    [ "$moment" = twice ] && targets=("step:3" "step:7")
    for target in "${targets[@]}"; do
        local mode=()
        if [ $kills -gt 0 ]; then mode=(--resume); fi
        "$cofi" "${args[@]}" --out "$out" ${mode[@]+"${mode[@]}"} > "$out.log" 2>&1 &
        pid=$!
        local hit=0
        case "$target" in
            start) wait_for "metrics.jsonl" "$out" 120 && hit=1 ;;
            step:*) wait_for_step "$stage_dir/metrics.jsonl" "${target#step:}" && hit=1 ;;
            checkpoint*|best*)
                local name="${target%%:*}" nth="${target#*:}"
                [ "$nth" = "$target" ] && nth=1
                # The nth staging directory: wait for the (nth-1)th to be in place first.
                if [ "$nth" -gt 1 ]; then wait_for_step "$stage_dir/metrics.jsonl" $(( (nth - 1) * every + 1 )) || true; fi
                wait_for ".$name.partial-*" "$stage_dir" 300 && hit=1 ;;
        esac
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        [ $hit = 1 ] || echo "  ($kind $target: the moment was not caught; the run was killed when it ended or timed out)"
        kills=$((kills + 1))
    done
    local leftovers_after_kill
    leftovers_after_kill=$(find "$out" -name '.*' | wc -l | tr -d ' ')
    # Resume (or start over where no checkpoint exists yet) until the run finishes.
    local how=resume
    if [ "$kind" = finetune ] && [ ! -f "$out/checkpoint/trainer_state.json" ]; then how=force; fi
    if [ "$kind" = prune ] && [ ! -d "$out/preprune" ] && [ ! -d "$out/prune" ]; then how=force; fi
    if ! "$cofi" "${args[@]}" --out "$out" --"$how" > "$out.log" 2>&1; then
        echo "$kind $moment: the --$how run failed:"; tail -5 "$out.log"; failures=$((failures + 1)); return
    fi
    local result leftovers
    result=$(compare "$out" "$reference")
    leftovers=$(find "$out" -name '.*' | sed "s|$out/||" | tr '\n' ' ')
    printf '%-9s %-14s %-7s %-10s left by the kill %-3s after --%-7s %s  (%ds)\n' "$kind" "$moment" "kills $kills" \
        "$result" "$leftovers_after_kill" "$how:" "${leftovers:-none}" $((SECONDS - t0))
    if [ "$result" != identical ] || [ -n "$leftovers" ]; then failures=$((failures + 1)); fi
}

t0=$SECONDS
"$cofi" "${finetune_args[@]}" --out "$work/finetune-reference" > "$work/finetune-reference.log" 2>&1
echo "uninterrupted finetune: $((SECONDS - t0)) s"
for moment in start step:3 checkpoint:1 checkpoint:3 best:1 best:2 step:12 twice; do
    check finetune "$moment" "$work/finetune-reference"
done

if [ "$prune" = 1 ]; then
    t0=$SECONDS
    "$cofi" "${prune_args[@]}" --out "$work/prune-reference" > "$work/prune-reference.log" 2>&1
    echo "uninterrupted prune: $((SECONDS - t0)) s"
    for moment in step:5 checkpoint:2 best:1; do
        check prune "$moment" "$work/prune-reference"
    done
fi

if [ $failures -gt 0 ]; then echo "$failures moment(s) failed"; exit 1; fi
echo "every moment: identical after resuming, no leftovers"
