#!/usr/bin/env python3
"""PyTorch peer for the pruning stage of `cofi prune`: CoFi pruning steps in PyTorch eager, timed, so that the
pruning throughput can be compared side by side on the same machine.

Needs the reference environment of `scripts/reference/requirements.txt` (torch 2.13.0+cpu, transformers 5.24):

    .venv-ref/bin/python scripts/peer_prune.py --data DIR --teacher TEACHER_DIR [--student DIR] [--max-steps N]
        [--target 0.9] [--batch-size 32] [--max-length 64] [--seed 57] [--threads 2]

DIR holds `train.tsv` in the GLUE SST-2 layout (`sentence<TAB>label`), as the built-in movie-snippets task writes it.
TEACHER_DIR is a fine-tuned `BertForSequenceClassification` (e.g. `runs/demo-14/teacher/best`); the student starts
from --student (default: the teacher, the README's recipe).

Each step is the computation of the reference's pruning step (cofi-spec §1-§5), what `cofi prune`'s pruning stage
does per step:
  masks      hard-concrete samples (β 2/3, l −0.1, r 1.1) of the five families: hidden dims [D], heads [L, H],
             attention layers [L], FFN units [L, I], FFN layers [L]; log α initialised as the reference does
             (mean log(1 − 0.5) − log 0.5 = 0, std 0.01)
  teacher    eval mode, no gradients, hidden states of every layer
  student    train mode (dropout 0.1) with the masks where CoFi applies them: the embeddings and every sublayer's
             output times z_hidden, each head's context times z_head, the attention output times z_MHA, each FFN
             unit after GELU times z_int, the FFN output times z_FFN; padding keys at −10000
  loss       α_ce·T²·KL(p_t ‖ p_s) (T = 2, α_ce 0.1) + α_layer·Σ_i MSE(W·H_s^{m(i)}, H_t^i) (α_layer 0.9, teacher
             layers ⌈k·L/4⌉, m(i) the student layer of least MSE, chosen every step as the reference's v4 mapping
             does, through the layer transformation W initialised to the identity) + λ1(ŝ − t) + λ2(ŝ − t)²
             with ŝ = 1 − E[size]/M from the gates' P(z ≠ 0)
  update     backward; clip the model's gradient norm to 1; AdamW on the model (lr 2e-5, embeddings frozen as in
             cofi) and the layer transformation, AdamW on log α (lr 0.01) and on λ (lr −0.01, ascent)
  batches    --batch-size in a seeded random order, each padded to its longest sequence (dynamic padding)

Output: progress on stderr; one JSON line on stdout:
  {"impl":"pytorch","workload":"prune_step","steps":...,"examples":...,"train_s":...,"examples_per_s":...,
   "real_tokens":...,"padded_tokens":...,"mean_loss":...,"batch_size":...,"max_length":...,"threads":...}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_finetune import collate, log, read_sst2  # noqa: E402

BETA, LIMIT_L, LIMIT_R = 2.0 / 3.0, -0.1, 1.1


def hard_concrete(log_alpha: torch.Tensor) -> torch.Tensor:
    u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA)
    return (s * (LIMIT_R - LIMIT_L) + LIMIT_L).clamp(0, 1)


def p_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(z ≠ 0) = 1 − CDF(0), clamped as the reference does."""
    x = math.log(-LIMIT_L / (LIMIT_R - LIMIT_L))
    cdf = torch.sigmoid(x * BETA - log_alpha).clamp(1e-6, 1 - 1e-6)
    return 1 - cdf


