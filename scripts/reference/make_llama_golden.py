#!/usr/bin/env python3
"""Generate the golden LLaMA fixtures that Tests/LlamaTests compares against.

Writes into Tests/LlamaTests/Fixtures/ (relative to the repository root):

  llama_tied.safetensors     tiny random LlamaForCausalLM, lm_head tied to embed_tokens
  llama_untied.safetensors   the same config with its own lm_head
  llama_hetero.safetensors   untied, three layers of different shapes: (1 KV head, FFN 20), (no attention, FFN 30),
                             (2 KV heads, no FFN)

Each model is Hugging Face `LlamaForCausalLM` itself (transformers' eager attention, with fully masked query rows
set to 0: see `padded_eager_attention`), in float64.  Per-layer shapes
cannot be said in a LlamaConfig, so the heterogeneous model is the uniform one cut physically: a layer keeps the
query heads of its first KV heads (q/k/v rows, o_proj columns) and its first FFN units (gate/up rows, down_proj
columns); an absent sublayer is replaced by a module that returns zeros, so the residual passes unchanged (how
cofi defines an absent sublayer), and its RMSNorm weight is dropped from the fixture.

Config: hidden 32, 4 query heads sharing 2 KV heads, head dim 8, FFN 48, vocab 64, rope_theta 1e4, rms_norm_eps 1e-5.
Batch: B = 3, T = 7; row 0 is full, row 1 right-padded (5 real tokens), row 2 left-padded (4 real tokens) with
position ids counting from its first real token (as `generate` makes them).  Labels are the input ids with padding
set to -100; the loss is LlamaForCausalLM's (shifted by one, mean over the counted tokens).

Tensor names: the model's state-dict names (`model.embed_tokens.weight`, `model.layers.{l}.self_attn.q_proj.weight`,
..., `model.norm.weight`, `lm_head.weight` when untied); `inputs.input_ids`, `inputs.attention_mask`,
`inputs.position_ids` (I64, [B, T]); `outputs.logits` [B, T, V]; `outputs.loss` []; `grads.<name>` for every
weight.  Metadata `config`: JSON with the HF config fields plus `kv_heads_per_layer` and `ffn_per_layer`.

Weights are drawn with std 0.2 (RMSNorm weights 1 + N(0, 0.1)) and rounded to float32 before the float64 run, so
the stored outputs belong to the stored weights.  Note that HF computes the rotary cos/sin and the RMSNorm
statistics in float32 even in a float64 model: the fixtures carry those roundings (~1e-7 relative).

Run:  /path/to/python scripts/reference/make_llama_golden.py   (from the repository root; torch, transformers,
safetensors)
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import save_file
from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.llama.modeling_llama import eager_attention_forward

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "LlamaTests", "Fixtures")
GENERATOR = "scripts/reference/make_llama_golden.py"
SEED = 20261206
# The id written at padding positions. The config has no pad_token_id (as SmolLM2's): with one, nn.Embedding would
# withhold the gradient from that row (padding_idx), which cofi's embedding does not do.
PAD = 0

BASE = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=64,
            hidden_act="silu", attention_bias=False, mlp_bias=False, pad_token_id=None, bos_token_id=1,
            eos_token_id=2)


class ZeroAttention(torch.nn.Module):
    """An absent attention sublayer: contributes nothing to the residual."""

    def forward(self, hidden_states, **kwargs):
        return torch.zeros_like(hidden_states), None


class ZeroMLP(torch.nn.Module):
    """An absent FFN sublayer: contributes nothing to the residual."""

    def forward(self, x):
        return torch.zeros_like(x)


def padded_eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' eager attention, except that a query that may attend to no key (a left-padding position)
    gets probabilities 0 instead of NaN. Eager attention gives such rows NaN in float64, and the NaN reaches every
    position of the sequence through 0 * NaN in the value product; cofi's attention outputs zeros there.
    Nothing else changes: every real token attends to at least itself."""
    if attention_mask is not None:
        blocked = attention_mask < -1e30
        attention_mask = attention_mask.masked_fill(blocked.all(-1, keepdim=True), 0.0)
        out, weights = eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        dead = blocked.all(-1).transpose(1, 2).unsqueeze(-1)  # [B, T, 1, 1] against out [B, T, H, Dh]
        return out.masked_fill(dead, 0.0), weights
    return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)


AttentionInterface.register("padded_eager", padded_eager_attention)
# The additive float mask eager attention gets (an unregistered implementation would get no mask at all).
AttentionMaskInterface.register("padded_eager", eager_mask)


