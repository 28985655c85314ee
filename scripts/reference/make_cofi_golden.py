#!/usr/bin/env python3
"""Generate the golden fixtures that the Swift CoFi tests compare against, into Tests/CoFiTests/Fixtures/.

Distillation (cofi-spec §5), one file per case, `distillation_<case>.safetensors`:

  cls_v4          classification, mapping v4 with layer gates: student layer 2 has z_MHA = 0 but z_FFN != 0 (it
                  exists under the fixed test P6 and is chosen; the reference's z_MHA-only test would skip it),
                  layer 4 has both gates 0; default weights alpha_ce 0.1, alpha_layer 0.9
  cls_v4_nomask   the same inputs without masks (every layer is a candidate)
  cls_v3          the same inputs, mapping v3 (unordered argmin), alpha 0.5 / 0.5 plus label cross-entropy (0.3)
  span_v4_allpruned  span head (start/end KL averaged over all [B, T] positions) and every layer gate 0: the top
                  teacher layer has no candidate, so it maps to the last student layer (the reference would index
                  out of range; the project's documented handling)
  reg_v4_rect     regression head (MSE between predictions, P7) and a student narrower than the teacher
                  (D_s = 5, D_t = 6) with an explicit rectangular layer_transformation

The losses are a port of the reference `trainer/trainer.py` (`calculate_layer_distillation_loss` v3/v4 and the KL of
`calculate_distillation_loss`, with `trainer_qa.py`'s start/end average for spans), with three changes, each marked
below: the existence test is z_MHA != 0 OR z_FFN != 0 (P6), regression distils with MSE (P7), and the v4 search
starts below L_s + 1 instead of the hard-coded 12 and falls back to the last student layer when the top teacher
layer has no candidate. Ties never matter: the script asserts that every row of the layer-loss matrix separates its
entries by at least 1% (float32 rounding cannot flip a choice).

Computation in float64; every stored input is rounded to float32 first (f32_round), so the stored outputs belong
exactly to the stored inputs. Byte-for-byte reproducible (the writer of make_golden.py).

Run:  .venv-ref/bin/python scripts/reference/make_cofi_golden.py   (from the repository root; torch + safetensors)
Tensor names: scripts/reference/README.md.
"""

from __future__ import annotations

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import f32_round, save_safetensors, store  # noqa: E402  (also sets float64 as the default dtype)

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "CoFiTests", "Fixtures")
GENERATOR = "scripts/reference/make_cofi_golden.py"
SEED = 20240607
DT = torch.float64


# ---------------------------------------------------------------------------------------------------------------
# The reference losses (ported)
# ---------------------------------------------------------------------------------------------------------------


def default_teacher_layers(L: int) -> list:
    """0-based indices into the teacher's layer outputs: ceil(k*L/4) - 1, k = 1..4, repeats dropped."""
    out = []
    for k in range(1, 5):
        layer = math.ceil(k * L / 4)
        if layer >= 1 and (not out or out[-1] != layer - 1):
            out.append(layer - 1)
    return out


def existing_layers(head_layer_z, mlp_z, fixed: bool = True):
    """Which student layers exist in the sample. Reference: head_layer_z != 0. P6 fix: MHA OR FFN gate != 0."""
    if head_layer_z is None:
        return None
    if fixed:
        return (head_layer_z != 0) | (mlp_z != 0)
    return head_layer_z != 0


def layer_distillation(teacher_hidden, student_hidden, W, b, specified_teacher_layers, version, existing):
    """`calculate_layer_distillation_loss` for v3/v4. Hidden states: lists [embeddings, layer 1..L] of [B, T, D].

    Returns (layer_loss, alignment (0-based student layers), layerwiseloss [|T|, L_s])."""
    teacher_layer_output = teacher_hidden[1:]
    student_layer_output = student_hidden[1:]
    n_student = len(student_layer_output)
    transformed_s_layer_o = [F.linear(s, W, b) for s in student_layer_output]
    specified_teacher_layer_reps = [teacher_layer_output[i] for i in specified_teacher_layers]
    l = []
    for t_layer_o in specified_teacher_layer_reps:
        for s_layer_o in transformed_s_layer_o:
            l.append(F.mse_loss(t_layer_o, s_layer_o))  # mean over B*T*D, padding included
    layerwiseloss = torch.stack(l).reshape(len(specified_teacher_layer_reps), n_student)

    if version == 3:
        alignment = torch.argmin(layerwiseloss, dim=1)
    elif version == 4:
        last_aligned_layer = n_student  # CHANGE: the reference hard-codes 12 (BERT-base)
        alignment = []
        for search_index in range(len(specified_teacher_layers) - 1, -1, -1):
            indexes = layerwiseloss[search_index].sort(stable=True)[1]
            if existing is not None:
                align = indexes[(indexes < last_aligned_layer) & existing[indexes]]
            else:
                align = indexes[indexes < last_aligned_layer]
            if len(align) > 0:
                align = int(align[0])
            else:
                # CHANGE: with no candidate for the top teacher layer the reference keeps 12 (out of range); the
                # project maps it to the last student layer.
                align = min(last_aligned_layer, n_student - 1)
            alignment.append(align)
            last_aligned_layer = align
        alignment.reverse()
        alignment = torch.tensor(alignment)
    else:
        raise ValueError(version)
    layerwise = torch.arange(len(specified_teacher_layers))
    return layerwiseloss[layerwise, alignment].sum(), alignment, layerwiseloss


