#!/usr/bin/env python3
"""cofi's decoder LM next to transformers on the same GGUF file (transformers dequantises it to float32).

Prints, for the model in --gguf:
  (a) logits of every position of 5 prompts: max |cofi - transformers|, and whether the token ids agree;
  (b) greedy generation of 64 tokens of each prompt: identical or not;
  (c) perplexity on --text with the same window/stride (HF's sliding-window recipe), and the relative difference;
  (d) speed at batch 1 with 2 threads each: a 128-token prompt (tokens/s) and generation (tokens/s), cofi and
      PyTorch eager interleaved (cofi, torch, cofi, torch, ...), with the load average; with --llama-cpp PYTHON,
      llama.cpp too (scripts/llamacpp_speed.py under that interpreter, on the file's own quantised weights).
transformers loads GGUF files only with `accelerate` installed (e.g. `pip install --target DIR accelerate psutil
pyyaml`, then PYTHONPATH=DIR). Run from the repository root after `swift build -c release --product cofi`:
  /work/main/.venv-peer/bin/python scripts/llm_parity.py --gguf .assets/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf --text FILE
"""
import argparse
import copy
import glob
import html.parser
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea, there lived",
    "Photosynthesis is the process by which plants",
    "<|im_start|>user\nWhat is 12 times 7?<|im_end|>\n<|im_start|>assistant\n",
]


def cofi(args, *extra):
    env = dict(os.environ, COFI_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    out = subprocess.run([args.cofi, *extra], check=True, capture_output=True, text=True, env=env)
    return out.stdout


def load(args):
    torch.set_num_threads(args.threads)
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32).eval()
    return tok, model


