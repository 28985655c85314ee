#!/usr/bin/env python3
"""Golden fixture for the Swift SQuAD code (Sources/Tasks/SQuAD): features, post-processing and EM/F1.

Reads the hand-written SQuAD-format files Tests/TasksTests/Fixtures/squad_v1_sample.json (v1.1 layout, raw UTF-8)
and squad_v2_sample.json (v2.0 layout, ASCII with \\u escapes) and writes Tests/TasksTests/Fixtures/squad_golden.json
with, for each file:

  features      Hugging Face `run_qa.py` (transformers 4.17, the version CoFi used) feature building with
                `BertTokenizerFast.from_pretrained(".assets/all-MiniLM-L6-v2")`: `prepare_train_features` (start and
                end positions) and `prepare_validation_features` (example ids, offsets of context tokens, None
                elsewhere), both copied below, at max_length 384 / stride 128 and at max_length 64 / stride 16
                (many windows and boundary cases on small files; to keep the file small, only the questions whose
                context has at most 300 tokens, listed in `example_ids`). Padding is "max_length"; to keep the
                file small each feature stores only its real tokens (`input_ids`, `token_type_ids`), and its
                offsets as `context_start` (index of the first context token) and `context_offsets` (flat
                [start, end, start, end, ...] of the context tokens, in characters = Python str indices); the
                script asserts that the context tokens are contiguous, that every other offset is None, that
                every padded position is id 0, type 0, mask 0 and that the mask is 1 on every real token.
  postprocess   `postprocess_qa_predictions` of transformers' `examples/pytorch/question-answering/utils_qa.py`
                (copied below, unchanged in behaviour) on the 64/16 features with fixed pseudo-random logits:
                float32 values k / 16 for integers k drawn with a seeded numpy generator (distinct within a row, so
                numpy's unstable argsort has no ties to order), some rows nudged towards the gold span, a shifted
                span or [CLS] so that predictions hit, half-hit and miss. Stored: the integer logits, the
                predictions, the n-best lists (text, start/end logit, probability) and, for v2.0, the null-score
                differences; v2.0 is run at thresholds 0.0 and 1.5.
  metrics       EM/F1 of those predictions by the official SQuAD evaluation logic (evaluate-v1.1.py for the v1.1
                file, evaluate-v2.0.py for the v2.0 file, both copied below).

plus `normalize` (official `normalize_answer` on tricky strings) and `pairs` (v1.1 and v2.0 EM/F1 of single
prediction / gold-answers pairs).

The script also prints what the stride means, checked on the real output: consecutive windows of one question
share exactly `stride` context tokens.

Run from the repository root (needs .assets/, see `cofi fetch`; the environment of
scripts/reference/requirements.txt: transformers 5.24, tokenizers 0.23.3, numpy 2.4):

    /work/.venv-ref/bin/python scripts/reference/make_squad_golden.py

The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import collections
import json
import os
import re
import string
import sys

import numpy as np
from transformers import BertTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "TasksTests", "Fixtures")
TOKENIZER_DIR = os.path.join(ROOT, ".assets", "all-MiniLM-L6-v2")
FILES = [("squad_v1_sample.json", False), ("squad_v2_sample.json", True)]
SMALL_CONFIG = (64, 16)
CONFIGS = [(384, 128), SMALL_CONFIG]
SMALL_CONFIG_MAX_CONTEXT = 300
LOGIT_DENOMINATOR = 16
SEED = 7


# ---------------------------------------------------------------------------------------------------------------
# Loading: what the HF `squad` / `squad_v2` dataset scripts yield (one record per question, context not stripped).

def load_examples(path):
    with open(path, encoding="utf-8") as f:
        squad = json.load(f)
    examples = []
    for article in squad["data"]:
        title = article.get("title", "")
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                examples.append({
                    "id": qa["id"],
                    "title": title,
                    "context": context,
                    "question": qa["question"],
                    "answers": {
                        "answer_start": [a["answer_start"] for a in qa["answers"]],
                        "text": [a["text"] for a in qa["answers"]],
                    },
                })
    return squad, examples


def columns(examples):
    return {k: [e[k] for e in examples] for k in examples[0]}


# ---------------------------------------------------------------------------------------------------------------
# transformers 4.17 examples/pytorch/question-answering/run_qa.py, prepare_train_features and
# prepare_validation_features (pad_on_right = True for BERT; pad_to_max_length = True).

def prepare_train_features(tokenizer, examples, max_seq_length, doc_stride):
    pad_on_right = tokenizer.padding_side == "right"
    question_column_name, context_column_name, answer_column_name = "question", "context", "answers"
    examples[question_column_name] = [q.lstrip() for q in examples[question_column_name]]
    tokenized_examples = tokenizer(
        examples[question_column_name if pad_on_right else context_column_name],
        examples[context_column_name if pad_on_right else question_column_name],
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_mapping = tokenized_examples.pop("overflow_to_sample_mapping")
    offset_mapping = tokenized_examples.pop("offset_mapping")
    tokenized_examples["start_positions"] = []
    tokenized_examples["end_positions"] = []
    for i, offsets in enumerate(offset_mapping):
        input_ids = tokenized_examples["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        sequence_ids = tokenized_examples.sequence_ids(i)
        sample_index = sample_mapping[i]
        answers = examples[answer_column_name][sample_index]
        if len(answers["answer_start"]) == 0:
            tokenized_examples["start_positions"].append(cls_index)
            tokenized_examples["end_positions"].append(cls_index)
        else:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start_index = 0
            while sequence_ids[token_start_index] != (1 if pad_on_right else 0):
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != (1 if pad_on_right else 0):
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                tokenized_examples["start_positions"].append(cls_index)
                tokenized_examples["end_positions"].append(cls_index)
            else:
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                tokenized_examples["start_positions"].append(token_start_index - 1)
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                tokenized_examples["end_positions"].append(token_end_index + 1)
    tokenized_examples["overflow_to_sample_mapping"] = sample_mapping
    return tokenized_examples


def prepare_validation_features(tokenizer, examples, max_seq_length, doc_stride):
    pad_on_right = tokenizer.padding_side == "right"
    question_column_name, context_column_name = "question", "context"
    examples[question_column_name] = [q.lstrip() for q in examples[question_column_name]]
    tokenized_examples = tokenizer(
        examples[question_column_name if pad_on_right else context_column_name],
        examples[context_column_name if pad_on_right else question_column_name],
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_mapping = tokenized_examples.pop("overflow_to_sample_mapping")
    tokenized_examples["example_id"] = []
    for i in range(len(tokenized_examples["input_ids"])):
        sequence_ids = tokenized_examples.sequence_ids(i)
        context_index = 1 if pad_on_right else 0
        sample_index = sample_mapping[i]
        tokenized_examples["example_id"].append(examples["id"][sample_index])
        tokenized_examples["offset_mapping"][i] = [
            (o if sequence_ids[k] == context_index else None)
            for k, o in enumerate(tokenized_examples["offset_mapping"][i])
        ]
    tokenized_examples["sequence_ids"] = [tokenized_examples.sequence_ids(i)
                                          for i in range(len(tokenized_examples["input_ids"]))]
    return tokenized_examples


def build_features(tokenizer, examples, max_length, stride):
    train = prepare_train_features(tokenizer, columns(examples), max_length, stride)
    val = prepare_validation_features(tokenizer, columns(examples), max_length, stride)
    assert train["input_ids"] == val["input_ids"] and train["token_type_ids"] == val["token_type_ids"]
    features = []
    for i, ids in enumerate(val["input_ids"]):
        n = sum(val["attention_mask"][i])
        assert val["attention_mask"][i] == [1] * n + [0] * (max_length - n)
        assert len(ids) == max_length and ids[n:] == [tokenizer.pad_token_id] * (max_length - n)
        assert val["token_type_ids"][i][n:] == [0] * (max_length - n)
        offsets = val["offset_mapping"][i]
        context = [k for k, o in enumerate(offsets) if o is not None]
        assert context == list(range(context[0], context[-1] + 1)), "context tokens are contiguous"
        features.append({
            "example_id": val["example_id"][i],
            "example_index": train["overflow_to_sample_mapping"][i],
            "input_ids": ids[:n],
            "token_type_ids": val["token_type_ids"][i][:n],
            "context_start": context[0],
            "context_offsets": [x for k in context for x in offsets[k]],
            "start_position": train["start_positions"][i],
            "end_position": train["end_positions"][i],
            "_length": max_length,
            "_offsets": offsets,
            "_sequence_ids": val["sequence_ids"][i],
        })
    return features


def check_stride(features, stride, tokenizer, examples):
    """Consecutive windows of one question overlap by exactly `stride` context tokens and tile the context."""
    by_example = collections.defaultdict(list)
    for f in features:
        by_example[f["example_id"]].append(f)
    multi = 0
    for e in examples:
        fs = by_example[e["id"]]
        context_ids = tokenizer(e["context"], add_special_tokens=False)["input_ids"]
        windows = [[t for t, s in zip(f["input_ids"], f["_sequence_ids"]) if s == 1] for f in fs]
        starts = []
        for w in windows:
            k = next(k for k in range(len(context_ids)) if context_ids[k:k + len(w)] == w)
            starts.append(k)
        assert starts[0] == 0 and starts[-1] + len(windows[-1]) == len(context_ids)
        for (s0, w0), s1 in zip(zip(starts, windows), starts[1:]):
            assert s0 + len(w0) - s1 == stride, (e["id"], starts)
        multi += len(fs) > 1
    return multi


# ---------------------------------------------------------------------------------------------------------------
# transformers examples/pytorch/question-answering/utils_qa.py, postprocess_qa_predictions (logging, tqdm and file
# output removed; returns the n-best lists and null-score differences as well).

def postprocess_qa_predictions(examples, features, predictions, version_2_with_negative=False, n_best_size=20,
                               max_answer_length=30, null_score_diff_threshold=0.0):
    assert len(predictions) == 2, "`predictions` should be a tuple with two elements (start_logits, end_logits)."
    all_start_logits, all_end_logits = predictions
    assert len(predictions[0]) == len(features), f"Got {len(predictions[0])} predictions and {len(features)} features."
    example_id_to_index = {k: i for i, k in enumerate(examples["id"])}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)
    all_predictions = collections.OrderedDict()
    all_nbest_json = collections.OrderedDict()
    if version_2_with_negative:
        scores_diff_json = collections.OrderedDict()
    for example_index, example in enumerate(examples["rows"]):
        feature_indices = features_per_example[example_index]
        min_null_prediction = None
        prelim_predictions = []
        for feature_index in feature_indices:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            token_is_max_context = features[feature_index].get("token_is_max_context", None)
            feature_null_score = start_logits[0] + end_logits[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {
                    "offsets": (0, 0),
                    "score": feature_null_score,
                    "start_logit": start_logits[0],
                    "end_logit": end_logits[0],
                }
            start_indexes = np.argsort(start_logits)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(end_logits)[-1: -n_best_size - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (
                        start_index >= len(offset_mapping)
                        or end_index >= len(offset_mapping)
                        or offset_mapping[start_index] is None
                        or offset_mapping[end_index] is None
                    ):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    if token_is_max_context is not None and not token_is_max_context.get(str(start_index), False):
                        continue
                    prelim_predictions.append(
                        {
                            "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                            "score": start_logits[start_index] + end_logits[end_index],
                            "start_logit": start_logits[start_index],
                            "end_logit": end_logits[end_index],
                        }
                    )
        if version_2_with_negative:
            prelim_predictions.append(min_null_prediction)
            null_score = min_null_prediction["score"]
        predictions_ = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if version_2_with_negative and not any(p["offsets"] == (0, 0) for p in predictions_):
            predictions_.append(min_null_prediction)
        context = example["context"]
        for pred in predictions_:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0]: offsets[1]]
        if len(predictions_) == 0 or (len(predictions_) == 1 and predictions_[0]["text"] == ""):
            predictions_.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([pred.pop("score") for pred in predictions_])
        exp_scores = np.exp(scores - np.max(scores))
        probs = exp_scores / exp_scores.sum()
        for prob, pred in zip(probs, predictions_):
            pred["probability"] = prob
        if not version_2_with_negative:
            all_predictions[example["id"]] = predictions_[0]["text"]
        else:
            i = 0
            while predictions_[i]["text"] == "":
                i += 1
            best_non_null_pred = predictions_[i]
            score_diff = null_score - best_non_null_pred["start_logit"] - best_non_null_pred["end_logit"]
            scores_diff_json[example["id"]] = float(score_diff)
            if score_diff > null_score_diff_threshold:
                all_predictions[example["id"]] = ""
            else:
                all_predictions[example["id"]] = best_non_null_pred["text"]
        all_nbest_json[example["id"]] = [
            {k: (float(v) if isinstance(v, (np.float16, np.float32, np.float64)) else v) for k, v in pred.items()}
            for pred in predictions_
        ]
    return all_predictions, all_nbest_json, (scores_diff_json if version_2_with_negative else None)


def make_logits(rng, features, version2):
    """Integer logits k (the float32 logit is k / LOGIT_DENOMINATOR), distinct within a row.

    One mode per question, applied to all its windows: 0 random; 1 the gold span wins where a window holds it;
    2 a span shifted by up to two tokens wins (partial F1); 3 (v2.0) [CLS] is strongest in every window (null
    prediction); 4 (v2.0) [CLS] is a little stronger than the gold or a random span, by 12/16 in score, so the
    prediction flips between thresholds 0.0 and 1.5."""
    modes = {}
    starts, ends = [], []
    for f in features:
        T = f["_length"]
        s = rng.permutation(6 * T)[:T] - 3 * T
        e = rng.permutation(6 * T)[:T] - 3 * T
        if f["example_id"] not in modes:
            modes[f["example_id"]] = int(rng.integers(0, 5 if version2 else 3))
        mode = modes[f["example_id"]]
        gs, ge = f["start_position"], f["end_position"]
        top = 3 * T
        if mode == 1 and 0 < gs <= ge:
            s[gs], e[ge] = top + 1, top + 2
        elif mode == 2 and 0 < gs <= ge:
            a = min(max(gs + int(rng.integers(-2, 3)), 1), T - 1)
            b = min(max(ge + int(rng.integers(-2, 3)), a), T - 1)
            s[a], e[b] = top + 3, top + 4
        elif mode == 3:
            s[0], e[0] = top + 5, top + 6
        elif mode == 4:
            if not 0 < gs <= ge:
                context = [k for k, o in enumerate(f["_offsets"]) if o is not None]
                gs = context[int(rng.integers(0, len(context)))]
                ge = min(gs + int(rng.integers(0, 3)), context[-1])
            s[0], e[0] = top + 10, top + 10
            s[gs], e[ge] = top + 5, top + 3
        starts.append([int(x) for x in s])
        ends.append([int(x) for x in e])
    return starts, ends


# ---------------------------------------------------------------------------------------------------------------
# Official evaluation: evaluate-v1.1.py and evaluate-v2.0.py (the logic, without argument parsing and file I/O).

def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score_v1(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score_v1(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate_v1(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x["text"], qa["answers"]))
                prediction = predictions[qa["id"]]
                exact_match += metric_max_over_ground_truths(exact_match_score_v1, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score_v1, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {"exact_match": exact_match, "f1": f1}


def get_tokens(s):
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def make_qid_to_has_ans(dataset):
    qid_to_has_ans = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid_to_has_ans[qa["id"]] = bool(qa["answers"])
    return qid_to_has_ans


def get_raw_scores(dataset, preds):
    exact_scores = {}
    f1_scores = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                gold_answers = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]
                if qid not in preds:
                    continue
                a_pred = preds[qid]
                exact_scores[qid] = max(compute_exact(a, a_pred) for a in gold_answers)
                f1_scores[qid] = max(compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def make_eval_dict(exact_scores, f1_scores, qid_list=None):
    if not qid_list:
        total = len(exact_scores)
        return collections.OrderedDict([
            ("exact", 100.0 * sum(exact_scores.values()) / total),
            ("f1", 100.0 * sum(f1_scores.values()) / total),
            ("total", total),
        ])
    total = len(qid_list)
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
        ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
        ("total", total),
    ])


def evaluate_v2(dataset, preds):
    qid_to_has_ans = make_qid_to_has_ans(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw = get_raw_scores(dataset, preds)
    out_eval = make_eval_dict(exact_raw, f1_raw)
    if has_ans_qids:
        for k, v in make_eval_dict(exact_raw, f1_raw, qid_list=has_ans_qids).items():
            out_eval["HasAns_" + k] = v
    if no_ans_qids:
        for k, v in make_eval_dict(exact_raw, f1_raw, qid_list=no_ans_qids).items():
            out_eval["NoAns_" + k] = v
    return out_eval


NORMALIZE_CASES = [
    "The Böögg!", "the Volga in Russia", "ΟΔΟΣ", "ΟΔΟΣ.", "Σ alone", "ΑΣ ΣΑΣ", "ὈΔΥΣΣΕΎΣ", "\u0391\u0301thens",
    "İstanbul", "a\u0301 b", "an_example", "the—end", "ﬁne dining 🍰", "\u00a0the\u2003cat\u3000sat",
    "x\u001cy\u001fz", "\u200bthe\u200b", "theater an", "A.N. The", "ＴＨＥ Ｆｕｌｌ", "the1 an2", "don't stop",
    "¡Hola, the señor!", "«the» end", "Ⅻ the", "½an", "the\u0301 cat", "ǅemal", "ΣΑ\u0345Σ", "a", "", "   ",
    "5 September 1882", "“crème brûlée”", "東京 (Tokyo) and São Paulo", "e\u0301 vs \u00e9", "THE AN A",
    "a-an-the", "the_the", "tab\tand\nnewline", "\u2028line\u2029sep\u0085nel", "Ǳ Ǆ ǈ", "ẞ straße",
]

PAIRS = [
    ("the Volga", ["Volga", "the Volga in Russia"]),
    ("Volga river", ["the Volga"]),
    ("", ["Volga"]),
    ("", [""]),
    ("", []),
    ("the", []),
    ("The", ["a"]),
    ("crème brûlée", ["“crème brûlée”"]),
    ("e\u0301", ["\u00e9"]),
    ("in 1843", ["1843", "in 1843"]),
    ("1843 1843 in", ["in 1843 1843 1843"]),
    ("ΟΔΟΣ", ["οδος"]),
    ("ΟΔΟΣ", ["οδοσ"]),
    ("the sieges of Vienna", ["the sieges of Vienna in 1529 and 1683", "sieges of Vienna"]),
    ("Along the Limes, the fortified", ["Along the Limes", "the Limes"]),
    ("ﬁne dining", ["ﬁne dining 🍰", "fine dining"]),
]


def main():
    tokenizer = BertTokenizerFast.from_pretrained(TOKENIZER_DIR)
    rng = np.random.default_rng(SEED)
    out = {
        "generator": "scripts/reference/make_squad_golden.py",
        "tokenizer": ".assets/all-MiniLM-L6-v2 (BertTokenizerFast)",
        "logit_denominator": LOGIT_DENOMINATOR,
        "files": [],
    }
    for name, version2 in FILES:
        all_squad, all_examples = load_examples(os.path.join(FIXTURES, name))
        entry = {"file": name, "version_2_with_negative": version2, "configs": []}
        for max_length, stride in CONFIGS:
            if (max_length, stride) == SMALL_CONFIG:
                examples = [e for e in all_examples if len(tokenizer(e["context"], add_special_tokens=False)
                                                            ["input_ids"]) <= SMALL_CONFIG_MAX_CONTEXT]
            else:
                examples = all_examples
            ids = {e["id"] for e in examples}
            squad = {"data": [{**a, "paragraphs": [{**p, "qas": [q for q in p["qas"] if q["id"] in ids]}
                                                    for p in a["paragraphs"]]} for a in all_squad["data"]]}
            features = build_features(tokenizer, examples, max_length, stride)
            multi = check_stride(features, stride, tokenizer, examples)
            labelled = sum(f["start_position"] != 0 for f in features)
            quirk = [(f["example_id"], f["start_position"], f["end_position"]) for f in features
                     if f["start_position"] > f["end_position"]]
            print(f"{name} {max_length}/{stride}: {len(features)} features, {multi} questions with several windows "
                  f"(consecutive windows share exactly {stride} context tokens), {labelled} windows hold the answer; "
                  f"start > end (answer in the last context token of its window): {quirk}")
            config = {"max_length": max_length, "stride": stride, "example_ids": [e["id"] for e in examples],
                      "features": [{k: v for k, v in f.items() if not k.startswith("_")} for f in features]}
            if (max_length, stride) == SMALL_CONFIG:
                starts, ends = make_logits(rng, features, version2)
                start_logits = [np.array(r, dtype=np.float32) / np.float32(LOGIT_DENOMINATOR) for r in starts]
                end_logits = [np.array(r, dtype=np.float32) / np.float32(LOGIT_DENOMINATOR) for r in ends]
                feats = [{"example_id": f["example_id"], "offset_mapping": f["_offsets"]} for f in features]
                cols = columns(examples)
                cols["rows"] = examples
                runs = []
                for threshold in ([0.0, 1.5] if version2 else [0.0]):
                    preds, nbest, diffs = postprocess_qa_predictions(
                        cols, feats, (start_logits, end_logits), version_2_with_negative=version2,
                        null_score_diff_threshold=threshold)
                    metrics = evaluate_v2(squad["data"], preds) if version2 else evaluate_v1(squad["data"], preds)
                    runs.append({"null_score_diff_threshold": threshold, "predictions": preds,
                                 "null_score_diff": diffs, "metrics": metrics})
                    print(f"  postprocess threshold {threshold}: {metrics}; "
                          f"{sum(p == '' for p in preds.values())} null predictions")
                # The n-best lists do not depend on the threshold. Probabilities are float32 values (float64 when
                # HF's "empty" placeholder is among them); 9 significant digits keep a float32 exactly.
                config["nbest"] = {qid: [{"text": c["text"], "start_logit": c["start_logit"],
                                          "end_logit": c["end_logit"],
                                          "probability": float(f"{c['probability']:.9g}")} for c in cands]
                                   for qid, cands in nbest.items()}
                config["start_logits"] = starts
                config["end_logits"] = ends
                config["postprocess"] = runs
            entry["configs"].append(config)
        out["files"].append(entry)
    out["normalize"] = [[s, normalize_answer(s)] for s in NORMALIZE_CASES]
    pairs = []
    for pred, golds in PAIRS:
        p = {"prediction": pred, "gold": golds}
        if golds:
            p["v1_exact"] = bool(metric_max_over_ground_truths(exact_match_score_v1, pred, golds))
            p["v1_f1"] = float(metric_max_over_ground_truths(f1_score_v1, pred, golds))
        g2 = [a for a in golds if normalize_answer(a)] or [""]
        p["v2_exact"] = bool(max(compute_exact(a, pred) for a in g2))
        p["v2_f1"] = float(max(compute_f1(a, pred) for a in g2))
        pairs.append(p)
    out["pairs"] = pairs
    path = os.path.join(FIXTURES, "squad_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
