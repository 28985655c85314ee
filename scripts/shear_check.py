#!/usr/bin/env python3
"""A `cofi shear` output next to transformers (issue 20): loads OUT/model (Hugging Face directory) and OUT/model.gguf
in transformers, prints their parameter counts and config shape, and compares the logits of a prompt from both with
cofi's own (`cofi generate --dump-logits` on each). transformers reads GGUF files only with `accelerate` (e.g.
`pip install --target DIR accelerate psutil pyyaml`, then PYTHONPATH=DIR).

    PYTHONPATH=DIR .venv-peer/bin/python scripts/shear_check.py --out runs/shear/sheared --cofi .build/release/cofi
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "The Python tutorial explains how to define a function:"


def cofi_logits(cofi, model, prompt):
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        out = subprocess.run([cofi, "generate", "--model", model, "--prompt", prompt, "--dump-logits", f.name],
                             check=True, capture_output=True, text=True).stdout
        info = json.loads(out)
        return np.fromfile(f.name, dtype=np.float32).reshape(len(info["prompt_ids"]), info["vocab_size"]), info["prompt_ids"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cofi", default=".build/release/cofi")
    a = ap.parse_args()
    hf_dir, gguf = os.path.join(a.out, "model"), os.path.join(a.out, "model.gguf")
    tok = AutoTokenizer.from_pretrained(hf_dir)
    ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    gg = AutoModelForCausalLM.from_pretrained(a.out, gguf_file="model.gguf", dtype=torch.float32).eval()
    c = hf.config
    print(f"config: layers {c.num_hidden_layers}, hidden {c.hidden_size}, heads {c.num_attention_heads}, "
          f"kv-heads {c.num_key_value_heads}, ffn {c.intermediate_size}, head_dim {c.head_dim}")
    print(f"parameters: HF directory {sum(p.numel() for p in hf.parameters())}, GGUF {sum(p.numel() for p in gg.parameters())}")
    with torch.no_grad():
        l_hf = hf(torch.tensor([ids])).logits[0].numpy()
        l_gg = gg(torch.tensor([ids])).logits[0].numpy()
    for name, path in (("HF directory", hf_dir), ("GGUF", gguf)):
        ours, our_ids = cofi_logits(a.cofi, path, PROMPT)
        same = our_ids == ids
        print(f"cofi on the {name}: token ids equal {same}; logits max |cofi - transformers(HF dir)| "
              f"{float(np.abs(ours - l_hf).max()) if same else float('nan'):.3e}")
    print(f"transformers: HF directory vs GGUF logits max abs diff {float(np.abs(l_hf - l_gg).max()):.3e} "
          f"(logit scale {float(np.abs(l_hf).max()):.1f})")


if __name__ == "__main__":
    main()
