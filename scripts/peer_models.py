"""Models for the peer harnesses (`peer_bench.py`, `peer_runtime.py`): the named random-init shapes of
`../shared/BASELINES.md` and the model directories cofi writes (dense fine-tuned checkpoints and the compact
models of `cofi prune`), as transformers `BertForSequenceClassification` modules with every layer its own shape.

Named shapes (random init after `torch.manual_seed(0)`, 2 labels, vocab 30,522, max positions 512):
  bert-base   12 layers, hidden 768, 12 heads of 64, FFN 3072
  minilm-l6   6 layers, hidden 384, 12 heads of 32, FFN 1536
  cofi-s95    BERT-base cut physically: layer l keeps its first heads[l] heads (the query/key/value rows and
              output.dense columns of those heads, what `prune_heads` did in transformers 4.x, which transformers 5
              no longer has) and its first ffn[l] FFN units (narrower intermediate.dense / output.dense)

A model directory (config.json + model.safetensors) is loaded from its own tensors: a dense one with
`from_pretrained`, a compact one (config.json has a `cofi` block, Sources/CoFi/CompactFormat.swift) by building
each module at the size of its tensors — the kept hidden width D' for embeddings, every LayerNorm and residual,
heads × head_dim for attention, the kept FFN units, the pooler's own [out, D'] — and loading the state dict
strictly (every tensor used, every parameter given).

Identity rule (cofi-spec decision 5): a layer with 0 heads gets an identity attention and one with FFN width 0 an
identity feed-forward chunk: the sublayer is skipped, LayerNorm included. In a compact directory such a sublayer
has no tensors at all.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

VOCAB = 30522
MODELS = {
    # name: (hidden, head_dim, heads per layer, FFN width per layer)
    "bert-base": (768, 64, [12] * 12, [3072] * 12),
    "minilm-l6": (384, 32, [12] * 6, [1536] * 6),
    "cofi-s95": (768, 64, [2, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0], [300, 260, 240, 220, 200, 200, 180, 150, 120, 100, 30, 0]),
}


def forward_flops(hidden: int, head_dim: int, heads: list, ffn: list, tokens: int) -> float:
    """Encoder forward FLOPs for one sequence: the same formula as BertShape.forwardFLOPs(tokens:)."""
    f, d, t = 0.0, float(hidden), float(tokens)
    for h, i in zip(heads, ffn):
        hd = float(h * head_dim)
        f += 2 * t * d * hd * 4 + 2 * 2 * t * t * hd
        f += 2 * t * d * float(i) * 2
    return f


class IdentityAttention(nn.Module):
    """Stands in for BertAttention in a layer with no heads left: returns its input, no LayerNorm."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states, None


def _identity(x):
    return x


def make_identity_ffn(layer) -> None:
    """A BertLayer with no FFN units left: the feed-forward chunk returns its input, no LayerNorm."""
    del layer.intermediate, layer.output
    layer.feed_forward_chunk = _identity  # instance attribute shadows the method


def set_attention_heads(self_attention, heads: int, head_dim: int) -> None:
    """Makes a BertSelfAttention compute `heads` heads of `head_dim` (its query/key/value set apart)."""
    self_attention.num_attention_heads = heads
    self_attention.attention_head_size = head_dim
    self_attention.all_head_size = heads * head_dim
    self_attention.scaling = head_dim**-0.5


def cut_linear_rows(lin: nn.Linear, rows: int) -> nn.Linear:
    """A Linear keeping the first `rows` outputs of `lin`."""
    new = nn.Linear(lin.in_features, rows)
    with torch.no_grad():
        new.weight.copy_(lin.weight[:rows])
        new.bias.copy_(lin.bias[:rows])
    return new


def cut_linear_cols(lin: nn.Linear, cols: int) -> nn.Linear:
    """A Linear keeping the first `cols` inputs of `lin`."""
    new = nn.Linear(cols, lin.out_features)
    with torch.no_grad():
        new.weight.copy_(lin.weight[:, :cols])
        new.bias.copy_(lin.bias)
    return new


def shape_of(name: str) -> dict:
    """The shape of a named model: hidden, head_dim, heads and FFN width per layer."""
    hidden, head_dim, heads, ffn = MODELS[name]
    return {"hidden": hidden, "head_dim": head_dim, "heads": list(heads), "ffn": list(ffn)}


