#!/usr/bin/env python3
"""Generate the training-parity fixture: 10 AdamW steps of the tiny BERT in PyTorch.

Writes Tests/TrainingTests/Fixtures/adamw_10_steps.safetensors (relative to the repository root), which
Tests/TrainingTests/TrainingParityTests.swift replays in Swift.

The model is the tiny heterogeneous BERT of make_golden.py (D = 32, d_h = 8, heads [4, 2], FFN [64, 40], vocab 100)
with a 3-label classification head, built as a Hugging Face `BertForSequenceClassification` reshaped per layer
(`make_golden.hf_model`, which make_golden.py checks against its own reference to 1e-10). Dropout is off (eval
mode, dropout probabilities 0). The run is exactly Hugging Face's recipe:

  groups     weight decay 0.01, except parameters whose name ends in ".bias" or contains "LayerNorm." (decay 0)
  optimizer  torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8)
  schedule   transformers.get_linear_schedule_with_warmup(num_warmup_steps 2, num_training_steps 10)
  each step  zero_grad; loss = cross-entropy (mean) of batch k; backward;
             clip_grad_norm_(all parameters, 1.0); optimizer.step(); scheduler.step()

Precision: the stored trajectory is computed in float64 from the stored (float32-rounded) initial weights, so it is
the exact-arithmetic answer for the stored inputs, free of any one implementation's float32 rounding. The Swift run
is float32; how far a float32 run may honestly land from it is measured here by a second, float32 PyTorch run of the
same steps, whose distance from the float64 run is printed and recorded in the metadata (`float32_torch`). The Swift
test's tolerances are set against that yardstick.

The attention key bias is a special case: adding a constant to every key's score leaves the softmax unchanged, so
the loss does not depend on `attention.self.key.bias` and its exact gradient is 0. In float arithmetic the gradient
is rounding noise, and Adam divides a gradient by its own running magnitude: in float32 that noise (~1e-9, within
an order of eps) becomes steps of a sizeable fraction of the learning rate, with arbitrary sign. Two float32 runs
therefore disagree on the key biases by up to ~Σ lr_t, while everything the loss depends on agrees. The float64
run keeps them at their initial values (noise ~1e-17 ≪ eps).

Tensor names (floats F32, integers I64):
  <HF name>                        initial weights (`bert.*`, `classifier.*`), loadable as a checkpoint
  final.<HF name>                  weights after the 10 steps (float64 run)
  batch.{k}.input_ids, .attention_mask, .token_type_ids   [4, T_k], padded with id 0 to the longest in the batch
  batch.{k}.labels                 [4]
  steps.loss                       [10] loss of batch k before step k (float64 run)
  steps.grad_norm                  [10] global L2 gradient norm before clipping (float64 run)
  steps.lr                         [10] learning rate step k used (base lr × schedule multiplier)
  __metadata__: config (as make_golden.py), training (JSON of the settings above), float32_torch (JSON of the
                float32 run's max differences from the float64 run), generator

Run:  .venv-ref/bin/python scripts/reference/make_training_golden.py   (from the repository root)
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from make_golden import ROOT, TinyConfig, full_forward, hf_model, linear_params, make_encoder_weights
from make_golden import save_safetensors, store

FIXTURES = os.path.join(ROOT, "Tests", "TrainingTests", "Fixtures")
NAME = "adamw_10_steps.safetensors"
GENERATOR = "scripts/reference/make_training_golden.py"
SEED = 20240607

STEPS = 10
BATCH = 4
LENGTHS = [8, 6, 8, 5, 7, 8, 4, 8, 6, 7]  # T_k: the longest sequence of batch k (dynamic padding)
NUM_LABELS = 3
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 0.01
WARMUP = 2
MAX_NORM = 1.0


def make_batches(cfg: TinyConfig, gen: torch.Generator) -> list:
    """10 batches of 4: lengths in [2, T_k] with one of length T_k, pad id 0 after the real tokens, the second half
    of the real tokens in segment 1 for half of the examples, labels uniform in {0, 1, 2}."""
    batches = []
    for T in LENGTHS:
        lengths = torch.randint(2, T + 1, (BATCH,), generator=gen)
        lengths[torch.randint(0, BATCH, (1,), generator=gen)] = T
        ids = torch.randint(1, cfg.vocab_size, (BATCH, T), generator=gen)
        attention_mask = torch.zeros(BATCH, T, dtype=torch.int64)
        token_type_ids = torch.zeros(BATCH, T, dtype=torch.int64)
        pairs = torch.rand(BATCH, generator=gen) < 0.5
        for b, n in enumerate(lengths.tolist()):
            attention_mask[b, :n] = 1
            ids[b, n:] = 0
            if pairs[b]:
                token_type_ids[b, (n + 1) // 2 : n] = 1
        labels = torch.randint(0, NUM_LABELS, (BATCH,), generator=gen)
        batches.append(
            {"input_ids": ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids, "labels": labels}
        )
    return batches


def scale_init(weights: dict) -> dict:
    """Shrink make_golden.py's Linear weights (std 0.2) so that clipping acts on some steps and not on others.

    At std 0.2 every pre-clip gradient norm is 3.5-9 and all 10 steps are clipped; with the encoder, pooler and
    classifier Linear weights × 1/2 and the classifier's × 1/8 the norms are 0.6-1.9 and 3 of the 10 steps stay
    unclipped. Powers of two keep the values exactly float32 numbers.
    """
    out = {}
    for name, v in weights.items():
        linear = name.endswith(".weight") and "LayerNorm." not in name and ".embeddings." not in name
        out[name] = v * (0.125 if name == "classifier.weight" else 0.5) if linear else v
    return out


def decays(name: str) -> bool:
    """Hugging Face's rule: no weight decay for biases and LayerNorm weights."""
    return not (name.endswith(".bias") or "LayerNorm." in name)