def kl_distill(student, teacher, T):
    """F.kl_div(log_softmax(s/T), softmax(t/T), 'batchmean') * T^2, as calculate_distillation_loss."""
    return F.kl_div(F.log_softmax(student / T, dim=-1), F.softmax(teacher / T, dim=-1), reduction="batchmean") * T * T


def prediction_distillation(head, s, t, T):
    if head == "classification":
        return kl_distill(s["logits"], t["logits"], T)
    if head == "regression":  # CHANGE (P7): the softmax KL of one output is identically 0
        return F.mse_loss(s["logits"], t["logits"])
    # span (trainer_qa.py): the average of the start and end KLs over all positions
    return (kl_distill(s["start_logits"], t["start_logits"], T) + kl_distill(s["end_logits"], t["end_logits"], T)) / 2


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


def normal(gen, shape, std=1.0):
    return std * torch.randn(*shape, generator=gen, dtype=DT)


def make_case(gen, *, B, T, Ds, Dt, Ls, Lt, sources, noise):
    """Teacher hidden states follow a random walk over the layers (distances grow with the layer gap); student
    layer j is built so that W·H_s^j + b ≈ H_t^{sources[j-1]} (1-based), with a little noise."""
    teacher = [normal(gen, (B, T, Dt))]
    for _ in range(Lt):
        teacher.append(teacher[-1] + 0.6 * normal(gen, (B, T, Dt)))
    teacher = [f32_round(h) for h in teacher]
    W = f32_round(torch.eye(Dt, Ds) + 0.3 / math.sqrt(Ds) * normal(gen, (Dt, Ds)))
    b = f32_round(0.1 * normal(gen, (Dt,)))
    pinv = torch.linalg.pinv(W)
    student = [f32_round(normal(gen, (B, T, Ds)))]
    for j in range(1, Ls + 1):
        target = teacher[sources[j - 1]] - b
        student.append(f32_round(target @ pinv.T + noise * normal(gen, (B, T, Ds))))
    return teacher, student, W, b


def check_margins(layerwiseloss, label):
    """Every row's entries differ pairwise by >= 1% of the larger: no choice can flip in float32."""
    for r, row in enumerate(layerwiseloss.tolist()):
        s = sorted(row)
        for a, c in zip(s, s[1:]):
            assert c - a >= 0.01 * c, f"{label}: teacher row {r} has near-equal layer losses {a} and {c}"


# ---------------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------------


def write(name, tensors, metadata):
    path = os.path.join(FIXTURES, name)
    stored = {k: store(v) for k, v in tensors.items()}
    save_safetensors(path, stored, metadata)
    back = load_file(path)
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == metadata
    print(f"  wrote {name}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def distillation_fixture(name, *, head, version, teacher, student, W, b, s_out, t_out, head_layer_z=None,
                         mlp_z=None, labels=None, temperature=2.0, alpha_ce=0.1, alpha_layer=0.9, alpha_label=0.0,
                         expect_alignment=None, expect_buggy_alignment=None):
    Lt, Ls = len(teacher) - 1, len(student) - 1
    teacher_layers = default_teacher_layers(Lt)
    student = [h.clone().requires_grad_(True) for h in student]
    W = W.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    s_out = {k: v.clone().requires_grad_(True) for k, v in s_out.items()}

    existing = existing_layers(head_layer_z, mlp_z)
    layer_loss, alignment, layerwiseloss = layer_distillation(teacher, student, W, b, teacher_layers, version,
                                                              existing)
    check_margins(layerwiseloss, name)
    if expect_alignment is not None:
        assert [a + 1 for a in alignment.tolist()] == expect_alignment, (name, alignment)
    if expect_buggy_alignment is not None:  # the case distinguishes the fixed existence test from the reference's
        buggy = layer_distillation(teacher, student, W, b, teacher_layers, version,
                                   existing_layers(head_layer_z, mlp_z, fixed=False))[1]
        assert [a + 1 for a in buggy.tolist()] == expect_buggy_alignment, (name, buggy)
        assert not torch.equal(buggy, alignment)

    pred = prediction_distillation(head, s_out, t_out, temperature)
    total = alpha_ce * pred + alpha_layer * layer_loss
    label_loss = None
    if alpha_label:
        label_loss = F.cross_entropy(s_out["logits"], labels)
        total = total + alpha_label * label_loss

    wrt = student + [W, b] + list(s_out.values())
    grads = torch.autograd.grad(total, wrt, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(wrt, grads)]

    t = {}
    for j, h in enumerate(student):
        t[f"inputs.student_hidden.{j}"] = h
        t[f"grads.student_hidden.{j}"] = grads[j]
    for i, h in enumerate(teacher):
        t[f"inputs.teacher_hidden.{i}"] = h
    t["inputs.layer_transformation.weight"] = W
    t["inputs.layer_transformation.bias"] = b
    t["grads.layer_transformation.weight"] = grads[len(student)]
    t["grads.layer_transformation.bias"] = grads[len(student) + 1]
    for (k, v), g in zip(s_out.items(), grads[len(student) + 2:]):
        t[f"inputs.student_{k}"] = v
        t[f"grads.student_{k}"] = g
    for k, v in t_out.items():
        t[f"inputs.teacher_{k}"] = v
    if head_layer_z is not None:
        t["inputs.head_layer_z"] = head_layer_z
        t["inputs.mlp_z"] = mlp_z
    if labels is not None:
        t["inputs.labels"] = labels
    t["outputs.loss"] = total
    t["outputs.prediction_loss"] = pred
    t["outputs.layer_loss"] = layer_loss
    if label_loss is not None:
        t["outputs.label_loss"] = label_loss
    t["outputs.layerwise_loss"] = layerwiseloss
    t["outputs.alignment"] = alignment + 1  # 1-based student layers
    t["outputs.teacher_layers"] = torch.tensor(teacher_layers) + 1  # 1-based teacher layers

    config = {"head": head, "version": version, "temperature": temperature, "alpha_ce": alpha_ce,
              "alpha_layer": alpha_layer, "alpha_label": alpha_label, "masked": head_layer_z is not None}
    write(f"distillation_{name}.safetensors", t, {"config": json.dumps(config, sort_keys=True), "generator": GENERATOR})
    print(f"    {name}: loss {total.item():.9f} (pred {pred.item():.6f}, layer {layer_loss.item():.6f}), "
          f"teacher layers {[i + 1 for i in teacher_layers]} -> student {[a + 1 for a in alignment.tolist()]}")


