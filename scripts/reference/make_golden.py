#!/usr/bin/env python3
"""Generate the golden fixture files that the Swift BERT tests compare against.

Writes into Tests/BERTTests/Fixtures/ (relative to the repository root):

  tiny_cls_plain.safetensors    tiny heterogeneous BERT, classification head, no masks
  tiny_cls_masked.safetensors   same, with all five CoFi mask kinds at non-trivial values
  tiny_reg_masked.safetensors   regression head; one MHA and one FFN sublayer gated to exactly 0 (identity)
  tiny_qa_masked.safetensors    span (QA) head, one example with out-of-range (ignored) positions
  losses.safetensors            KL distillation (T=2), cross-entropy and MSE losses with their gradients
  minilm_reference.safetensors  the real all-MiniLM-L6-v2 (HF BertModel, float32) on five sentences

The tiny model is a reference implementation written here in float64 PyTorch.  It follows the CoFi masked
forward pass of /work/shared/cofi-spec.md section 1 plus the project decision that a sublayer whose heads (or FFN
units) are all gated to 0 is the identity.  Before anything is written the script checks the reference against
Hugging Face `transformers` (uniform and heterogeneous configs, masks = None) and checks that all-ones masks give
the unmasked result.

Storage: float tensors as F32, integer tensors as I64.  Every float that is stored as an *input* (weights, masks,
float labels, loss inputs) is rounded to float32 first and the float64 computation uses those rounded values, so
the stored outputs are exactly the float64 results for the stored inputs (up to the final F32 rounding).

Tensor names: see scripts/reference/README.md.

Run:  .venv-ref/bin/python scripts/reference/make_golden.py   (from the repository root; needs .assets/, see
`cofi fetch`)
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "BERTTests", "Fixtures")
MINILM_DIR = os.path.join(ROOT, ".assets", "all-MiniLM-L6-v2")
GENERATOR = "scripts/reference/make_golden.py"
SEED = 20240601

DT = torch.float64
torch.set_default_dtype(DT)


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TinyConfig:
    """Shape of a (possibly heterogeneous) BERT encoder. Each layer has its own head count and FFN width."""

    vocab_size: int = 100
    hidden_size: int = 32  # D
    head_dim: int = 8  # d_h, same for every layer
    heads_per_layer: list = field(default_factory=lambda: [4, 2])  # H_l
    ffn_per_layer: list = field(default_factory=lambda: [64, 40])  # I_l
    max_position_embeddings: int = 16
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def num_layers(self) -> int:
        return len(self.heads_per_layer)

    def metadata(self, task: str, num_labels: int, masked: bool) -> dict:
        """The `__metadata__` dict of a fixture (safetensors metadata values must be strings)."""
        cfg = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "head_dim": self.head_dim,
            "heads_per_layer": list(self.heads_per_layer),
            "ffn_per_layer": list(self.ffn_per_layer),
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "task": task,
            "num_labels": num_labels,
            "masked": masked,
        }
        return {"config": json.dumps(cfg), "generator": GENERATOR}


# ---------------------------------------------------------------------------------------------------------------
# Random values (all rounded through float32 so that what is stored is what was used)
# ---------------------------------------------------------------------------------------------------------------


def f32_round(t: torch.Tensor) -> torch.Tensor:
    """Round a float64 tensor to the nearest float32 and return it as float64."""
    return t.to(torch.float32).to(DT)


def normal(gen: torch.Generator, shape, std: float, mean: float = 0.0) -> torch.Tensor:
    return f32_round(mean + std * torch.randn(*shape, generator=gen, dtype=DT))


def uniform(gen: torch.Generator, shape, lo: float, hi: float) -> torch.Tensor:
    return f32_round(lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=DT))


def linear_params(gen, prefix: str, out_f: int, in_f: int) -> dict:
    """Weights of an nn.Linear(in_f -> out_f): weight [out, in] std 0.2, bias [out] std 0.1."""
    return {f"{prefix}.weight": normal(gen, (out_f, in_f), 0.2), f"{prefix}.bias": normal(gen, (out_f,), 0.1)}


def layernorm_params(gen, prefix: str, dim: int) -> dict:
    """gamma = 1 + 0.1*N, beta = 0.1*N."""
    return {f"{prefix}.weight": normal(gen, (dim,), 0.1, mean=1.0), f"{prefix}.bias": normal(gen, (dim,), 0.1)}


def make_encoder_weights(cfg: TinyConfig, gen: torch.Generator) -> dict:
    """All `bert.*` weights (embeddings, encoder layers, pooler), HF names, Linear weights [out, in]."""
    D, dh = cfg.hidden_size, cfg.head_dim
    w = {
        "bert.embeddings.word_embeddings.weight": normal(gen, (cfg.vocab_size, D), 0.2),
        "bert.embeddings.position_embeddings.weight": normal(gen, (cfg.max_position_embeddings, D), 0.2),
        "bert.embeddings.token_type_embeddings.weight": normal(gen, (cfg.type_vocab_size, D), 0.2),
    }
    w.update(layernorm_params(gen, "bert.embeddings.LayerNorm", D))
    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        p = f"bert.encoder.layer.{l}"
        for name in ("query", "key", "value"):
            w.update(linear_params(gen, f"{p}.attention.self.{name}", H * dh, D))
        w.update(linear_params(gen, f"{p}.attention.output.dense", D, H * dh))
        w.update(layernorm_params(gen, f"{p}.attention.output.LayerNorm", D))
        w.update(linear_params(gen, f"{p}.intermediate.dense", I, D))
        w.update(linear_params(gen, f"{p}.output.dense", D, I))
        w.update(layernorm_params(gen, f"{p}.output.LayerNorm", D))
    w.update(linear_params(gen, "bert.pooler.dense", D, D))
    return w


# ---------------------------------------------------------------------------------------------------------------
# The reference model (float64)
# ---------------------------------------------------------------------------------------------------------------


def layer_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """Plain LayerNorm over the last dim (biased variance). x [..., D]."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def masked_layer_norm(x: torch.Tensor, z: torch.Tensor, gamma, beta, eps: float) -> torch.Tensor:
    """CoFiLayerNorm: normalise over K = {i : z_i != 0} only; dims outside K pass through unchanged.

    x [..., D], z [D].  The choice of K is discrete (index selection): no gradient reaches z from here.
    """
    keep = torch.nonzero(z != 0).squeeze(-1)  # [|K|] int64
    xk = x.index_select(-1, keep)  # [..., |K|]
    yk = layer_norm(xk, gamma.index_select(0, keep), beta.index_select(0, keep), eps)
    return x.index_copy(-1, keep, yk)  # [..., D]


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(x: torch.Tensor, w: dict, prefix: str) -> torch.Tensor:
    """x [..., in] -> [..., out] with weight [out, in]."""
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def encoder_forward(cfg: TinyConfig, w: dict, ids, attention_mask, token_type_ids, masks: dict | None):
    """CoFi-masked BERT encoder. Returns hidden_states = [embeddings, layer 1, ..., layer L], each [B, T, D].

    ids, attention_mask, token_type_ids: [B, T] int64.  masks: None or a dict with keys
    `hidden_z` [D], `layer.{l}.head_z` [H_l], `layer.{l}.head_layer_z` [1], `layer.{l}.intermediate_z` [I_l],
    `layer.{l}.mlp_z` [1].
    """
    B, T = ids.shape
    eps, dh = cfg.layer_norm_eps, cfg.head_dim
    hz = masks["hidden_z"] if masks is not None else None  # [D]

    def norm(x, prefix):
        g, b = w[f"{prefix}.weight"], w[f"{prefix}.bias"]
        if hz is None:
            return layer_norm(x, g, b, eps)
        return masked_layer_norm(x, hz, g, b, eps)

    # Embeddings: [B, T, D]
    pos = torch.arange(T)
    e = (
        w["bert.embeddings.word_embeddings.weight"][ids]
        + w["bert.embeddings.position_embeddings.weight"][pos][None]
        + w["bert.embeddings.token_type_embeddings.weight"][token_type_ids]
    )
    if hz is None:
        x = norm(e, "bert.embeddings.LayerNorm")
    else:
        x = norm(e * hz, "bert.embeddings.LayerNorm") * hz  # dropout is off
    hidden_states = [x]

    # Additive padding mask over keys: [B, 1, 1, T]
    add_mask = ((1.0 - attention_mask.to(DT)) * -10000.0)[:, None, None, :]

    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        p = f"bert.encoder.layer.{l}"
        # ---- multi-head attention sublayer ----
        mha_identity = H == 0
        if masks is not None:
            head_z = masks[f"layer.{l}.head_z"]  # [H]
            head_layer_z = masks[f"layer.{l}.head_layer_z"]  # [1]
            mha_identity = mha_identity or bool(head_layer_z.item() == 0) or bool((head_z == 0).all())
        if not mha_identity:

            def heads(t):  # [B, T, H*dh] -> [B, H, T, dh]
                return t.view(B, T, H, dh).transpose(1, 2)

            q = heads(linear(x, w, f"{p}.attention.self.query"))
            k = heads(linear(x, w, f"{p}.attention.self.key"))
            v = heads(linear(x, w, f"{p}.attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + add_mask  # [B, H, T, T]
            probs = torch.softmax(scores, dim=-1)
            ctx = probs @ v  # [B, H, T, dh]
            if masks is not None:
                ctx = ctx * head_z[None, :, None, None]
            ctx = ctx.transpose(1, 2).reshape(B, T, H * dh)  # [B, T, H*dh]
            a = linear(ctx, w, f"{p}.attention.output.dense")  # [B, T, D]
            if masks is None:
                x = norm(a + x, f"{p}.attention.output.LayerNorm")
            else:
                a = a * head_layer_z  # scales the bias too
                a = a * hz
                x = norm(a + x, f"{p}.attention.output.LayerNorm") * hz
        # ---- feed-forward sublayer ----
        ffn_identity = I == 0
        if masks is not None:
            int_z = masks[f"layer.{l}.intermediate_z"]  # [I]
            mlp_z = masks[f"layer.{l}.mlp_z"]  # [1]
            ffn_identity = ffn_identity or bool(mlp_z.item() == 0) or bool((int_z == 0).all())
        if not ffn_identity:
            u = gelu_erf(linear(x, w, f"{p}.intermediate.dense"))  # [B, T, I]
            if masks is not None:
                u = u * int_z
            f = linear(u, w, f"{p}.output.dense")  # [B, T, D]
            if masks is None:
                x = norm(f + x, f"{p}.output.LayerNorm")
            else:
                f = f * mlp_z
                f = f * hz
                x = norm(f + x, f"{p}.output.LayerNorm") * hz
        hidden_states.append(x)
    return hidden_states


def head_forward(task: str, w: dict, h: torch.Tensor, inputs: dict) -> dict:
    """Task head on the last hidden state h [B, T, D] (no masks). Returns output tensors including `loss` []."""
    out = {}
    if task in ("classification", "regression"):
        pooled = torch.tanh(linear(h[:, 0], w, "bert.pooler.dense"))  # [B, D]
        logits = linear(pooled, w, "classifier")  # [B, C]
        out["pooled"], out["logits"] = pooled, logits
        if task == "classification":
            out["loss"] = F.cross_entropy(logits, inputs["labels"])
        else:
            out["loss"] = F.mse_loss(logits.squeeze(-1), inputs["labels"])
    elif task == "span":
        logits = linear(h, w, "qa_outputs")  # [B, T, 2]
        start, end = logits[..., 0], logits[..., 1]  # [B, T]
        out["start_logits"], out["end_logits"] = start, end
        T = start.shape[1]  # HF BertForQuestionAnswering: clamp to [0, T], ignore T
        sp = inputs["start_positions"].clamp(0, T)
        ep = inputs["end_positions"].clamp(0, T)
        out["loss"] = (F.cross_entropy(start, sp, ignore_index=T) + F.cross_entropy(end, ep, ignore_index=T)) / 2
    else:
        raise ValueError(task)
    return out


def full_forward(cfg, task, w, inputs, masks):
    hs = encoder_forward(cfg, w, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], masks)
    out = head_forward(task, w, hs[-1], inputs)
    return hs, out


# ---------------------------------------------------------------------------------------------------------------
# Inputs and masks
# ---------------------------------------------------------------------------------------------------------------


def make_inputs(cfg: TinyConfig, gen: torch.Generator) -> dict:
    """B = 3, T = 7; lengths [7, 5, 3] (padding at the end, pad id 0); the tail of each sequence is segment 1."""
    B, T, lengths = 3, 7, [7, 5, 3]
    ids = torch.randint(1, cfg.vocab_size, (B, T), generator=gen)
    attention_mask = torch.zeros(B, T, dtype=torch.int64)
    token_type_ids = torch.zeros(B, T, dtype=torch.int64)
    for b, n in enumerate(lengths):
        attention_mask[b, :n] = 1
        ids[b, n:] = 0
        token_type_ids[b, (n + 1) // 2 : n] = 1  # second half of the real tokens
    return {"input_ids": ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def make_masks(cfg: TinyConfig, gen: torch.Generator) -> dict:
    """Non-trivial values for all five mask kinds (variant 2 of the brief)."""
    D = cfg.hidden_size
    hidden_z = uniform(gen, (D,), 0.3, 1.0)
    hidden_z[torch.randperm(D, generator=gen)[:3]] = 0.0  # 3 exact zeros
    m = {"hidden_z": hidden_z}
    head_z = [[0.9, 0.0, 0.6, 1.0], [0.8, 0.5]]
    head_layer_z = [0.85, 0.7]
    mlp_z = [0.95, 0.6]
    for l, I in enumerate(cfg.ffn_per_layer):
        m[f"layer.{l}.head_z"] = f32_round(torch.tensor(head_z[l]))
        m[f"layer.{l}.head_layer_z"] = f32_round(torch.tensor([head_layer_z[l]]))
        iz = uniform(gen, (I,), 0.2, 1.0)
        iz[torch.randperm(I, generator=gen)[: round(0.25 * I)]] = 0.0  # about 25 % exact zeros
        m[f"layer.{l}.intermediate_z"] = iz
        m[f"layer.{l}.mlp_z"] = f32_round(torch.tensor([mlp_z[l]]))
    return m


def ones_masks(cfg: TinyConfig) -> dict:
    m = {"hidden_z": torch.ones(cfg.hidden_size)}
    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        m[f"layer.{l}.head_z"] = torch.ones(H)
        m[f"layer.{l}.head_layer_z"] = torch.ones(1)
        m[f"layer.{l}.intermediate_z"] = torch.ones(I)
        m[f"layer.{l}.mlp_z"] = torch.ones(1)
    return m


# ---------------------------------------------------------------------------------------------------------------
# Fixture writing
# ---------------------------------------------------------------------------------------------------------------


def store(t: torch.Tensor) -> torch.Tensor:
    """Floats -> contiguous F32, integers -> contiguous I64."""
    t = t.detach()
    if t.is_floating_point():
        return t.to(torch.float32).contiguous()
    return t.to(torch.int64).contiguous()


def save_safetensors(path: str, tensors: dict, metadata: dict) -> None:
    """Write a safetensors file byte-for-byte reproducibly.

    `safetensors.torch.save_file` orders the `__metadata__` keys by hash, so reruns differ in the header. This
    writer sorts everything: header keys and data by tensor name, metadata by key; compact JSON padded with spaces
    to a multiple of 8 bytes; little-endian data.  (Format: u64 header length, JSON header, raw data.)
    """
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def write(name: str, tensors: dict, metadata: dict) -> None:
    """Store `tensors` (floats as F32, integers as I64) and check that the file reads back identically."""
    path = os.path.join(FIXTURES, name)
    stored = {k: store(v) for k, v in tensors.items()}
    save_safetensors(path, stored, metadata)
    back = load_file(path)
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == metadata
    print(f"  wrote {name}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def tiny_fixture(name, cfg, task, num_labels, weights, inputs, masks):
    """Run forward + backward in float64 and write weights, inputs, masks, outputs and gradients."""
    w = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    m = None if masks is None else {k: v.clone().requires_grad_(True) for k, v in masks.items()}
    hs, out = full_forward(cfg, task, w, inputs, m)
    leaves = list(w.values()) + ([] if m is None else list(m.values()))
    grads = torch.autograd.grad(out["loss"], leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]  # unused -> exactly 0

    t = dict(weights)
    t.update({f"inputs.{k}": v for k, v in inputs.items()})
    if masks is not None:
        t.update({f"masks.{k}": v for k, v in masks.items()})
    t.update({f"outputs.hidden_states.{i}": h for i, h in enumerate(hs)})
    t.update({f"outputs.{k}": v for k, v in out.items()})  # loss is a 0-dim tensor -> shape []
    names = list(w.keys()) + ([] if m is None else [f"masks.{k}" for k in m.keys()])
    t.update({f"grads.{n}": g for n, g in zip(names, grads)})
    write(name, t, cfg.metadata(task, num_labels, masks is not None))
    print(f"    loss = {out['loss'].item():.9f}")
    return hs, out


# ---------------------------------------------------------------------------------------------------------------
# Self-checks against Hugging Face transformers
# ---------------------------------------------------------------------------------------------------------------


class _IdentityAttention(torch.nn.Module):
    """Stands in for BertAttention in a layer whose heads were all cut: returns its input, no LayerNorm."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states, None


def hf_model(cfg: TinyConfig, task: str, num_labels: int, weights: dict):
    """A float64 eval-mode HF model with our (possibly heterogeneous) shapes and weights copied in.

    Each HF layer is reshaped to its own head count and FFN width (a "physically cut" BERT); a layer with 0 heads
    gets an identity attention, a layer with FFN width 0 an identity feed-forward chunk.
    """
    from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification

    D, dh = cfg.hidden_size, cfg.head_dim
    hf_cfg = BertConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=D,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=D // dh if D % dh == 0 else 1,  # replaced per layer below
        intermediate_size=max(max(cfg.ffn_per_layer), 1),
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps,
        num_labels=num_labels,
        attn_implementation="eager",
    )
    cls = BertForQuestionAnswering if task == "span" else BertForSequenceClassification
    model = cls(hf_cfg).to(DT)
    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        layer = model.bert.encoder.layer[l]
        if H == 0:
            layer.attention = _IdentityAttention()
        else:
            sa = layer.attention.self
            sa.num_attention_heads, sa.attention_head_size, sa.all_head_size = H, dh, H * dh
            sa.scaling = dh**-0.5
            sa.query, sa.key, sa.value = (torch.nn.Linear(D, H * dh, dtype=DT) for _ in range(3))
            layer.attention.output.dense = torch.nn.Linear(H * dh, D, dtype=DT)
        if I == 0:
            del layer.intermediate, layer.output
            layer.feed_forward_chunk = lambda x: x  # instance attribute shadows the method
        else:
            layer.intermediate.dense = torch.nn.Linear(D, I, dtype=DT)
            layer.output.dense = torch.nn.Linear(I, D, dtype=DT)
    state = model.state_dict()
    missing = set(state) - set(weights)
    extra = set(weights) - set(state)
    assert not extra, f"weights not in HF model: {sorted(extra)}"
    assert not missing, f"HF weights we do not provide: {sorted(missing)}"
    model.load_state_dict({k: weights[k] for k in state}, strict=True)
    model.eval()
    return model


def fold_and_cut(cfg: TinyConfig, w: dict, masks: dict):
    """Fold the masks into the encoder weights and cut pruned structures (cofi-spec section 7, decision 5).

    Requires a binary hidden_z (kept dims exactly 1).  Returns (cut config, cut `bert.*` encoder weights without
    the pooler, kept hidden indices [D']).
    """
    hz = masks["hidden_z"]
    assert bool(((hz == 0) | (hz == 1)).all()), "fold_and_cut needs a binary hidden_z"
    keep = torch.nonzero(hz).squeeze(-1)  # [D']
    dh = cfg.head_dim
    out = {}
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"bert.embeddings.{name}.weight"] = w[f"bert.embeddings.{name}.weight"][:, keep]
    for s in ("weight", "bias"):
        out[f"bert.embeddings.LayerNorm.{s}"] = w[f"bert.embeddings.LayerNorm.{s}"][keep]
    heads, ffns = [], []
    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        p = f"bert.encoder.layer.{l}"
        head_z = masks[f"layer.{l}.head_z"] * masks[f"layer.{l}.head_layer_z"]  # [H]
        kept_heads = torch.nonzero(head_z).squeeze(-1).tolist()
        heads.append(len(kept_heads))
        if kept_heads:
            rows = torch.cat([torch.arange(h * dh, (h + 1) * dh) for h in kept_heads])  # [H'*dh]
            row_scale = masks[f"layer.{l}.head_z"].repeat_interleave(dh)[rows]  # z_head folded into V
            for name in ("query", "key", "value"):
                W, b = w[f"{p}.attention.self.{name}.weight"], w[f"{p}.attention.self.{name}.bias"]
                sc = row_scale if name == "value" else torch.ones_like(row_scale)
                out[f"{p}.attention.self.{name}.weight"] = W[rows][:, keep] * sc[:, None]
                out[f"{p}.attention.self.{name}.bias"] = b[rows] * sc
            mha = masks[f"layer.{l}.head_layer_z"]
            out[f"{p}.attention.output.dense.weight"] = w[f"{p}.attention.output.dense.weight"][keep][:, rows] * mha
            out[f"{p}.attention.output.dense.bias"] = w[f"{p}.attention.output.dense.bias"][keep] * mha
            for s in ("weight", "bias"):
                out[f"{p}.attention.output.LayerNorm.{s}"] = w[f"{p}.attention.output.LayerNorm.{s}"][keep]
        int_z = masks[f"layer.{l}.intermediate_z"] * masks[f"layer.{l}.mlp_z"]  # [I]
        units = torch.nonzero(int_z).squeeze(-1)  # [I']
        ffns.append(len(units))
        if len(units):
            out[f"{p}.intermediate.dense.weight"] = w[f"{p}.intermediate.dense.weight"][units][:, keep]
            out[f"{p}.intermediate.dense.bias"] = w[f"{p}.intermediate.dense.bias"][units]
            Wd = w[f"{p}.output.dense.weight"][keep][:, units]  # [D', I']
            out[f"{p}.output.dense.weight"] = Wd * int_z[units][None, :]
            out[f"{p}.output.dense.bias"] = w[f"{p}.output.dense.bias"][keep] * masks[f"layer.{l}.mlp_z"]
            for s in ("weight", "bias"):
                out[f"{p}.output.LayerNorm.{s}"] = w[f"{p}.output.LayerNorm.{s}"][keep]
    cut = TinyConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=len(keep),
        head_dim=dh,
        heads_per_layer=heads,
        ffn_per_layer=ffns,
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps,
    )
    return cut, out, keep


def self_check_cut(cfg, w, inputs, masks, label) -> None:
    """Masked reference (binary hidden_z) == folded-and-cut HF model: hidden states on kept dims, 0 elsewhere."""
    hs = encoder_forward(cfg, w, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], masks)
    cut_cfg, cut_w, keep = fold_and_cut(cfg, w, masks)
    # pooler / classifier are not compared (the pooler input is cut, its output is not); give HF dummies.
    g = torch.Generator().manual_seed(0)
    cut_w.update(linear_params(g, "bert.pooler.dense", cut_cfg.hidden_size, cut_cfg.hidden_size))
    cut_w.update(linear_params(g, "classifier", 1, cut_cfg.hidden_size))
    model = hf_model(cut_cfg, "regression", 1, cut_w)
    with torch.no_grad():
        r = model.bert(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            token_type_ids=inputs["token_type_ids"],
            output_hidden_states=True,
        )
    dropped = torch.ones(cfg.hidden_size, dtype=torch.bool)
    dropped[keep] = False
    d = max(max_diff(a[..., keep], b) for a, b in zip(hs, r.hidden_states))
    d0 = max(a[..., dropped].abs().max().item() for a in hs)
    print(
        f"  self-check fold+cut {label} (cut heads {cut_cfg.heads_per_layer}, ffn {cut_cfg.ffn_per_layer}, "
        f"D' = {cut_cfg.hidden_size}): max|dhidden| = {d:.3e}, max|dropped dims| = {d0:.3e}"
    )
    assert d < 1e-10 and d0 == 0.0, "masked model != folded and cut model"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach() - b.detach()).abs().max().item()


def self_check_hf(cfg, task, num_labels, weights, inputs, label) -> None:
    """masks = None reference == HF (logits, loss, hidden states of model.bert, which is a BertModel)."""
    model = hf_model(cfg, task, num_labels, weights)
    hs, out = full_forward(cfg, task, weights, inputs, None)
    kw = dict(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], token_type_ids=inputs["token_type_ids"]
    )
    with torch.no_grad():
        if task == "span":
            r = model(**kw, start_positions=inputs["start_positions"], end_positions=inputs["end_positions"])
            d_logits = max(max_diff(r.start_logits, out["start_logits"]), max_diff(r.end_logits, out["end_logits"]))
        else:
            r = model(**kw, labels=inputs["labels"])
            d_logits = max_diff(r.logits, out["logits"])
        d_loss = abs(r.loss.item() - out["loss"].item())
        bm = model.bert(**kw, output_hidden_states=True)
        d_hs = max(max_diff(a, b) for a, b in zip(bm.hidden_states, hs))
        assert len(bm.hidden_states) == len(hs)
    print(f"  self-check HF {label}: max|dlogits| = {d_logits:.3e}, |dloss| = {d_loss:.3e}, max|dhidden| = {d_hs:.3e}")
    assert d_logits < 1e-10 and d_loss < 1e-10 and d_hs < 1e-10, "reference != HF"


def self_check_ones(cfg, task, weights, inputs, label) -> None:
    """All-ones masks must give exactly the unmasked forward pass (values and weight gradients)."""
    w1 = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    w2 = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    hs_a, out_a = full_forward(cfg, task, w1, inputs, None)
    hs_b, out_b = full_forward(cfg, task, w2, inputs, ones_masks(cfg))
    d_out = max(max_diff(out_a[k], out_b[k]) for k in out_a)
    d_hs = max(max_diff(a, b) for a, b in zip(hs_a, hs_b))
    ga = torch.autograd.grad(out_a["loss"], list(w1.values()))
    gb = torch.autograd.grad(out_b["loss"], list(w2.values()))
    d_g = max(max_diff(a, b) for a, b in zip(ga, gb))
    print(
        f"  self-check ones-masks {label}: max|doutputs| = {d_out:.3e}, max|dhidden| = {d_hs:.3e}, "
        f"max|dgrads| = {d_g:.3e}"
    )
    assert d_out < 1e-12 and d_hs < 1e-12 and d_g < 1e-12, "all-ones masks != no masks"


# ---------------------------------------------------------------------------------------------------------------
# Losses fixture
# ---------------------------------------------------------------------------------------------------------------


def kl_distill(student: torch.Tensor, teacher: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * mean_rows sum_c p_t (log p_t - log p_s), p = softmax(logits / T). student, teacher [N, C]."""
    log_ps = F.log_softmax(student / T, dim=-1)
    log_pt = F.log_softmax(teacher / T, dim=-1)
    return T * T * (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()


def losses_fixture(gen: torch.Generator) -> None:
    T = 2.0
    t = {}
    s = normal(gen, (4, 3), 1.5).requires_grad_(True)
    te = normal(gen, (4, 3), 1.5)
    kl = kl_distill(s, te, T)
    # cross-check with torch's KLDivLoss form used by CoFi: kl_div(log p_s, p_t, 'batchmean') * T^2
    kl2 = F.kl_div(F.log_softmax(s / T, -1), F.softmax(te / T, -1), reduction="batchmean") * T * T
    assert abs(kl.item() - kl2.item()) < 1e-14
    (g,) = torch.autograd.grad(kl, s)
    t.update({"kl.student": s, "kl.teacher": te, "kl.loss": kl, "kl.grad_student": g})

    logits = normal(gen, (4, 5), 1.5).requires_grad_(True)
    labels = torch.randint(0, 5, (4,), generator=gen)
    ce = F.cross_entropy(logits, labels)
    (g,) = torch.autograd.grad(ce, logits)
    t.update({"ce.logits": logits, "ce.labels": labels, "ce.loss": ce, "ce.grad_logits": g})

    pred = normal(gen, (6,), 1.0).requires_grad_(True)
    target = normal(gen, (6,), 1.0)
    mse = F.mse_loss(pred, target)
    (g,) = torch.autograd.grad(mse, pred)
    t.update({"mse.pred": pred, "mse.target": target, "mse.loss": mse, "mse.grad_pred": g})

    write("losses.safetensors", t, {"temperature": "2", "generator": GENERATOR})
    print(f"    kl = {kl.item():.9f}, ce = {ce.item():.9f}, mse = {mse.item():.9f}")


# ---------------------------------------------------------------------------------------------------------------
# Real model: all-MiniLM-L6-v2
# ---------------------------------------------------------------------------------------------------------------

MINILM_SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The stock market fell sharply today.",
    "Shares dropped steeply on Wall Street.",
    "Hello, world! Unaffable tokenization.",
]
MINILM_EXPECTED_SIMS = {
    (0, 1): 0.675212,
    (2, 3): 0.595287,
    (0, 2): -0.054027,
    (0, 3): -0.127441,
    (1, 2): -0.059130,
    (1, 3): -0.115810,
}
MINILM_EXPECTED_DIMS0 = [0.021664, -0.004864, -0.009649, -0.063401, -0.167494, 0.004676, 0.080600, -0.024142]
MINILM_EXPECTED_IDS4 = [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102]


def minilm_fixture() -> None:
    from transformers import BertModel, BertTokenizerFast

    if not os.path.isfile(os.path.join(MINILM_DIR, "model.safetensors")):
        sys.exit(f"error: {MINILM_DIR} is missing; run `swift run cofi fetch` first")
    tok = BertTokenizerFast.from_pretrained(MINILM_DIR)
    enc = tok(MINILM_SENTENCES, padding="longest", return_tensors="pt")
    assert tok.pad_token_id == 0
    ids, am = enc["input_ids"], enc["attention_mask"]  # [5, T]
    tt = enc.get("token_type_ids", torch.zeros_like(ids))
    ids4 = ids[4][am[4].bool()].tolist()
    assert ids4 == MINILM_EXPECTED_IDS4, f"sentence 4 ids {ids4}"

    model = BertModel.from_pretrained(MINILM_DIR, dtype=torch.float32).eval()
    with torch.no_grad():
        last = model(input_ids=ids, attention_mask=am, token_type_ids=tt).last_hidden_state  # [5, T, 384]
    m = am.to(torch.float32)[..., None]  # [5, T, 1]
    mean = (last * m).sum(1) / m.sum(1).clamp(min=1e-9)  # [5, 384]
    emb = F.normalize(mean, p=2, dim=1)  # [5, 384]
    sims = emb @ emb.T
    n0 = int(am[0].sum())
    print("  all-MiniLM-L6-v2 cosine similarities:")
    for (i, j), want in MINILM_EXPECTED_SIMS.items():
        got = sims[i, j].item()
        print(f"    s{i}{j} = {got:+.6f} (expected {want:+.6f})")
        assert abs(got - want) < 1e-4, f"s{i}{j}"
    dims = emb[0, :8].tolist()
    print("    sentence 0 dims 0-7: " + " ".join(f"{v:+.6f}" for v in dims))
    for got, want in zip(dims, MINILM_EXPECTED_DIMS0):
        assert abs(got - want) < 1e-4, "sentence 0 embedding"
    write(
        "minilm_reference.safetensors",
        {
            "inputs.input_ids": ids,
            "inputs.attention_mask": am,
            "inputs.token_type_ids": tt,
            "outputs.sentence_embeddings": emb,
            "outputs.last_hidden_state_0": last[0, :n0],  # [T0, 384], real tokens only
        },
        {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "sentences": json.dumps(MINILM_SENTENCES),
            "generator": GENERATOR,
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    torch.manual_seed(SEED)
    os.makedirs(FIXTURES, exist_ok=True)

    # 1. Self-check on a UNIFORM tiny config (every layer 4 heads, FFN 64) against HF.
    print("self-checks:")
    ucfg = TinyConfig(heads_per_layer=[4, 4], ffn_per_layer=[64, 64])
    g = torch.Generator().manual_seed(SEED + 1)
    uw = make_encoder_weights(ucfg, g)
    uw.update(linear_params(g, "classifier", 3, ucfg.hidden_size))
    uin = make_inputs(ucfg, g)
    uin["labels"] = torch.tensor([0, 2, 1])
    self_check_hf(ucfg, "classification", 3, uw, uin, "uniform [4,4]/[64,64] classification")
    self_check_ones(ucfg, "classification", uw, uin, "uniform")

    # 2. The fixture model (heterogeneous [4, 2] heads, [64, 40] FFN).
    cfg = TinyConfig()
    g = torch.Generator().manual_seed(SEED)
    enc = make_encoder_weights(cfg, g)
    cls_head = linear_params(g, "classifier", 3, cfg.hidden_size)
    reg_head = linear_params(g, "classifier", 1, cfg.hidden_size)
    qa_head = linear_params(g, "qa_outputs", 2, cfg.hidden_size)
    inputs = make_inputs(cfg, g)
    cls_labels = torch.randint(0, 3, (3,), generator=g)
    reg_labels = uniform(g, (3,), 0.0, 5.0)
    start_positions = torch.tensor([2, 1, 9])  # example 2: 9 > T = 7 -> clamped to T and ignored
    end_positions = torch.tensor([4, 3, 9])
    masks = make_masks(cfg, g)

    cls_w = {**enc, **cls_head}
    reg_w = {**enc, **reg_head}
    # Span: no pooler (HF BertForQuestionAnswering has add_pooling_layer=False).
    qa_w = {k: v for k, v in enc.items() if not k.startswith("bert.pooler.")}
    qa_w.update(qa_head)
    cls_in = {**inputs, "labels": cls_labels}
    reg_in = {**inputs, "labels": reg_labels}
    qa_in = {**inputs, "start_positions": start_positions, "end_positions": end_positions}

    # The heterogeneous reference (masks = None) against a reshaped HF model, for all three heads.
    self_check_hf(cfg, "classification", 3, cls_w, cls_in, "heterogeneous [4,2]/[64,40] classification")
    self_check_hf(cfg, "regression", 1, reg_w, reg_in, "heterogeneous regression")
    self_check_hf(cfg, "span", 2, qa_w, qa_in, "heterogeneous span")
    for task, w, i in (("classification", cls_w, cls_in), ("regression", reg_w, reg_in), ("span", qa_w, qa_in)):
        self_check_ones(cfg, task, w, i, f"heterogeneous {task}")

    reg_masks = dict(masks)
    reg_masks["layer.1.head_layer_z"] = torch.zeros(1)  # layer 1 MHA sublayer: identity
    reg_masks["layer.0.mlp_z"] = torch.zeros(1)  # layer 0 FFN sublayer: identity

    # The masked reference equals the folded and physically cut model (binary hidden_z), including the identity
    # edge cases: a layer gate of 0, and all heads / all FFN units of a layer at 0 with a non-zero layer gate.
    def binary_hidden(m):
        return {**m, "hidden_z": (m["hidden_z"] != 0).to(DT)}

    self_check_cut(cfg, enc, inputs, binary_hidden(masks), "cls/qa masks")
    self_check_cut(cfg, enc, inputs, binary_hidden(reg_masks), "reg masks (MHA 1 and FFN 0 gated off)")
    edge = binary_hidden(masks)
    edge["layer.0.head_z"] = torch.zeros(cfg.heads_per_layer[0])  # all heads 0, head_layer_z = 0.85
    edge["layer.1.intermediate_z"] = torch.zeros(cfg.ffn_per_layer[1])  # all units 0, mlp_z = 0.6
    self_check_cut(cfg, enc, inputs, edge, "all heads of layer 0 and all units of layer 1 at 0")

    print(f"writing fixtures into {os.path.relpath(FIXTURES, ROOT)}/:")
    tiny_fixture("tiny_cls_plain.safetensors", cfg, "classification", 3, cls_w, cls_in, None)
    tiny_fixture("tiny_cls_masked.safetensors", cfg, "classification", 3, cls_w, cls_in, masks)
    tiny_fixture("tiny_reg_masked.safetensors", cfg, "regression", 1, reg_w, reg_in, reg_masks)
    tiny_fixture("tiny_qa_masked.safetensors", cfg, "span", 2, qa_w, qa_in, masks)
    losses_fixture(torch.Generator().manual_seed(SEED + 2))
    minilm_fixture()

    total = sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in os.listdir(FIXTURES))
    print(f"total fixture size: {total} bytes")
    assert total < 1_000_000


if __name__ == "__main__":
    main()
