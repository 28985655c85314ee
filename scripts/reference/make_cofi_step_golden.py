#!/usr/bin/env python3
"""Golden fixtures of ONE CoFi pruning step's objective (cofi-spec §1-§5, §11), into Tests/CoFiTests/Fixtures/.

Given log α of the gate families, uniform noise u per gate, λ1, λ2 and a target t, the float64 reference computes

    z      = hard-concrete(log α, u)                 (§2: clamp(sigmoid((ln u − ln(1−u) + log α)/β)·(r−l) + l, 0, 1))
    student forward with the masks z                 (§1, project rule: a sublayer whose layer gate is 0 OR whose
                                                      heads / FFN units are all 0 is the identity)
    teacher forward without masks
    L      = α_ce·KL_T(teacher ‖ student) + α_layer·L_layer(v4, fixed existence test)
             + λ1·(ŝ − t) + λ2·(ŝ − t)²              (ŝ = 1 − E[size]/M from log α, §3 with decision 1)

and the gradients of L w.r.t. every student weight, every log α, λ1, λ2 and the layer transformation.
The size model follows Sources/CoFi/SizeModel.swift for the student's DENSE shape: per head MHA_l/H_l (exact), per
FFN unit ⌊FFN_l/I_l⌋, M = Σ_l (MHA_l + FFN_l); with hidden pruning
E = Σ_d P(hid_d) · Σ_l [ (MHA_l/H_l)/d · P(mha_l)·Σ_h P(head) + 2·P(ffn_l)·Σ_i P(int) ], without it
E = Σ_l [ MHA_l/H_l · P(mha_l)·Σ_h P(head) + ⌊FFN_l/I_l⌋ · P(ffn_l)·Σ_i P(int) ]; P = 1 − clamp(CDF(0), ε, 1−ε).

The noise u is what the Swift `PruningObjective` draws at step 7 with seed 57 (Xoshiro256(maskSeed(57, 7)), one
float32 uniform per gate in creation order; ported below), so the Swift test can run the real objective type on the
fixture as well as the composed pieces. log α is then chosen from u so that z has the designed edge cases.

Cases (one file each, `cofi_step_<case>.safetensors`):

  all_families   every family (structured_heads+structured_mlp+hidden+layer), α_ce 0.1 / α_layer 0.9, a perturbed
                 layer transformation. The sample has: exact zeros and exact ones among heads, FFN units and hidden
                 dims; layer 2's MHA gate exactly 0 while its FFN gate is not (the layer exists only by the fixed
                 test P6, and v4 maps teacher layer 3 to it; the reference's MHA-only test would not: asserted);
                 every head of layer 3 exactly 0 under a non-zero MHA gate (identity by the project rule); layer 3's
                 FFN gate exactly 1 (the clamp is active: no gradient from z to its log α).
  no_hidden      the same design without the hidden family (structured_heads+structured_mlp+layer; the noise stream
                 then covers other gates): no hidden mask in the forward, the size model's no-hidden branch
                 (⌊FFN_l/I_l⌋ per unit), α_ce 0.3 / α_layer 0.7, the identity layer transformation, other λ and t.

Student: heterogeneous dense shape D = 16, d_h = 4, heads [4, 3, 4], FFN [32, 24, 32] (per-head counts are not
integers in layer 2 and the per-unit floor drops a fraction there), classification head (3 labels). Teacher: 4 layers
of 4 heads and FFN 32, other weights; distilled teacher layers [1, 2, 3, 4]. B = 3, T = 7 with padding, dropout off.

Every stored float input is rounded to float32 first; the computation is float64; the script asserts that no gate's
stretched value s̄ lies within 1e-3 of a clamp edge and that the v4 choices are separated by ≥ 1 %, so float32
cannot flip a zero, a clamp or a layer choice. Byte-for-byte reproducible (the writer of make_golden.py).

Run:  .venv-ref/bin/python scripts/reference/make_cofi_step_golden.py   (from the repository root)
Tensor names: scripts/reference/README.md.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import (TinyConfig, encoder_forward, f32_round, linear, make_encoder_weights,  # noqa: E402
                         make_inputs, normal, save_safetensors, store, linear_params)
from make_cofi_golden import existing_layers, kl_distill, layer_distillation, default_teacher_layers  # noqa: E402

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "CoFiTests", "Fixtures")
GENERATOR = "scripts/reference/make_cofi_step_golden.py"
SEED = 20240611
DT = torch.float64

# Hard-concrete constants (cofi-spec §2)
L_STRETCH, R_STRETCH, EPS, BETA = -0.1, 1.1, 1e-6, 2.0 / 3.0
XN = (0 - L_STRETCH) / (R_STRETCH - L_STRETCH)  # 1/12
ZERO_LOGIT = BETA * math.log(XN / (1 - XN))  # −β·ln 11

FAMILIES = ("head", "intermediate", "hidden", "mlp", "head_layer")  # the reference's creation order


# ---------------------------------------------------------------------------------------------------------------
# Gates and size model
# ---------------------------------------------------------------------------------------------------------------


def stretched(log_alpha, u):
    """s̄ = sigmoid((ln u − ln(1 − u) + log α)/β)·(r − l) + l, before the clamp."""
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA)
    return s * (R_STRETCH - L_STRETCH) + L_STRETCH


def hard_concrete(log_alpha, u):
    return stretched(log_alpha, u).clamp(0, 1)


def keep_probability(log_alpha):
    """P(z ≠ 0) = 1 − clamp(CDF(0), ε, 1 − ε), CDF(0) = sigmoid(β·ln(x_n/(1 − x_n)) − log α) (`cdf_qz`)."""
    return 1 - torch.sigmoid(ZERO_LOGIT - log_alpha).clamp(EPS, 1 - EPS)


def l0_name(family, layer):
    return f"l0.hidden_log_alpha" if layer is None else f"l0.layer.{layer}.{family}_log_alpha"


def mask_key(family, layer):
    return "hidden_z" if layer is None else f"layer.{layer}.{family}_z"


def gate_list(cfg, families):
    """(family, layer or None, count) of every present gate vector, in creation order (L0Module.gates)."""
    out = []
    L = cfg.num_layers
    if "head" in families:
        out += [("head", l, cfg.heads_per_layer[l]) for l in range(L) if cfg.heads_per_layer[l] > 0]
    if "intermediate" in families:
        out += [("intermediate", l, cfg.ffn_per_layer[l]) for l in range(L) if cfg.ffn_per_layer[l] > 0]
    if "hidden" in families:
        out.append(("hidden", None, cfg.hidden_size))
    if "mlp" in families:
        out += [("mlp", l, 1) for l in range(L) if cfg.ffn_per_layer[l] > 0]
    if "head_layer" in families:
        out += [("head_layer", l, 1) for l in range(L) if cfg.heads_per_layer[l] > 0]
    return out


def size_model(cfg, families, log_alpha):
    """(E[size], M, ŝ) as SizeModel.swift (see the docstring); `log_alpha` maps l0 names to tensors."""
    d, dh = cfg.hidden_size, cfg.head_dim

    def p(family, layer, n):
        name = l0_name(family, layer)
        if family in families and name in log_alpha:
            return keep_probability(log_alpha[name]).sum()
        return torch.tensor(float(n))

    hidden = "hidden" in families
    M, bracket = 0, torch.tensor(0.0)
    for l, (H, I) in enumerate(zip(cfg.heads_per_layer, cfg.ffn_per_layer)):
        mha = 4 * d * (H * dh) + 3 * H * dh + d if H > 0 else 0
        ffn = 2 * d * I + I + d if I > 0 else 0
        M += mha + ffn
        per_head = mha / H if H > 0 else 0.0
        per_unit = ffn // I if I > 0 else 0
        c_head = per_head / d if hidden else per_head
        c_unit = 2.0 if hidden else float(per_unit)
        bracket = bracket + c_head * p("head_layer", l, 1) * p("head", l, H) + c_unit * p("mlp", l, 1) * p(
            "intermediate", l, I)
    s_hid = p("hidden", None, d) if hidden else torch.tensor(1.0)
    size = s_hid * bracket
    return size, M, 1 - size / M


# ---------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------


# The Swift side's noise: PruningObjective draws step k's u from Xoshiro256(maskSeed(seed, k)), gate vector by gate
# vector in creation order, u = ε + (1 − 2ε)·nextUniform() in float32 (Sources/Tensor/RNG.swift,
# Sources/CoFi/HardConcrete.swift `noise`, Sources/CoFi/PruningObjective.swift `maskSeed`, Trainer.dropoutSeed).
MASK_SEED, MASK_STEP = 57, 7
U64 = (1 << 64) - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def mask_seed(seed, step):
    """PruningObjective.maskSeed = Trainer.dropoutSeed(seed ^ 0x5EED0FC0F16A7E, step)."""
    return (_mix((seed ^ 0x5EED0FC0F16A7E) ^ 0xD1B54A32D192ED03) + step) & U64


class Xoshiro256:
    """xoshiro256** seeded by splitmix64, as Sources/Tensor/RNG.swift."""

    def __init__(self, seed):
        sm, s = seed, []
        for _ in range(4):
            sm = (sm + 0x9E3779B97F4A7C15) & U64
            s.append(_mix(sm))
        self.s = s

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & U64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & U64, 7) * 9) & U64
        t = (s[1] << 17) & U64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def noise(self, n):
        """HardConcrete.noise: ε + (1 − 2ε)·u in float32 arithmetic, u = (next() >> 40) / 2^24."""
        eps = np.float32(EPS)
        width = np.float32(1) - np.float32(2) * eps
        out = [eps + width * (np.float32(self.next() >> 40) * np.float32(1.0 / 16777216.0)) for _ in range(n)]
        return torch.tensor(np.array(out, dtype=np.float32), dtype=DT)


def logit(x):
    return math.log(x) - math.log(1 - x)


def alpha_for(u, sbar):
    """The log α that puts the stretched value of noise u at `sbar` (−0.1 < sbar < 1.1)."""
    s = (sbar - L_STRETCH) / (R_STRETCH - L_STRETCH)
    return BETA * logit(s) - logit(u)


def make_log_alpha_and_noise(cfg, families, gen):
    """u for every gate as the Swift PruningObjective draws it at step MASK_STEP with seed MASK_SEED, and log α
    chosen from u so that z has the designed edge cases (see the docstring); the other gates are random: exactly 0
    (30 %), exactly 1 (25 %) or soft (stretched values at least 0.02 inside a clamp edge)."""
    rng = Xoshiro256(mask_seed(MASK_SEED, MASK_STEP))
    gates = gate_list(cfg, families)
    u = {l0_name(f, l): f32_round(rng.noise(n)) for f, l, n in gates}

    def draw(n, p_zero, p_one):
        kind = torch.rand(n, generator=gen, dtype=DT)
        soft = 0.05 + 0.9 * torch.rand(n, generator=gen, dtype=DT)
        zero = -0.095 + 0.07 * torch.rand(n, generator=gen, dtype=DT)
        one = 1.025 + 0.07 * torch.rand(n, generator=gen, dtype=DT)
        return torch.where(kind < p_zero, zero, torch.where(kind < p_zero + p_one, one, soft))

    sbar = {}
    for f, l, n in gates:
        sbar[l0_name(f, l)] = draw(n, 0.05, 0.6) if f == "hidden" else draw(n, 0.3, 0.25)
    design = {  # (family, layer): stretched values
        ("head_layer", 0): [0.9], ("mlp", 0): [0.75],
        ("head_layer", 1): [-0.05],  # exactly 0: MHA of layer 2 is the identity
        ("mlp", 1): [0.8],  # soft: layer 2 exists only by the fixed test
        ("head", 2): [-0.05, -0.08, -0.03, -0.06],  # all exactly 0 under a soft MHA gate
        ("head_layer", 2): [0.85],
        ("mlp", 2): [1.06],  # exactly 1 (clamp active)
        ("head", 0): [0.9, -0.05, 0.45, 1.05],  # soft, 0, soft, 1
    }
    for (f, l), v in design.items():
        if f in families:
            sbar[l0_name(f, l)] = torch.tensor(v, dtype=DT)
    if "hidden" in families:
        sbar[l0_name("hidden", None)][[3, 11]] = torch.tensor([-0.05, -0.07], dtype=DT)  # two dims exactly 0

    la = {}
    for name, target in sbar.items():
        a = torch.tensor([alpha_for(float(ui), float(si)) for ui, si in zip(u[name], target)], dtype=DT)
        assert a.abs().max() < 12, (name, a)  # keep CDF(0) away from its [ε, 1 − ε] clamp
        la[name] = f32_round(a)
        st = stretched(la[name], u[name])
        assert (torch.minimum(st.abs(), (st - 1).abs()) > 1e-3).all(), name  # float32 cannot flip a clamp
    return la, u


def check_design(z):
    """The edge cases the docstring promises."""
    assert z["layer.1.head_layer_z"].item() == 0 and z["layer.1.mlp_z"].item() != 0
    assert (z["layer.2.head_z"] == 0).all() and z["layer.2.head_layer_z"].item() != 0
    assert z["layer.2.mlp_z"].item() == 1
    for key in ("layer.0.head_z", "layer.0.intermediate_z", "layer.1.intermediate_z", "layer.2.intermediate_z"):
        v = z[key]
        assert (v == 0).any() and ((v > 0) & (v < 1)).any(), key
    assert any((z[k] == 1).any() for k in z if "intermediate" in k)
    if "hidden_z" in z:
        h = z["hidden_z"]
        assert 1 <= int((h == 0).sum()) <= 6 and (h == 1).any() and ((h > 0) & (h < 1)).any(), h


def check_v4_margins(layerwise, existing, alignment, label):
    """Each v4 choice beats every other candidate of its step by ≥ 1 %: float32 cannot flip it."""
    bound = layerwise.shape[1]
    for i in range(layerwise.shape[0] - 1, -1, -1):
        cands = [j for j in range(bound) if existing is None or bool(existing[j])]
        chosen = int(alignment[i])
        if cands:
            for j in cands:
                if j != chosen:
                    a, c = layerwise[i, chosen].item(), layerwise[i, j].item()
                    assert c - a >= 0.01 * c, f"{label}: teacher row {i}: layers {chosen} and {j} too close"
        bound = chosen


# ---------------------------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------------------------


def classify(w, h):
    """Pooler (token 0, tanh) and classifier on the last hidden state [B, T, D] → logits [B, C]."""
    return linear(torch.tanh(linear(h[:, 0], w, "bert.pooler.dense")), w, "classifier")


def step_fixture(name, *, cfg_s, cfg_t, families, w_s, w_t, inputs, log_alpha, noise, lam1, lam2, target,
                 alpha_ce, alpha_layer, W, b, temperature=2.0, expect_alignment=None,
                 expect_fixed_test_matters=None):
    gates = gate_list(cfg_s, families)
    lam1, lam2, target = (float(f32_round(torch.tensor(x))) for x in (lam1, lam2, target))  # as stored
    w = {k: v.clone().requires_grad_(True) for k, v in w_s.items()}
    la = {l0_name(f, l): log_alpha[l0_name(f, l)].clone().requires_grad_(True) for f, l, _ in gates}
    lam = [torch.tensor(lam1).requires_grad_(True), torch.tensor(lam2).requires_grad_(True)]
    Wv, bv = W.clone().requires_grad_(True), b.clone().requires_grad_(True)

    z = {mask_key(f, l): hard_concrete(la[l0_name(f, l)], noise[l0_name(f, l)]) for f, l, _ in gates}
    masks = dict(z)
    if "hidden_z" not in masks:  # no hidden family: a constant all-ones mask is the unmasked forward
        masks["hidden_z"] = torch.ones(cfg_s.hidden_size)
    check_design(z)

    ids, am, tt = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    hs_s = encoder_forward(cfg_s, w, ids, am, tt, masks)
    logits_s = classify(w, hs_s[-1])
    with torch.no_grad():
        hs_t = encoder_forward(cfg_t, w_t, ids, am, tt, None)
        logits_t = classify(w_t, hs_t[-1])

    pred = kl_distill(logits_s, logits_t, temperature)
    teacher_layers = default_teacher_layers(cfg_t.num_layers)
    mha_gates = torch.tensor([z[f"layer.{l}.head_layer_z"].item() for l in range(cfg_s.num_layers)])
    ffn_gates = torch.tensor([z[f"layer.{l}.mlp_z"].item() for l in range(cfg_s.num_layers)])
    existing = existing_layers(mha_gates, ffn_gates)
    layer_loss, alignment, layerwise = layer_distillation(hs_t, hs_s, Wv, bv, teacher_layers, 4, existing)
    check_v4_margins(layerwise, existing, alignment, name)
    if expect_alignment is not None:
        assert [a + 1 for a in alignment.tolist()] == expect_alignment, (name, alignment)
    buggy = layer_distillation(hs_t, hs_s, Wv, bv, teacher_layers, 4,
                               existing_layers(mha_gates, ffn_gates, fixed=False))[1]
    assert expect_fixed_test_matters is None or expect_fixed_test_matters == (not torch.equal(buggy, alignment)), name

    size, M, s_hat = size_model(cfg_s, families, la)
    gap = s_hat - target
    lagrangian = lam[0] * gap + lam[1] * gap ** 2
    distill = alpha_ce * pred + alpha_layer * layer_loss
    total = distill + lagrangian

    leaves = list(w.values()) + list(la.values()) + lam + [Wv, bv]
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]
    g_w = dict(zip(w.keys(), grads[: len(w)]))
    g_la = dict(zip(la.keys(), grads[len(w): len(w) + len(la)]))
    g_lam1, g_lam2, g_W, g_b = grads[len(w) + len(la):]

    t = {}
    for k, v in w_s.items():
        t[f"student.{k}"] = v
        t[f"grads.student.{k}"] = g_w[k]
    for k, v in w_t.items():
        t[f"teacher.{k}"] = v
    t.update({f"inputs.{k}": v for k, v in inputs.items()})
    for f, l, _ in gates:
        n = l0_name(f, l)
        t[n] = log_alpha[n]
        t[f"noise.{n}"] = noise[n]
        t[f"z.{n}"] = z[mask_key(f, l)]
        t[f"grads.{n}"] = g_la[n]
    t["l0.lambda_1"], t["l0.lambda_2"] = torch.tensor(lam1), torch.tensor(lam2)
    t["grads.l0.lambda_1"], t["grads.l0.lambda_2"] = g_lam1, g_lam2
    t["inputs.target_sparsity"] = torch.tensor(target)
    t["layer_transformation.weight"], t["layer_transformation.bias"] = W, b
    t["grads.layer_transformation.weight"], t["grads.layer_transformation.bias"] = g_W, g_b
    t["outputs.loss"] = total
    t["outputs.distillation_loss"] = distill
    t["outputs.prediction_loss"] = pred
    t["outputs.layer_loss"] = layer_loss
    t["outputs.lagrangian"] = lagrangian
    t["outputs.expected_size"] = size
    t["outputs.expected_sparsity"] = s_hat
    t["outputs.prunable_size"] = torch.tensor(M)
    t["outputs.layerwise_loss"] = layerwise
    t["outputs.alignment"] = alignment + 1
    t["outputs.student_logits"] = logits_s
    t["outputs.teacher_logits"] = logits_t

    def shape_of(c):
        return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "head_dim": c.head_dim,
                "heads_per_layer": list(c.heads_per_layer), "ffn_per_layer": list(c.ffn_per_layer),
                "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
                "layer_norm_eps": c.layer_norm_eps}

    config = {"mask_seed": MASK_SEED, "mask_step": MASK_STEP, "student": shape_of(cfg_s), "teacher": shape_of(cfg_t), "num_labels": 3,
              "families": [f for f in FAMILIES if f in families], "temperature": temperature, "alpha_ce": alpha_ce,
              "alpha_layer": alpha_layer, "version": 4, "teacher_layers": [i + 1 for i in teacher_layers]}
    meta = {"config": json.dumps(config, sort_keys=True), "generator": GENERATOR}
    path = os.path.join(FIXTURES, f"cofi_step_{name}.safetensors")
    stored = {k: store(v) for k, v in t.items()}
    save_safetensors(path, stored, meta)
    back = load_file(path)
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == meta
    zeros = sum(int((v == 0).sum()) for v in z.values())
    ones = sum(int((v == 1).sum()) for v in z.values())
    count = sum(v.numel() for v in z.values())
    print(f"  wrote cofi_step_{name}.safetensors: {len(t)} tensors, {os.path.getsize(path)} bytes")
    print(f"    loss {total.item():.9f} = {alpha_ce}·KL {pred.item():.6f} + {alpha_layer}·layer {layer_loss.item():.6f}"
          f" + L_c {lagrangian.item():.6f}; ŝ {s_hat.item():.6f} (E {size.item():.2f} of M {M}), t {target}")
    print(f"    z: {count} gates, {zeros} exactly 0, {ones} exactly 1; v4 mapping teacher "
          f"{[i + 1 for i in teacher_layers]} -> student {[a + 1 for a in alignment.tolist()]} "
          f"(reference's MHA-only existence test: {[a + 1 for a in buggy.tolist()]})")


def main() -> None:
    os.makedirs(FIXTURES, exist_ok=True)
    print(f"writing fixtures into {os.path.relpath(FIXTURES, ROOT)}/:")
    gen = torch.Generator().manual_seed(SEED)
    cfg_s = TinyConfig(vocab_size=40, hidden_size=16, head_dim=4, heads_per_layer=[4, 3, 4],
                       ffn_per_layer=[32, 24, 32], max_position_embeddings=8)
    cfg_t = TinyConfig(vocab_size=40, hidden_size=16, head_dim=4, heads_per_layer=[4, 4, 4, 4],
                       ffn_per_layer=[32, 32, 32, 32], max_position_embeddings=8)
    w_s = make_encoder_weights(cfg_s, gen)
    w_s.update(linear_params(gen, "classifier", 3, cfg_s.hidden_size))
    w_t = make_encoder_weights(cfg_t, gen)
    w_t.update(linear_params(gen, "classifier", 3, cfg_t.hidden_size))
    # Separate the layer losses: the output LayerNorm bias of student layer l moves by 0.6·l·v and that of teacher
    # layer i by 0.4·i·v (v = ±1 per dim), so ℓ[i, j] ≈ base + (0.4·i − 0.6·j)² and v4's choices are clear.
    v = torch.randint(0, 2, (cfg_s.hidden_size,), generator=gen).to(DT) * 2 - 1
    for l in range(cfg_s.num_layers):
        key = f"bert.encoder.layer.{l}.output.LayerNorm.bias"
        w_s[key] = f32_round(w_s[key] + 0.6 * l * v)
    for i in range(cfg_t.num_layers):
        key = f"bert.encoder.layer.{i}.output.LayerNorm.bias"
        w_t[key] = f32_round(w_t[key] + 0.4 * i * v)
    inputs = make_inputs(cfg_s, gen)
    D = cfg_s.hidden_size
    W = f32_round(torch.eye(D) + 0.1 * torch.randn(D, D, generator=gen, dtype=DT))
    b = normal(gen, (D,), 0.05)
    common = dict(cfg_s=cfg_s, cfg_t=cfg_t, w_s=w_s, w_t=w_t, inputs=inputs)
    every = set(FAMILIES)
    log_alpha, noise = make_log_alpha_and_noise(cfg_s, every, gen)
    step_fixture("all_families", families=every, log_alpha=log_alpha, noise=noise, lam1=0.7, lam2=1.3, target=0.5, alpha_ce=0.1,
                 alpha_layer=0.9, W=W, b=b, expect_alignment=[1, 1, 2, 3], expect_fixed_test_matters=True, **common)
    no_hidden = {"head", "intermediate", "mlp", "head_layer"}
    log_alpha, noise = make_log_alpha_and_noise(cfg_s, no_hidden, gen)
    step_fixture("no_hidden", families=no_hidden, log_alpha=log_alpha, noise=noise, lam1=-0.4, lam2=2.0,
                 target=0.3, alpha_ce=0.3, alpha_layer=0.7, W=torch.eye(D), b=torch.zeros(D),
                 expect_alignment=[1, 1, 2, 3], expect_fixed_test_matters=True, **common)

    names = [f for f in os.listdir(FIXTURES) if f.startswith("cofi_step_")]
    total = sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in names)
    print(f"cofi step fixtures: {len(names)} files, {total} bytes")
    assert total < 300_000


if __name__ == "__main__":
    main()
