"""Golden values for the task metrics (Sources/Tasks/Metrics.swift), from scikit-learn and scipy.

Writes Tests/TasksTests/Fixtures/metrics.json. Classification cases hold integer `y_true` / `y_pred` with
`accuracy` (accuracy_score), `f1` (f1_score, binary, pos_label=1; null for multiclass cases, where scikit-learn
refuses average="binary") and `mcc` (matthews_corrcoef). Regression cases hold float `x` / `y` with `pearson`
(scipy.stats.pearsonr) and `spearman` (scipy.stats.spearmanr, average ranks for ties). A NaN from scipy (constant
input) is written as null. Floats are written with Python's repr, which round-trips exactly.

Run:  .venv-ref/bin/python scripts/reference/make_metrics_golden.py
The output is byte-for-byte reproducible (fixed numpy seed).
"""
import json
import math
import os
import warnings

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "TasksTests", "Fixtures", "metrics.json")


def nan_to_none(v):
    v = float(v)
    return None if math.isnan(v) else v


def classification(name, y_true, y_pred):
    y_true = [int(v) for v in y_true]
    y_pred = [int(v) for v in y_pred]
    binary = set(y_true) | set(y_pred) <= {0, 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division and single-class warnings: the value is what we test
        return {
            "name": name,
            "y_true": y_true,
            "y_pred": y_pred,
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1": float(f1_score(y_true, y_pred, pos_label=1)) if binary else None,
            "mcc": float(matthews_corrcoef(y_true, y_pred)),
        }


def regression(name, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning: the NaN is what we test
        return {
            "name": name,
            "x": x,
            "y": y,
            "pearson": nan_to_none(pearsonr(x, y).statistic),
            "spearman": nan_to_none(spearmanr(x, y).statistic),
        }


def main():
    rng = np.random.default_rng(20240611)
    cls = []
    t = rng.integers(0, 2, 200)
    p = np.where(rng.random(200) < 0.8, t, 1 - t)
    cls.append(classification("binary random 80% agreement", t, p))
    t = (rng.random(157) < 0.2).astype(int)
    p = (rng.random(157) < 0.3).astype(int)
    cls.append(classification("binary imbalanced, independent", t, p))
    cls.append(classification("all correct", t, t))
    cls.append(classification("all wrong", t, 1 - t))
    cls.append(classification("predictions all positive (MCC denominator 0)", t, np.ones_like(t)))
    cls.append(classification("predictions all negative (F1 zero division)", t, np.zeros_like(t)))
    cls.append(classification("truth and predictions all negative", [0] * 9, [0] * 9))
    cls.append(classification("truth and predictions all positive", [1] * 9, [1] * 9))
    cls.append(classification("single sample", [1], [0]))
    t = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 3, 300))
    cls.append(classification("three classes random", t, p))
    t = rng.integers(0, 3, 50)
    cls.append(classification("three classes, one never predicted", t, np.where(t == 2, 0, t)))

    reg = []
    x = rng.normal(size=100)
    reg.append(regression("normal, correlated", x, 0.7 * x + 0.5 * rng.normal(size=100)))
    reg.append(regression("independent", rng.normal(size=80), rng.normal(size=80)))
    x = rng.uniform(0, 5, 120)
    reg.append(regression("many ties (scores rounded to 0.5, STS-B-like)", np.round(x * 2) / 2,
                          np.round((x + rng.normal(scale=0.8, size=120)) * 2) / 2))
    x = np.linspace(0.1, 3, 40)
    reg.append(regression("monotone nonlinear (spearman 1)", x, np.exp(3 * x)))
    reg.append(regression("perfectly anticorrelated", x, -2 * x + 1))
    reg.append(regression("large offset", 1e6 + rng.normal(size=60), 1e6 + rng.normal(size=60)))
    reg.append(regression("two points", [1.0, 2.0], [3.0, 1.0]))
    reg.append(regression("constant predictions (scipy gives nan)", [2.5] * 10, rng.uniform(0, 5, 10)))
    reg.append(regression("both constant", [1.0] * 5, [3.0] * 5))

    doc = {
        "generator": f"scripts/reference/make_metrics_golden.py (scikit-learn {sklearn.__version__}, "
                     f"scipy {scipy.__version__}, numpy {np.__version__})",
        "classification": cls,
        "regression": reg,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}: {len(cls)} classification and {len(reg)} regression cases")


if __name__ == "__main__":
    main()