def masked_student(bert, classifier, batch, z, dropout_p: float):
    """The student's forward with CoFi's masks (train mode); returns logits and hidden states [emb, l1 … lL]."""
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    B, T = ids.shape
    cfg = bert.config
    H = cfg.num_attention_heads
    Dh = cfg.hidden_size // H
    zh = z["hidden"]
    emb = bert.embeddings
    pos = torch.arange(T).unsqueeze(0)
    x = emb.word_embeddings(ids) + emb.position_embeddings(pos) + emb.token_type_embeddings(types)
    x = emb.LayerNorm(x * zh)
    x = F.dropout(x, dropout_p, True) * zh
    states = [x]
    additive = (1.0 - mask[:, None, None, :].float()) * -10000.0
    for l, layer in enumerate(bert.encoder.layer):
        sa = layer.attention.self
        q = sa.query(x).view(B, T, H, Dh).transpose(1, 2)
        k = sa.key(x).view(B, T, H, Dh).transpose(1, 2)
        v = sa.value(x).view(B, T, H, Dh).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(Dh) + additive, dim=-1)
        ctx = F.dropout(p, dropout_p, True) @ v
        ctx = (ctx * z["heads"][l][None, :, None, None]).transpose(1, 2).reshape(B, T, H * Dh)
        a = layer.attention.output.dense(ctx) * z["mha"][l] * zh
        x = layer.attention.output.LayerNorm(F.dropout(a, dropout_p, True) + x) * zh
        u = F.gelu(layer.intermediate.dense(x)) * z["int"][l]
        f = layer.output.dense(u) * z["ffn"][l] * zh
        x = layer.output.LayerNorm(F.dropout(f, dropout_p, True) + x) * zh
        states.append(x)
    pooled = torch.tanh(bert.pooler.dense(x[:, 0]))
    return classifier(F.dropout(pooled, dropout_p, True)), states


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with train.tsv (GLUE SST-2 format)")
    ap.add_argument("--teacher", required=True, help="fine-tuned BertForSequenceClassification directory")
    ap.add_argument("--student", default=None, help="student's start (default: the teacher)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: one epoch)")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=57)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=25)
    args = ap.parse_args()
    if args.batch_size < 1 or args.max_length < 2 or (args.max_steps is not None and args.max_steps < 1):
        sys.exit("error: --batch-size and --max-steps must be positive, --max-length at least 2")
    if not 0 < args.target < 1:
        sys.exit("error: --target must lie strictly between 0 and 1")

    from transformers import BertForSequenceClassification, BertTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_x, train_y = read_sst2(os.path.join(args.data, "train.tsv"))
    tok = BertTokenizerFast.from_pretrained(args.teacher)
    train_ids = tok(train_x, truncation=True, max_length=args.max_length)["input_ids"]
    pad_id = tok.pad_token_id

    teacher = BertForSequenceClassification.from_pretrained(args.teacher, dtype=torch.float32).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = BertForSequenceClassification.from_pretrained(args.student or args.teacher, dtype=torch.float32).train()
    for p in student.bert.embeddings.parameters():
        p.requires_grad_(False)
    cfg = student.config
    L, H, D, I = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size, cfg.intermediate_size
    dropout_p = cfg.hidden_dropout_prob

    def gate(*shape):
        return torch.nn.Parameter(torch.randn(*shape) * 0.01)

    log_alpha = {"hidden": gate(D), "heads": gate(L, H), "mha": gate(L), "int": gate(L, I), "ffn": gate(L)}
    lambdas = torch.nn.Parameter(torch.zeros(2))
    transform = torch.nn.Linear(D, D)
    with torch.no_grad():
        transform.weight.copy_(torch.eye(D))
        transform.bias.zero_()
    model_params = [p for p in student.parameters() if p.requires_grad] + list(transform.parameters())
    opt_model = torch.optim.AdamW(model_params, lr=2e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    opt_gates = torch.optim.AdamW(list(log_alpha.values()), lr=0.01, weight_decay=0.0)
    opt_lambda = torch.optim.AdamW([lambdas], lr=0.01, weight_decay=0.0, maximize=True)
    teacher_layers = sorted({(k * L + 3) // 4 for k in range(1, 5)})
    head_size = 4 * D * (D // H) + D  # per head: Q, K, V rows and output columns, as the size model counts them
    unit_size = 2 * D
    full = L * (H * head_size + I * unit_size)

    def expected_sparsity() -> torch.Tensor:
        ph, pm = p_nonzero(log_alpha["heads"]), p_nonzero(log_alpha["mha"])
        pi, pf = p_nonzero(log_alpha["int"]), p_nonzero(log_alpha["ffn"])
        hid = p_nonzero(log_alpha["hidden"]).sum() / D
        size = hid * ((pm[:, None] * ph).sum() * head_size + (pf[:, None] * pi).sum() * unit_size)
        return 1 - size / full

    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_ids), generator=gen).tolist()
    total = math.ceil(len(order) / args.batch_size)
    steps_to_run = min(total, args.max_steps) if args.max_steps else total
    log(f"prune steps: {steps_to_run} of batch {args.batch_size}, teacher layers {teacher_layers}, "
        f"{args.threads} threads")
    examples = real = padded = 0
    loss_sum = 0.0
    t0 = time.perf_counter()
    for step in range(steps_to_run):
        idx = order[step * args.batch_size:(step + 1) * args.batch_size]
        batch = collate(train_ids, train_y, idx, pad_id)
        inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        with torch.no_grad():
            t_out = teacher(**inputs, output_hidden_states=True)
        z = {k: hard_concrete(v) for k, v in log_alpha.items()}
        logits, states = masked_student(student.bert, student.classifier, inputs, z, dropout_p)
        kl = F.kl_div(F.log_softmax(logits / 2, -1), F.softmax(t_out.logits / 2, -1), reduction="batchmean") * 4
        mapped = [transform(s) for s in states[1:]]
        pair = torch.stack([torch.stack([F.mse_loss(m, t_out.hidden_states[i]) for m in mapped])
                            for i in teacher_layers])
        choice = pair.detach().argmin(dim=1)
        layer_loss = sum(pair[r, c] for r, c in enumerate(choice.tolist()))
        gap = expected_sparsity() - args.target
        loss = 0.1 * kl + 0.9 * layer_loss + lambdas[0] * gap + lambdas[1] * gap * gap
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model_params, 1.0)
        for opt in (opt_model, opt_gates, opt_lambda):
            opt.step()
            opt.zero_grad(set_to_none=True)
        examples += len(idx)
        real += int(inputs["attention_mask"].sum())
        padded += inputs["input_ids"].numel()
        loss_sum += loss.item()
        if args.log_every and (step + 1) % args.log_every == 0:
            el = time.perf_counter() - t0
            log(f"  step {step + 1}/{steps_to_run} loss {loss_sum / (step + 1):.4f} ŝ {gap.item() + args.target:.3f} "
                f"{examples / el:.1f} examples/s")
    train_s = time.perf_counter() - t0
    log(f"{steps_to_run} pruning steps, {examples} examples in {train_s:.1f} s ({examples / train_s:.1f} examples/s, "
        f"{real / padded:.1%} of padded tokens real)")
    print(json.dumps({"impl": "pytorch", "workload": "prune_step", "steps": steps_to_run, "examples": examples,
                      "train_s": round(train_s, 3), "examples_per_s": round(examples / train_s, 2),
                      "real_tokens": real, "padded_tokens": padded, "mean_loss": round(loss_sum / steps_to_run, 6),
                      "batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads,
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