def part_logits(args, tok, model):
    print("(a) logits of every prompt position, max |cofi - transformers|; (b) greedy 64 tokens identical")
    print("    and, as the yardstick of float32 rounding, each side's distance from transformers in float64")
    worst = 0.0
    model64 = copy.deepcopy(model).double()
    for p in PROMPTS:
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:
            info = json.loads(cofi(args, "generate", "--model", args.gguf, "--prompt", p, "--dump-logits", f.name))
            ours = np.fromfile(f.name, dtype=np.float32).reshape(len(info["prompt_ids"]), info["vocab_size"])
        ids = tok(p, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
            exact = model64(torch.tensor([ids])).logits[0].numpy()
        same_ids = ids == info["prompt_ids"]
        diff = float(np.abs(ours - theirs).max()) if same_ids else float("nan")
        ours64 = float(np.abs(ours - exact).max()) if same_ids else float("nan")
        theirs64 = float(np.abs(theirs - exact).max())
        worst = float(np.max([worst, diff]))  # np.max keeps a NaN; the built-in max may drop it
        g = json.loads(cofi(args, "generate", "--model", args.gguf, "--prompt", p, "--max-tokens", "64", "--json"))
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        hf_new = out[0, len(ids):].tolist()
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        hf_new = [t for t in hf_new if t not in eos]
        print(f"  {json.dumps(p)[:48]:50s} tokens {len(ids):3d} ids equal {same_ids}  max|diff| {diff:.3e}  "
              f"(logit scale {np.abs(theirs).max():.1f})  vs float64: cofi {ours64:.2e}, transformers {theirs64:.2e}  greedy {len(g['generated_ids'])}/{len(hf_new)} tokens identical: {g['generated_ids'] == hf_new}")
    print(f"  worst max|diff| {worst:.3e}")


def part_perplexity(args, tok, model):
    text = open(args.text, encoding="utf-8").read()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if len(ids) > args.ppl_tokens:  # cut the text at a token boundary, and score the same text with both
        text = tok.decode(ids[: args.ppl_tokens])
        ids = tok(text, add_special_tokens=False)["input_ids"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write(text)
        cut = f.name
    t0 = time.time()
    lines = cofi(args, "perplexity", "--model", args.gguf, "--text", cut, "--window", str(args.window), "--stride", str(args.stride), "--json")
    ours = json.loads(lines.strip().splitlines()[-1])
    t_cofi = time.time() - t0
    nll, count, prev_end = 0.0, 0, 0
    t0 = time.time()
    with torch.no_grad():
        for begin in range(0, len(ids), args.stride):
            end = min(begin + args.window, len(ids))
            window = torch.tensor([ids[begin:end]])
            logp = torch.log_softmax(model(window).logits[0].double(), dim=-1)
            first = max(prev_end, 1)
            for t in range(first, end):
                nll -= logp[t - 1 - begin, ids[t]].item()
                count += 1
            prev_end = end
            if end == len(ids):
                break
    t_torch = time.time() - t0
    ppl = math.exp(nll / count)
    print(f"(c) perplexity on {args.text} ({len(ids)} tokens, window {args.window}, stride {args.stride})")
    print(f"  cofi {ours['perplexity']:.4f} over {ours['tokens']} tokens ({t_cofi:.0f} s, {ours['tokens_per_s']:.0f} tokens/s)  "
          f"transformers {ppl:.4f} over {count} tokens ({t_torch:.0f} s)  relative difference {abs(ours['perplexity'] - ppl) / ppl * 100:.4f} %")
    os.unlink(cut)


def part_speed(args, tok, model):
    text = open(args.text, encoding="utf-8").read()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    prompt = tok.decode(ids[:128])
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    rows = []
    for r in range(args.repeats):
        g = json.loads(cofi(args, "generate", "--model", args.gguf, "--prompt", prompt, "--max-tokens", "64", "--ignore-eos", "--json"))
        rows.append(("cofi", len(g["prompt_ids"]), g["prompt_tokens_per_s"], g["generation_tokens_per_s"]))
        with torch.no_grad():
            x = torch.tensor([ids])
            t0 = time.perf_counter()
            out = model(x, use_cache=True)
            t_prefill = time.perf_counter() - t0
            past, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
            t0 = time.perf_counter()
            for _ in range(63):
                out = model(nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
            t_decode = time.perf_counter() - t0
        rows.append(("torch", len(ids), len(ids) / t_prefill, 63 / t_decode))
        if args.llama_cpp:
            out = subprocess.run([args.llama_cpp, os.path.join(os.path.dirname(__file__), "llamacpp_speed.py"),
                                  "--gguf", args.gguf, "--ids", ",".join(map(str, ids)), "--threads",
                                  str(args.threads), "--new-tokens", "63"], check=True, capture_output=True, text=True)
            lc = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(("llama.cpp", lc["prompt_tokens"], lc["prompt_tokens_per_s"], lc["generation_tokens_per_s"]))
    print(f"(d) speed, batch 1, {args.threads} threads each, load average {os.getloadavg()}")
    for name in ("cofi", "torch", "llama.cpp"):
        mine = [r for r in rows if r[0] == name]
        if not mine:
            continue
        pp, gen = [r[2] for r in mine], [r[3] for r in mine]
        print(f"  {name:9s} prompt {mine[0][1]} tokens: {' '.join(f'{v:.0f}' for v in pp)} tokens/s (best {max(pp):.0f}); "
              f"generation: {' '.join(f'{v:.1f}' for v in gen)} tokens/s (best {max(gen):.1f})")
    best = lambda name, i: max(r[i] for r in rows if r[0] == name)
    print(f"  cofi / torch (best of each): prompt {best('cofi', 2) / best('torch', 2):.2f}x, generation {best('cofi', 3) / best('torch', 3):.2f}x")
    if args.llama_cpp:
        print(f"  cofi / llama.cpp (best of each; llama.cpp on the file's quantised weights): prompt "
              f"{best('cofi', 2) / best('llama.cpp', 2):.2f}x, generation {best('cofi', 3) / best('llama.cpp', 3):.2f}x")


class _BodyText(html.parser.HTMLParser):
    """The text of a Sphinx page's main body (div role=main), without scripts, styles and the header link marks."""

    def __init__(self):
        super().__init__()
        self.depth, self.skip, self.parts = 0, None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.depth == 0 and tag == "div" and a.get("role") == "main":
            self.depth = 1
        elif self.depth and tag == "div":
            self.depth += 1
        if self.skip is None and (tag in ("script", "style") or a.get("class") == "headerlink"):
            self.skip = tag  # until this tag closes (none of them nests)
        if self.depth and tag in ("p", "pre", "li", "h1", "h2", "h3", "h4", "dt", "dd", "tr", "br"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == self.skip:
            self.skip = None
        if self.depth and tag == "div":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and self.skip is None:
            self.parts.append(data)


def html_to_text(files, out):
    """Writes the body text of the Sphinx HTML `files` to `out`, blank-line runs squeezed."""
    pages = []
    for name in files:
        p = _BodyText()
        p.feed(open(name, encoding="utf-8").read())
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(p.parts).replace("\u00b6", "")).strip()
        pages.append(text)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(pages) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--text", required=True, help="held-out English text (UTF-8); written first when --html is given")
    ap.add_argument("--html", nargs="*", help="Sphinx HTML pages (e.g. /usr/share/doc/python3.11-doc/html/tutorial/*.html) to strip into --text")
    ap.add_argument("--cofi", default=".build/release/cofi")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--ppl-tokens", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--parts", default="logits,perplexity,speed")
    ap.add_argument("--llama-cpp", help="a Python interpreter with llama-cpp-python: adds llama.cpp to the speed part")
    args = ap.parse_args()
    if args.html:
        html_to_text(sorted(args.html), args.text)
    tok, model = load(args)
    parts = args.parts.split(",")
    if "logits" in parts:
        part_logits(args, tok, model)
    if "perplexity" in parts:
        part_perplexity(args, tok, model)
    if "speed" in parts:
        part_speed(args, tok, model)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
