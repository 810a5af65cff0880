"""Linear SVM concept probes over repeated stratified 2-fold CV (Prajod et al. 2022, section 4.3).

Repeat r splits the images with `StratifiedKFold(2, shuffle=True, random_state=seed + r)`,
or, given each image's group (its CK+ subject), with `StratifiedGroupKFold`, so that no
subject's sequences sit on both sides of a split (CK+ subjects contribute 1-4 sequences,
and a probe that recognises a face would otherwise score on it). The SVM is seeded with
`seed + r`. The folds depend only on the labels, groups and seed, so every model probed
for the same AU sees the same folds: the scores are paired, as the paired tests require.
Results do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

N_FOLDS = 2  # the paper's protocol; 5x2cv and the corrected test assume it too


@dataclass(frozen=True)
class ProbeSettings:
    """repeats: CV repetitions (paper 500); c: SVM regularisation; class_weight: None or "balanced"."""

    repeats: int = 500
    seed: int = 2022
    c: float = 1.0
    class_weight: str | None = None
    max_iter: int = 10_000


def fold_plan(labels: np.ndarray, repeats: int, seed: int,
              groups: np.ndarray | None = None) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """(train, test) index pairs: `repeats` lists of 2 folds, stratified on the boolean labels (N,) and,
    given groups (N,), with every group on one side of each split."""
    y = _checked_labels(labels)
    return [_folds(y, groups, seed + r) for r in range(repeats)]


def _folds(y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if groups is None:
        return list(StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed).split(y, y))
    return list(StratifiedGroupKFold(N_FOLDS, shuffle=True, random_state=seed).split(y, y, groups))


def _checked_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype != bool:
        raise ValueError(f"labels must be a 1-D boolean array (AU present), got {y.dtype} {y.shape}")
    positives = int(y.sum())
    if min(positives, y.size - positives) < N_FOLDS:
        raise ValueError(f"need at least {N_FOLDS} images with and without the AU for {N_FOLDS}-fold CV, "
                         f"got {positives} with and {y.size - positives} without")
    return y


def f1_present(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of the positive (AU present) class, 0 when there is no positive prediction or label.

    The textbook 2TP / (2TP + FP + FN), equal to sklearn's f1_score(..., zero_division=0)
    (tested); written out because f1_score's input checks cost more than the SVM fit here.
    """
    tp = int(np.sum(y_true & y_pred))
    wrong = int(np.sum(y_true != y_pred))
    return 2.0 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def _probe(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
           settings: ProbeSettings, seed: int) -> float:
    """F1 of the AU-present class on the test fold; features standardised on the training fold only."""
    svm = LinearSVC(C=settings.c, class_weight=settings.class_weight, max_iter=settings.max_iter, random_state=seed)
    probe = make_pipeline(StandardScaler(), svm).fit(features[train], y[train])
    return f1_present(y[test], probe.predict(features[test]))


def _repeats_chunk(feature_sets: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None, repeats: range,
                   settings: ProbeSettings) -> np.ndarray:
    """F1 (feature sets, repeats in chunk, 2): each repeat's folds drawn once, used for every feature set."""
    out = np.empty((len(feature_sets), len(repeats), N_FOLDS))
    for i, r in enumerate(repeats):
        seed = settings.seed + r
        folds = _folds(y, groups, seed)
        for m, features in enumerate(feature_sets):
            out[m, i] = [_probe(features, y, train, test, settings, seed) for train, test in folds]
    return out


def probe_f1_many(feature_sets: Mapping[Hashable, np.ndarray], labels: np.ndarray, settings: ProbeSettings,
                  workers: int = 1, groups: np.ndarray | None = None) -> dict[Hashable, np.ndarray]:
    """F1 scores (repeats, 2) per feature set (N, D), all probing the same AU labels (N,) on shared folds
    (grouped when `groups` (N,) is given, see the module docstring).

    The repeats are cut into chunks spread over `workers` processes (joblib); each chunk
    probes every feature set on its folds, so the pairing holds by construction.
    """
    y = _checked_labels(labels)
    if groups is not None and np.shape(groups) != y.shape:
        raise ValueError(f"groups must give one group per image ({y.size}), got shape {np.shape(groups)}")
    keys = list(feature_sets)
    arrays = []
    for key in keys:
        x = np.asarray(feature_sets[key], dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != y.size:
            raise ValueError(f"{key}: features must be (N, D) with N = {y.size} labels, got {x.shape}")
        arrays.append(x)
    n_chunks = max(1, min(settings.repeats, 4 * workers))
    bounds = np.linspace(0, settings.repeats, n_chunks + 1).astype(int)
    chunks = [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    results = Parallel(n_jobs=workers)(delayed(_repeats_chunk)(arrays, y, groups, chunk, settings) for chunk in chunks)
    scores = np.concatenate(results, axis=1)  # (feature sets, repeats, 2)
    return {key: scores[m] for m, key in enumerate(keys)}


def probe_f1(features: np.ndarray, labels: np.ndarray, settings: ProbeSettings, workers: int = 1,
             groups: np.ndarray | None = None) -> np.ndarray:
    """F1 scores (repeats, 2) of linear SVM probes for one feature set; see `probe_f1_many`."""
    return probe_f1_many({"probe": features}, labels, settings, workers, groups)["probe"]
