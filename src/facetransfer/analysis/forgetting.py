"""Forgetting after transfer (Prajod et al. 2022, section 4.1, Fig. 3 and Fig. 6).

Inputs are the retrained emotion heads' test predictions (one frame per
FreezeBk and training seed) and the pain models' metrics. Outputs: the
per-class recall table, the forgetting of each class across seeds
(recall(reference) - recall(FreezeBk) of the same seed, its mean over seeds
with a Student-t interval and a paired t-test whose unit of replication is the
seed), McNemar per class on each seed's test images as detail, and the
pain/emotion trade-off with its Pareto front.

The family rule of every Holm correction in the study: one model's comparison
with its reference is one family, over the classes (or AUs) tested for it.
A verdict is a claim about one model ("FreezeB0 forgot contempt"), and a
model's verdicts should not get stricter because more models were trained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from facetransfer.stats import add_holm, mcnemar_test, seed_difference


def name(k: int) -> str:
    return f"freeze{k}"


def recall_table(predictions: dict[int, pd.DataFrame], classes: tuple[str, ...]) -> pd.DataFrame:
    """Rows freeze{k}, columns the classes and macro: test recall of each retrained model."""
    rows = {}
    for k, frame in sorted(predictions.items()):
        per_class = class_recall(frame, len(classes))
        rows[name(k)] = per_class + [float(np.mean(per_class))]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*classes, "macro"])


def class_recall(frame: pd.DataFrame, n_classes: int) -> list[float]:
    """Test recall of each class from a predictions frame (columns label, predicted)."""
    return [float((frame.loc[frame["label"] == c, "predicted"] == c).mean()) for c in range(n_classes)]


def paired_difference_ci(ref_correct: np.ndarray, other_correct: np.ndarray,
                         confidence: float) -> tuple[float, float, float]:
    """Recall(reference) - recall(other) on the same images, with a Wald interval for paired proportions.

    With b = reference right / other wrong and c = the reverse, the difference is
    (b - c) / n and its variance ((b + c) / n - d^2) / n (Agresti, Categorical Data
    Analysis, 10.1); no maintained library exposes this paired interval directly.
    """
    n = len(ref_correct)
    b = int(np.sum(ref_correct & ~other_correct))
    c = int(np.sum(~ref_correct & other_correct))
    d = (b - c) / n
    half = norm.ppf(0.5 + confidence / 2) * np.sqrt(max((b + c) / n - d * d, 0.0) / n)
    return d, d - half, d + half


def _aligned(reference: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, oth = reference.sort_values("row").reset_index(drop=True), other.sort_values("row").reset_index(drop=True)
    if not ref["row"].equals(oth["row"]) or not ref["label"].equals(oth["label"]):
        raise ValueError("test predictions of the models cover different images; rerun retrain-emotion")
    return ref, oth


def mcnemar_by_class(predictions: dict[int, pd.DataFrame], classes: tuple[str, ...], reference: int,
                     confidence: float) -> dict[str, dict[str, dict]]:
    """freeze{k} -> class -> McNemar statistic, p-value, Holm-adjusted p-value (over that model's classes),
    method, and recall(reference) - recall(k) with its confidence interval. One seed's models."""
    out: dict[str, dict[str, dict]] = {}
    for k, frame in sorted(predictions.items()):
        if k == reference:
            continue
        out[name(k)] = mcnemar_per_class(predictions[reference], frame, classes, confidence)
        add_holm(list(out[name(k)].values()))
    return out


def across_seeds(recall_by_seed: dict[int, pd.DataFrame], classes: tuple[str, ...], reference: int,
                 confidence: float) -> dict[str, dict[str, dict]]:
    """freeze{k} -> class -> forgetting of the class replicated over training seeds.

    recall_by_seed: seed -> `recall_table` of that seed's models (same rows in every seed). Per seed s the
    forgetting is recall(reference_s) - recall(FreezeBk_s) on the class's test images; the seed, not the
    image, is the unit of replication, since a new seed alone moves a class's recall by as much as the
    effects studied (bench/seed_tests.py: McNemar on pooled images rejects 11-16 % of null studies when
    seeds differ, the t-test over seeds 4-6 %). Holm over the model's classes.
    """
    seeds = sorted(recall_by_seed)
    out: dict[str, dict[str, dict]] = {}
    for model in recall_by_seed[seeds[0]].index:
        if model == name(reference):
            continue
        out[model] = {cls: seed_difference([recall_by_seed[s].loc[name(reference), cls] for s in seeds],
                                           [recall_by_seed[s].loc[model, cls] for s in seeds], confidence)
                      for cls in classes}
        add_holm(list(out[model].values()))
    return out


def mean_over_seeds(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Cell-wise mean of same-shaped tables (one per seed)."""
    return sum(tables[s] for s in sorted(tables)) / len(tables)


def summarise_pain(per_seed: dict[int, dict]) -> dict:
    """Mean over seeds of one pain model's Table 1 numbers (accuracy; precision, recall, F1 per class and
    macro), with their SD over seeds: the contract layout of metrics/pain/freeze{k}.json."""
    seeds = sorted(per_seed)
    mean: dict = {"accuracy": float(np.mean([per_seed[s]["accuracy"] for s in seeds]))}
    sd: dict = {"accuracy": _sd([per_seed[s]["accuracy"] for s in seeds])}
    for key in ("precision", "recall", "f1"):
        mean[key] = {c: float(np.mean([per_seed[s][key][c] for s in seeds])) for c in per_seed[seeds[0]][key]}
        sd[key] = {c: _sd([per_seed[s][key][c] for s in seeds]) for c in per_seed[seeds[0]][key]}
    return mean | {"sd": sd, "n_seeds": len(seeds), "seeds": seeds}


def _sd(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def mcnemar_per_class(reference: pd.DataFrame, other: pd.DataFrame, classes: tuple[str, ...],
                      confidence: float) -> dict[str, dict]:
    """class -> McNemar of the two models on that class's test images, and the recall difference with its CI."""
    ref, other = _aligned(reference, other)
    out = {}
    for c, cls in enumerate(classes):
        mask = ref["label"].to_numpy() == c
        ref_ok = ref["predicted"].to_numpy()[mask] == c
        oth_ok = other["predicted"].to_numpy()[mask] == c
        test = mcnemar_test(ref_ok, oth_ok)
        d, low, high = paired_difference_ci(ref_ok, oth_ok, confidence)
        out[cls] = {"statistic": test.statistic, "pvalue": test.pvalue, "method": test.method,
                    "recall_difference": d, "ci_low": low, "ci_high": high,
                    "discordant_reference_only": test.extra["b"], "discordant_other_only": test.extra["c"]}
    return out


def source_vs_reference(source: pd.DataFrame, reference: pd.DataFrame, n_classes: int, confidence: float) -> dict:
    """Did retraining the reference's head on its frozen features beat the source model itself?

    If it did by more than noise, the source was not trained to convergence and every "forgetting"
    contrast mixes in continued learning. Over all test images: accuracy(reference) - accuracy(source)
    with its paired interval and McNemar, and both macro recalls.
    """
    src, ref = _aligned(source, reference)
    src_ok = src["predicted"].to_numpy() == src["label"].to_numpy()
    ref_ok = ref["predicted"].to_numpy() == ref["label"].to_numpy()
    test = mcnemar_test(ref_ok, src_ok)
    d, low, high = paired_difference_ci(ref_ok, src_ok, confidence)
    return {"source_macro_recall": float(np.mean(class_recall(src, n_classes))),
            "reference_macro_recall": float(np.mean(class_recall(ref, n_classes))),
            "accuracy_difference": d, "ci_low": low, "ci_high": high, "pvalue": test.pvalue, "method": test.method,
            "rule": "reference (head retrained on its frozen features) minus source, all test images"}


def pareto_front(points: dict[int, tuple[float, float]]) -> list[int]:
    """Keys whose (x, y) no other point matches or beats on both axes while differing."""
    def dominated(k: int) -> bool:
        x, y = points[k]
        return any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for j, (x2, y2) in points.items() if j != k)

    return [k for k in points if not dominated(k)]


