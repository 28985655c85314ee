#!/usr/bin/env python3
"""PyTorch peer for `cofi finetune`: fine-tunes a BERT checkpoint on a GLUE SST-2-format task with the trainer's
settings and reports seconds per epoch, examples/s and dev accuracy.

Needs the reference environment of `scripts/reference/requirements.txt` (torch 2.13.0+cpu, transformers 5.24):

    .venv-ref/bin/python scripts/peer_finetune.py --data DIR [--model .assets/all-MiniLM-L6-v2] [--epochs 1]
        [--max-steps N] [--lr 2e-5] [--batch-size 32] [--max-length 64] [--seed 57] [--threads 2] [--no-eval]

DIR holds `train.tsv` and `dev.tsv` with the header `sentence<TAB>label` (label 0 or 1), as GLUE SST-2 and the
built-in movie-snippets task write them.

The run (the settings `cofi finetune` uses, HF Trainer semantics):
  model      BertForSequenceClassification.from_pretrained(--model, num_labels=2); the classifier is initialised
             after torch.manual_seed(seed); train mode, so dropout 0.1 as in config.json
  data       BertTokenizerFast of the model, truncation to --max-length (64), no padding at tokenisation;
             batches of --batch-size (32) in a seeded random order (torch.Generator(seed), reshuffled every epoch,
             the last batch partial), each padded to its longest sequence (dynamic padding)
  optimiser  torch.optim.AdamW(lr --lr (2e-5), betas (0.9, 0.999), eps 1e-8, weight decay 0)
  schedule   get_linear_schedule_with_warmup(0 warm-up steps, total = epochs × batches per epoch, or --max-steps)
  each step  forward with labels (cross-entropy), backward, clip_grad_norm_(all parameters, 1.0), step, schedule
             step, zero_grad(set_to_none=True)
  threads    torch.set_num_threads(--threads) (2, the machine's cores)

Timing: `train_s` is the wall time of an epoch's training steps only (batch collation, forward, backward, clipping,
optimiser), `eval_s` that of the dev evaluation after it (eval mode, torch.inference_mode(), same batch size and
dynamic padding), both by time.perf_counter; tokenisation is timed once, apart. With --max-steps the run stops
after that many optimiser steps (a quick timing of a partial epoch; the schedule decays to 0 over those steps).

Output: progress and a summary as text on stderr, one JSON line per epoch on stdout:
  {"impl":"pytorch","model":...,"task_dir":...,"epoch":1,"steps":...,"examples":...,"train_s":...,
   "examples_per_s":...,"real_tokens":...,"padded_tokens":...,"mean_loss":...,"eval_s":...,"dev_accuracy":...,
   "dev_examples":...,"lr":...,"batch_size":...,"max_length":...,"seed":...,"threads":...}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_sst2(path: str) -> tuple[list[str], list[int]]:
    """A GLUE SST-2 file: header `sentence<TAB>label`, then one example a line (the label after the last tab)."""
    sentences, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header != ["sentence", "label"]:
            sys.exit(f"error: {path}:1: expected the header 'sentence<TAB>label', found {header}")
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if "\t" not in line:
                sys.exit(f"error: {path}:{n}: no tab (expected 'sentence<TAB>label')")
            text, label = line.rsplit("\t", 1)
            if label not in ("0", "1"):
                sys.exit(f"error: {path}:{n}: label {label!r} is not 0 or 1")
            sentences.append(text)
            labels.append(int(label))
    if not sentences:
        sys.exit(f"error: {path}: no examples")
    return sentences, labels


def collate(ids: list, labels: list, indices: list, pad_id: int) -> dict:
    """Pads the sequences of `indices` to the longest of them: input_ids, attention_mask, token_type_ids [B, T]."""
    T = max(len(ids[i]) for i in indices)
    B = len(indices)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    for row, i in enumerate(indices):
        n = len(ids[i])
        input_ids[row, :n] = torch.tensor(ids[i], dtype=torch.long)
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros((B, T), dtype=torch.long),  # single sentences: segment 0
        "labels": torch.tensor([labels[i] for i in indices], dtype=torch.long),
    }


def evaluate(model, ids: list, labels: list, batch_size: int, pad_id: int) -> float:
    """Dev accuracy in eval mode (no dropout), batches in file order."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            idx = list(range(start, min(start + batch_size, len(ids))))
            batch = collate(ids, labels, idx, pad_id)
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
    model.train()
    return correct / len(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with train.tsv and dev.tsv (GLUE SST-2 format)")
    ap.add_argument("--model", default=os.path.join(ROOT, ".assets", "all-MiniLM-L6-v2"), help="HF model directory")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=57)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50, help="progress line every N steps (0: none)")
    ap.add_argument("--no-eval", action="store_true", help="skip the dev evaluation")
    args = ap.parse_args()
    if args.epochs < 1 or args.batch_size < 1 or args.max_length < 2 or (args.max_steps is not None and args.max_steps < 1):
        sys.exit("error: --epochs, --batch-size and --max-steps must be positive, --max-length at least 2")
    if not math.isfinite(args.lr):
        sys.exit("error: --lr must be a finite number")
    for name in ("train.tsv", "dev.tsv"):
        if not os.path.isfile(os.path.join(args.data, name)):
            sys.exit(f"error: {os.path.join(args.data, name)}: no such file")

    from transformers import BertForSequenceClassification, BertTokenizerFast, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    train_x, train_y = read_sst2(os.path.join(args.data, "train.tsv"))
    dev_x, dev_y = read_sst2(os.path.join(args.data, "dev.tsv"))
    tok = BertTokenizerFast.from_pretrained(args.model)
    t0 = time.perf_counter()
    train_ids = tok(train_x, truncation=True, max_length=args.max_length)["input_ids"]
    dev_ids = tok(dev_x, truncation=True, max_length=args.max_length)["input_ids"]
    tokenize_s = time.perf_counter() - t0
    pad_id = tok.pad_token_id
    log(
        f"data {args.data}: train {len(train_ids)}, dev {len(dev_ids)} examples; tokenised to max length "
        f"{args.max_length} in {tokenize_s:.2f} s (mean train length {sum(map(len, train_ids)) / len(train_ids):.1f})"
    )

    torch.manual_seed(args.seed)
    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=2, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    batches_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total_steps = args.max_steps if args.max_steps is not None else args.epochs * batches_per_epoch
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=total_steps)
    gen = torch.Generator().manual_seed(args.seed)
    log(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
        f"{batches_per_epoch} batches of {args.batch_size} an epoch, {total_steps} steps, lr {args.lr:g}, "
        f"{args.threads} threads"
    )

    step = 0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train_ids), generator=gen).tolist()
        steps = examples = real_tokens = padded_tokens = 0
        loss_sum = 0.0
        t_epoch = time.perf_counter()
        for start in range(0, len(order), args.batch_size):
            if step >= total_steps:
                break
            idx = order[start : start + args.batch_size]
            batch = collate(train_ids, train_y, idx, pad_id)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            steps += 1
            examples += len(idx)
            real_tokens += int(batch["attention_mask"].sum())
            padded_tokens += batch["input_ids"].numel()
            loss_sum += loss.item()
            if args.log_every and steps % args.log_every == 0:
                el = time.perf_counter() - t_epoch
                log(
                    f"  epoch {epoch} step {steps}/{batches_per_epoch} loss {loss_sum / steps:.4f} "
                    f"lr {sched.get_last_lr()[0]:.3e} {examples / el:.1f} examples/s"
                )
        train_s = time.perf_counter() - t_epoch
        acc = eval_s = None
        if not args.no_eval:
            t_eval = time.perf_counter()
            acc = evaluate(model, dev_ids, dev_y, args.batch_size, pad_id)
            eval_s = time.perf_counter() - t_eval
        eval_text = "evaluation skipped" if acc is None else f"dev accuracy {acc:.4f} (eval {eval_s:.1f} s)"
        log(
            f"epoch {epoch}: {steps} steps, {examples} examples in {train_s:.1f} s "
            f"({examples / train_s:.1f} examples/s, {real_tokens / padded_tokens:.1%} of padded tokens real), "
            f"mean loss {loss_sum / max(steps, 1):.4f}; {eval_text}"
        )
        print(
            json.dumps(
                {
                    "impl": "pytorch",
                    "model": os.path.basename(os.path.normpath(args.model)),
                    "task_dir": args.data,
                    "epoch": epoch,
                    "steps": steps,
                    "examples": examples,
                    "train_s": round(train_s, 3),
                    "examples_per_s": round(examples / train_s, 2),
                    "real_tokens": real_tokens,
                    "padded_tokens": padded_tokens,
                    "mean_loss": round(loss_sum / max(steps, 1), 6),
                    "eval_s": None if eval_s is None else round(eval_s, 3),
                    "dev_accuracy": acc,
                    "dev_examples": len(dev_ids),
                    "tokenize_s": round(tokenize_s, 3),
                    "lr": args.lr,
                    "batch_size": args.batch_size,
                    "max_length": args.max_length,
                    "seed": args.seed,
                    "threads": args.threads,
                    "torch": torch.__version__,
                }
            ),
            flush=True,
        )
        if step >= total_steps:
            break


if __name__ == "__main__":
    main()