def train(cfg: TinyConfig, weights: dict, batches: list, dtype: torch.dtype) -> tuple:
    """The 10 steps in `dtype`. Returns (losses, pre-clip norms, learning rates, final weights by name)."""
    from transformers import get_linear_schedule_with_warmup

    model = hf_model(cfg, "classification", NUM_LABELS, weights).to(dtype)
    model.eval()  # dropout probabilities are 0 as well
    named = list(model.named_parameters())
    assert {n for n, _ in named} == set(weights), "the model's parameters are the stored weights"
    groups = [
        {"params": [p for n, p in named if decays(n)], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    losses, norms, lrs = [], [], []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        lrs.append(sched.get_last_lr()[0])
        out = model(**batch)
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        norms.append(norm.item())
    final = {n: p.detach().to(torch.float64).clone() for n, p in named}
    return losses, norms, lrs, final


def main() -> None:
    torch.manual_seed(SEED)
    cfg = TinyConfig()
    gen = torch.Generator().manual_seed(SEED)
    weights = make_encoder_weights(cfg, gen)  # float64 values that are exactly float32 numbers
    weights.update(linear_params(gen, "classifier", NUM_LABELS, cfg.hidden_size))
    weights = scale_init(weights)
    batches = make_batches(cfg, gen)

    # The HF model and make_golden.py's own reference agree on the first batch.
    _, ref = full_forward(cfg, "classification", weights, batches[0], None)

    losses, norms, lrs, final = train(cfg, weights, batches, torch.float64)
    assert abs(losses[0] - ref["loss"].item()) < 1e-12, "HF model != make_golden reference"
    l32, n32, _, final32 = train(cfg, {k: v.to(torch.float32) for k, v in weights.items()}, batches, torch.float32)

    print("step  lr          loss (float64)  loss (float32)  |g| before clip  clipped")
    for k in range(STEPS):
        print(
            f"{k:4d}  {lrs[k]:.4e}  {losses[k]:.10f}    {l32[k]:.10f}    {norms[k]:.6f}       "
            f"{'yes' if norms[k] > MAX_NORM else 'no'}"
        )
    clipped = sum(n > MAX_NORM for n in norms)
    assert 0 < clipped < STEPS, f"clipping should act on some steps but not all ({clipped} of {STEPS})"

    def weight_diff(names) -> float:
        return max((final32[n] - final[n]).abs().max().item() for n in names)

    key_biases = [n for n in final if n.endswith("attention.self.key.bias")]
    others = [n for n in final if n not in key_biases]
    moved = max((final[n] - weights[n]).abs().max().item() for n in others)
    key_moved64 = max((final[n] - weights[n]).abs().max().item() for n in key_biases)
    key_moved32 = max((final32[n] - weights[n]).abs().max().item() for n in key_biases)
    f32 = {
        "max_loss_diff": max(abs(a - b) for a, b in zip(l32, losses)),
        "max_weight_diff": weight_diff(others),
        "max_key_bias_diff": weight_diff(key_biases),
    }
    print(f"largest weight change over the run (key biases aside): {moved:.3e}")
    print(f"key biases moved: float64 {key_moved64:.3e}, float32 {key_moved32:.3e} (sum of lr_t = {sum(lrs):.3e})")
    print(
        f"float32 PyTorch vs float64: max |dloss| {f32['max_loss_diff']:.3e}, max |dweight| {f32['max_weight_diff']:.3e}"
        f" (key biases {f32['max_key_bias_diff']:.3e})"
    )

    tensors = dict(weights)
    tensors.update({f"final.{n}": v for n, v in final.items()})
    for k, b in enumerate(batches):
        tensors.update({f"batch.{k}.{n}": v for n, v in b.items()})
    tensors["steps.loss"] = torch.tensor(losses)
    tensors["steps.grad_norm"] = torch.tensor(norms)
    tensors["steps.lr"] = torch.tensor(lrs)
    training = {
        "steps": STEPS,
        "batch_size": BATCH,
        "lr": LR,
        "betas": list(BETAS),
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "no_decay": "names ending in .bias or containing LayerNorm.",
        "schedule": f"linear, {WARMUP} warm-up steps, {STEPS} total",
        "max_grad_norm": MAX_NORM,
        "dtype": "float64",
    }
    metadata = dict(cfg.metadata("classification", NUM_LABELS, False))
    metadata.update(
        {
            "generator": GENERATOR,
            "training": json.dumps(training),
            "float32_torch": json.dumps({k: float(f"{v:.3e}") for k, v in f32.items()}),
        }
    )

    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, NAME)
    stored = {k: store(v) for k, v in tensors.items()}
    save_safetensors(path, stored, metadata)
    back = load_file(path)
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored)
    with safe_open(path, "pt") as f:
        assert f.metadata() == metadata
    size = os.path.getsize(path)
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(stored)} tensors, {size} bytes")
    assert size < 400_000


if __name__ == "__main__":
    main()