def main() -> None:
    os.makedirs(FIXTURES, exist_ok=True)
    print(f"writing fixtures into {os.path.relpath(FIXTURES, ROOT)}/:")
    B, T, D, Ls, Lt, C = 2, 5, 6, 4, 6, 3
    gen = torch.Generator().manual_seed(SEED)

    # Student layers 1..4 imitate teacher layers 2, 5, 3, 6 (1-based). Teacher layers distilled: 2, 3, 5, 6.
    teacher, student, W, b = make_case(gen, B=B, T=T, Ds=D, Dt=D, Ls=Ls, Lt=Lt, sources=[2, 5, 3, 6], noise=0.05)
    cls_s = {"logits": f32_round(1.5 * normal(gen, (B, C)))}
    cls_t = {"logits": f32_round(1.5 * normal(gen, (B, C)))}
    labels = torch.tensor([2, 0])
    # Layer 2: z_MHA = 0, z_FFN = 0.7 -> exists (fixed test); layer 4: both 0 -> gone.
    head_layer_z = f32_round(torch.tensor([0.8, 0.0, 0.6, 0.0]))
    mlp_z = f32_round(torch.tensor([0.5, 0.7, 0.0, 0.0]))
    common = dict(teacher=teacher, student=student, W=W, b=b, s_out=cls_s, t_out=cls_t)
    distillation_fixture("cls_v4", head="classification", version=4, head_layer_z=head_layer_z, mlp_z=mlp_z,
                         expect_alignment=[1, 1, 1, 2], expect_buggy_alignment=[1, 1, 1, 3], **common)
    distillation_fixture("cls_v4_nomask", head="classification", version=4, expect_alignment=[1, 1, 2, 4], **common)
    distillation_fixture("cls_v3", head="classification", version=3, labels=labels, alpha_ce=0.5, alpha_layer=0.5,
                         alpha_label=0.3, expect_alignment=[1, 3, 2, 4], **common)

    span_s = {"start_logits": f32_round(2 * normal(gen, (B, T))), "end_logits": f32_round(2 * normal(gen, (B, T)))}
    span_t = {"start_logits": f32_round(2 * normal(gen, (B, T))), "end_logits": f32_round(2 * normal(gen, (B, T)))}
    zeros = torch.zeros(Ls)
    distillation_fixture("span_v4_allpruned", head="span", version=4, teacher=teacher, student=student, W=W, b=b,
                         s_out=span_s, t_out=span_t, head_layer_z=zeros, mlp_z=zeros, expect_alignment=[4, 4, 4, 4])

    teacher_r, student_r, W_r, b_r = make_case(gen, B=B, T=T, Ds=5, Dt=D, Ls=3, Lt=Lt, sources=[2, 5, 6], noise=0.05)
    reg_s = {"logits": f32_round(normal(gen, (B, 1)))}
    reg_t = {"logits": f32_round(normal(gen, (B, 1)))}
    distillation_fixture("reg_v4_rect", head="regression", version=4, teacher=teacher_r, student=student_r, W=W_r,
                         b=b_r, s_out=reg_s, t_out=reg_t, expect_alignment=[1, 1, 2, 3])

    names = [f for f in os.listdir(FIXTURES) if f.startswith("distillation_")]
    total = sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in names)
    print(f"distillation fixtures: {len(names)} files, {total} bytes")
    assert total < 300_000


if __name__ == "__main__":
    main()