def build_model(name: str):
    """A random-init named shape (`MODELS`) and its encoder forward FLOPs for one 128-token sequence."""
    from transformers import BertConfig, BertForSequenceClassification

    hidden, head_dim, heads, ffn = MODELS[name]
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=len(heads),
        num_attention_heads=hidden // head_dim,
        intermediate_size=max(ffn) if name != "cofi-s95" else 3072,
        max_position_embeddings=512,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    dense_heads = hidden // head_dim
    for l, (h, i) in enumerate(zip(heads, ffn)):
        layer = model.bert.encoder.layer[l]
        if h == 0:
            layer.attention = IdentityAttention()
        elif h < dense_heads:
            sa = layer.attention.self
            n = h * head_dim
            sa.query, sa.key, sa.value = (cut_linear_rows(x, n) for x in (sa.query, sa.key, sa.value))
            sa.num_attention_heads, sa.all_head_size = h, n
            layer.attention.output.dense = cut_linear_cols(layer.attention.output.dense, n)
        if i == 0:
            make_identity_ffn(layer)
        elif i < layer.intermediate.dense.out_features:
            layer.intermediate.dense = cut_linear_rows(layer.intermediate.dense, i)
            layer.output.dense = cut_linear_cols(layer.output.dense, i)
    return model, forward_flops(hidden, head_dim, heads, ffn, 128)


def _read_tensor_shapes(path: str) -> dict:
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