def trade_off(pain_recall: dict[int, float], emotion_recall: dict[int, float]) -> dict:
    """Pareto front of (pain macro recall, emotion macro recall) and the balanced choice.

    Rule for the balanced choice (the paper picked FreezeB3/B2 by eye): among the
    Pareto-optimal models, the one with the largest harmonic mean of the two recalls.
    """
    points = {k: (pain_recall[k], emotion_recall[k]) for k in sorted(pain_recall)}
    front = pareto_front(points)
    harmonic = {k: 2 * p * e / (p + e) if p + e else 0.0 for k, (p, e) in points.items()}
    balanced = max(front, key=lambda k: harmonic[k])
    return {"points": {name(k): {"pain_macro_recall": p, "emotion_macro_recall": e, "harmonic_mean": harmonic[k]}
                       for k, (p, e) in points.items()},
            "pareto_front": [name(k) for k in front], "balanced": name(balanced),
            "rule": "Pareto-optimal model with the largest harmonic mean of pain and emotion macro recall"}


def most_forgotten(forgetting: pd.DataFrame, n: int) -> list[str]:
    """The n classes with the largest mean forgetting (reference recall - model recall) over the models."""
    mean = forgetting.drop(columns="macro", errors="ignore").mean(axis=0)
    return [str(c) for c in mean.sort_values(ascending=False, kind="stable").index[:n]]


def class_trade_offs(pain_recall: dict[int, float], recall: pd.DataFrame, classes: list[str]) -> dict:
    """Per class: each model's (pain macro recall, recall of that emotion) and their Pareto front."""
    out = {}
    for cls in classes:
        points = {k: (pain_recall[k], float(recall.loc[name(k), cls])) for k in sorted(pain_recall)}
        out[cls] = {"points": {name(k): {"pain_macro_recall": p, "class_recall": r} for k, (p, r) in points.items()},
                    "pareto_front": [name(k) for k in pareto_front(points)]}
    return out
