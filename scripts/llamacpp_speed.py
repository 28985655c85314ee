"""llama.cpp's speed on a GGUF file, batch 1, for scripts/llm_parity.py's speed part (issue 19).

Runs under an interpreter that has `llama-cpp-python` (it builds llama.cpp from source: `python3 -m venv V &&
V/bin/pip install llama-cpp-python`). llama.cpp runs the file's own quantised weights (here Q4_1 / Q8_0), not the
float32 that cofi and PyTorch dequantise to, so its numbers are a reference point, not a like-for-like peer.
Prints one JSON line: prompt tokens, prompt tokens/s, generation tokens/s (greedy, one token at a time).

    V/bin/python scripts/llamacpp_speed.py --gguf FILE --ids 1,2,3,... --threads 2 --new-tokens 63
"""
import argparse
import json
import time

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=63)
    a = ap.parse_args()
    ids = [int(t) for t in a.ids.split(",")]
    llm = Llama(model_path=a.gguf, n_ctx=len(ids) + a.new_tokens + 8, n_batch=512, n_threads=a.threads,
                n_threads_batch=a.threads, verbose=False)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t_prefill = time.perf_counter() - t0
    nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t0 = time.perf_counter()
    for _ in range(a.new_tokens):
        llm.eval([nxt])
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t_decode = time.perf_counter() - t0
    print(json.dumps({"prompt_tokens": len(ids), "prompt_tokens_per_s": len(ids) / t_prefill,
                      "generation_tokens_per_s": a.new_tokens / t_decode}))


if __name__ == "__main__":
    main()