def load_model_dir(path: str):
    """The BertForSequenceClassification of a model directory (dense or compact, see the module doc), in eval
    mode, and its shape (hidden = D', head_dim, heads and FFN width per layer, `compact`: whether it has a `cofi`
    block). Raises ValueError naming the file and tensor when the directory is not a BERT classifier."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    cfg_path, st_path = os.path.join(path, "config.json"), os.path.join(path, "model.safetensors")
    for p in (cfg_path, st_path):
        if not os.path.isfile(p):
            raise ValueError(f"{p}: no such file (a model directory holds config.json and model.safetensors)")
    with open(cfg_path, encoding="utf-8") as f:
        raw = json.load(f)
    layout = raw.pop("cofi", None)
    shapes = _read_tensor_shapes(st_path)
    prefix = "bert." if any(k.startswith("bert.") for k in shapes) else ""
    if "classifier.weight" not in shapes:
        raise ValueError(f"{st_path}: no classifier.weight (not a sequence classification checkpoint)")
    cfg = BertConfig(**raw)
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    hidden = shapes[f"{prefix}embeddings.word_embeddings.weight"][1]
    heads, ffn = [], []
    for l in range(cfg.num_hidden_layers):
        at = f"{prefix}encoder.layer.{l}."
        o = shapes.get(at + "attention.output.dense.weight")
        heads.append(0 if o is None else o[1] // head_dim)
        w = shapes.get(at + "output.dense.weight")
        ffn.append(0 if w is None else w[1])
    shape = {"hidden": hidden, "head_dim": head_dim, "heads": heads, "ffn": ffn, "compact": layout is not None}
    if layout is not None:
        kept = ([x["num_heads"] for x in layout["layers"]], [x["ffn_width"] for x in layout["layers"]])
        if layout["hidden_size"] != hidden or kept != (heads, ffn):
            raise ValueError(
                f"{cfg_path}: the cofi block (hidden {layout['hidden_size']}, heads {kept[0]}, FFN {kept[1]}) "
                f"disagrees with the tensors (hidden {hidden}, heads {heads}, FFN {ffn})"
            )

    dense = (
        hidden == cfg.hidden_size
        and all(h == cfg.num_attention_heads for h in heads)
        and all(i == cfg.intermediate_size for i in ffn)
    )
    if dense:
        model = BertForSequenceClassification.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        return model.eval(), shape

    # Compact: build at the kept hidden width (one head per layer at build time, so any D' divides), then give
    # every sublayer the size of its tensors.
    small = BertConfig(**{**raw, "hidden_size": hidden, "num_attention_heads": 1})
    model = BertForSequenceClassification(small)
    for l, (h, i) in enumerate(zip(heads, ffn)):
        layer = model.bert.encoder.layer[l]
        if h == 0:
            layer.attention = IdentityAttention()
        else:
            sa = layer.attention.self
            set_attention_heads(sa, h, head_dim)
            sa.query, sa.key, sa.value = (nn.Linear(hidden, h * head_dim) for _ in range(3))
            layer.attention.output.dense = nn.Linear(h * head_dim, hidden)
        if i == 0:
            make_identity_ffn(layer)
        else:
            layer.intermediate.dense = nn.Linear(hidden, i)
            layer.output.dense = nn.Linear(i, hidden)
    pooler = shapes.get(f"{prefix}pooler.dense.weight")
    if pooler is not None:
        model.bert.pooler.dense = nn.Linear(pooler[1], pooler[0])
    c = shapes["classifier.weight"]
    model.classifier = nn.Linear(c[1], c[0])
    state = load_file(st_path)
    if not prefix:
        state = {("classifier." + k[len("classifier."):]) if k.startswith("classifier.") else "bert." + k: v
                 for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids-style buffers are not in checkpoints; every parameter must be.
    params = {n for n, _ in model.named_parameters()}
    missing = [k for k in missing if k in params]
    if missing or unexpected:
        raise ValueError(f"{st_path}: missing tensors {missing}, unexpected tensors {unexpected}")
    return model.eval(), shape


def compact_block(name: str, cfg: dict):
    """The `cofi` block of config.json (format 1, Sources/BERT/CompactLayout.swift) for a named shape cut from its
    dense config: the first heads, FFN units and hidden dims kept, with the parameter counts of cofi-spec §3 — what
    cofi requires of a directory whose tensors are narrower than its config. None for a dense shape."""
    hidden, head_dim, heads, ffn = MODELS[name]
    dense_heads, dense_ffn = cfg["num_attention_heads"], cfg["intermediate_size"]
    if all(h == dense_heads for h in heads) and all(i == dense_ffn for i in ffn):
        return None

    def attention(h: int) -> int:
        hd = h * head_dim
        return 0 if hd == 0 else 4 * hidden * hd + 3 * hd + hidden

    def feed_forward(i: int) -> int:
        return 0 if i == 0 else 2 * hidden * i + i + hidden

    prunable = sum(attention(h) + feed_forward(i) for h, i in zip(heads, ffn))
    original = len(heads) * (attention(dense_heads) + feed_forward(dense_ffn))
    encoder = sum(attention(h) + (2 * hidden if h else 0) + feed_forward(i) + (2 * hidden if i else 0)
                  for h, i in zip(heads, ffn))
    return {
        "format_version": 1,
        "original_hidden_size": hidden,
        "original_num_attention_heads": dense_heads,
        "original_intermediate_size": dense_ffn,
        "head_dim": head_dim,
        "hidden_size": hidden,
        "kept_hidden_indices": list(range(hidden)),
        "layers": [{"num_heads": h, "kept_heads": list(range(h)), "ffn_width": i, "kept_ffn_units": list(range(i))}
                   for h, i in zip(heads, ffn)],
        "encoder_parameters": encoder,
        "prunable_parameters": prunable,
        "original_prunable_parameters": original,
        "sparsity": 1 - prunable / original,
        "source": {"note": f"the named random-init shape {name} of scripts/peer_models.py"},
    }


def save_named_model_dir(name: str, out_dir: str, tokenizer_dir: str) -> str:
    """Writes the named random-init shape `name` as a model directory that both cofi and `load_model_dir` read:
    config.json (the dense BERT fields, as a cofi compact directory keeps them, and for a cut shape the `cofi` block
    that says so), model.safetensors (the state dict
    under its transformers names; a sublayer with nothing left has no tensors) and the tokenizer files of
    `tokenizer_dir`. Returns `out_dir`. The same weights on every side make the timings comparable."""
    import shutil

    from safetensors.torch import save_file

    model, _ = build_model(name)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg["architectures"] = ["BertForSequenceClassification"]
    block = compact_block(name, cfg)
    if block is not None:
        cfg["cofi"] = block
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    for file in ("vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        src = os.path.join(tokenizer_dir, file)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(out_dir, file))
    return out_dir


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Write a named random-init shape as a model directory.")
    p.add_argument("name", choices=sorted(MODELS))
    p.add_argument("out_dir")
    p.add_argument("--tokenizer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".assets",
                                                         "all-MiniLM-L6-v2"))
    a = p.parse_args()
    print(save_named_model_dir(a.name, a.out_dir, a.tokenizer))