def make_model(tied: bool, layers: int) -> LlamaForCausalLM:
    config = LlamaConfig(**BASE, tie_word_embeddings=tied)
    config.num_hidden_layers = layers
    config._attn_implementation = "padded_eager"
    model = LlamaForCausalLM(config).double()
    g = torch.Generator().manual_seed(SEED + layers + (1 if tied else 0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64))
            p.copy_(p.float().double())
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    return model


def cut(model: LlamaForCausalLM, shapes: list[tuple[int, int]]) -> None:
    """Cuts each layer to (KV heads, FFN units) in place: the first ones kept, 0 = the sublayer is absent."""
    dh, group = BASE["head_dim"], BASE["num_attention_heads"] // BASE["num_key_value_heads"]
    for layer, (kv, ffn) in zip(model.model.layers, shapes):
        attn = layer.self_attn
        if kv == 0:
            layer.self_attn = ZeroAttention()
            layer.input_layernorm = torch.nn.Identity()
        else:
            for proj, rows in ((attn.q_proj, kv * group * dh), (attn.k_proj, kv * dh), (attn.v_proj, kv * dh)):
                proj.weight = torch.nn.Parameter(proj.weight.detach()[:rows].clone())
                proj.out_features = rows
            attn.o_proj.weight = torch.nn.Parameter(attn.o_proj.weight.detach()[:, : kv * group * dh].clone())
            attn.o_proj.in_features = kv * group * dh
        if ffn == 0:
            layer.mlp = ZeroMLP()
            layer.post_attention_layernorm = torch.nn.Identity()
        else:
            mlp = layer.mlp
            for proj in (mlp.gate_proj, mlp.up_proj):
                proj.weight = torch.nn.Parameter(proj.weight.detach()[:ffn].clone())
                proj.out_features = ffn
            mlp.down_proj.weight = torch.nn.Parameter(mlp.down_proj.weight.detach()[:, :ffn].clone())
            mlp.down_proj.in_features = ffn


def batch():
    g = torch.Generator().manual_seed(SEED)
    B, T = 3, 7
    ids = torch.randint(3, BASE["vocab_size"], (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, :3] = 0
    ids[mask == 0] = PAD
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, positions, labels


def run(name: str, tied: bool, shapes: list[tuple[int, int]] | None) -> None:
    layers = len(shapes) if shapes else BASE["num_hidden_layers"]
    model = make_model(tied, layers)
    if shapes:
        cut(model, shapes)
    ids, mask, positions, labels = batch()
    with torch.no_grad():  # causal: position 0 of the full row 0 sees only its own token
        alone = model(input_ids=ids[:1, :1]).logits[0, 0]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels)
    out.loss.backward()
    assert torch.allclose(out.logits[0, 0], alone, atol=1e-12), "the batch run is not causal"
    kv = [s[0] for s in shapes] if shapes else [BASE["num_key_value_heads"]] * layers
    ffn = [s[1] for s in shapes] if shapes else [BASE["intermediate_size"]] * layers
    tensors = {}
    for n, p in model.named_parameters():  # a tied lm_head is listed once, as model.embed_tokens.weight
        tensors[n] = p.detach().float().contiguous()
        tensors["grads." + n] = p.grad.detach().float().contiguous()
    tensors["inputs.input_ids"] = ids
    tensors["inputs.attention_mask"] = mask
    tensors["inputs.position_ids"] = positions
    tensors["outputs.logits"] = out.logits.detach().float().contiguous()
    tensors["outputs.loss"] = out.loss.detach().float().reshape(())
    meta = dict(BASE, num_hidden_layers=layers, tie_word_embeddings=tied, kv_heads_per_layer=kv, ffn_per_layer=ffn)
    os.makedirs(FIXTURES, exist_ok=True)
    save_file(tensors, os.path.join(FIXTURES, name), metadata={"config": json.dumps(meta), "generator": GENERATOR})
    print(f"{name}: loss {out.loss.item():.6f}, {len(tensors)} tensors")


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # one summation order, so the files are byte-for-byte reproducible
    torch.use_deterministic_algorithms(True)
    run("llama_tied.safetensors", tied=True, shapes=None)
    run("llama_untied.safetensors", tied=False, shapes=None)
    run("llama_hetero.safetensors", tied=False, shapes=[(1, 20), (0, 30), (2, 0)])


if __name__ == "__main__":
    main()
