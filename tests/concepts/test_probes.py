"""Concept probes: fold sharing, F1 formula, determinism across workers, and the reference protocol."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from facetransfer.concepts import ProbeSettings, fold_plan, probe_f1
from facetransfer.concepts.probes import f1_present, probe_f1_many


def _dataset(rng, n=80, d=6, signal=1.5):
    y = rng.random(n) < 0.3
    x = rng.standard_normal((n, d)) + signal * y[:, None] * (np.arange(d) < 2)
    return x, y


@pytest.mark.parametrize("seed", range(20))
def test_f1_present_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.random(30) < 0.3, rng.random(30) < rng.random()
    assert f1_present(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, zero_division=0.0), abs=1e-12)


def test_f1_present_edge_cases():
    none = np.zeros(4, bool)
    assert f1_present(none, none) == 0.0  # sklearn's zero_division=0 convention
    assert f1_present(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(0.5)


def test_fold_plan_is_stratified_and_partitions():
    y = np.array([True] * 10 + [False] * 30)
    plan = fold_plan(y, repeats=3, seed=7)
    assert len(plan) == 3 and all(len(folds) == 2 for folds in plan)
    for folds in plan:
        (train, test), (train2, test2) = folds
        assert sorted(np.concatenate([test, test2])) == list(range(40))  # the two test halves partition the data
        np.testing.assert_array_equal(np.sort(train), np.sort(test2))
        assert y[test].sum() == 5 and y[test2].sum() == 5
    assert not np.array_equal(plan[0][0][1], plan[1][0][1])  # each repeat reshuffles


def test_grouped_folds_keep_each_subject_on_one_side():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), rng.integers(1, 5, 30))  # subjects with 1-4 sequences, as CK+
    y = rng.random(groups.size) < 0.4
    for (train, test), _ in fold_plan(y, repeats=4, seed=2, groups=groups):
        assert not set(groups[train]) & set(groups[test])
        assert sorted(np.concatenate([train, test])) == list(range(groups.size))
    # the probes use the same grouped folds
    x = rng.normal(size=(groups.size, 5)) + y[:, None]
    settings = ProbeSettings(repeats=3, seed=2)
    grouped, plain = probe_f1(x, y, settings, groups=groups), probe_f1(x, y, settings)
    assert grouped.shape == plain.shape == (3, 2) and not np.array_equal(grouped, plain)


def test_probe_matches_slow_reference_loop():
    # The reference: the paper's protocol written as a plain loop with sklearn's f1_score.
    rng = np.random.default_rng(0)
    x, y = _dataset(rng)
    settings = ProbeSettings(repeats=4, seed=11, c=0.5)
    expected = np.empty((4, 2))
    for r in range(4):
        folds = StratifiedKFold(2, shuffle=True, random_state=11 + r).split(x, y)
        for f, (train, test) in enumerate(folds):
            probe = make_pipeline(StandardScaler(), LinearSVC(C=0.5, max_iter=10_000, random_state=11 + r))
            expected[r, f] = f1_score(y[test], probe.fit(x[train], y[train]).predict(x[test]), zero_division=0.0)
    np.testing.assert_allclose(probe_f1(x, y, settings), expected, rtol=0, atol=1e-12)


def test_probe_results_do_not_depend_on_workers():
    rng = np.random.default_rng(1)
    x, y = _dataset(rng)
    settings = ProbeSettings(repeats=9, seed=3)
    np.testing.assert_array_equal(probe_f1(x, y, settings, workers=1), probe_f1(x, y, settings, workers=2))


def test_probe_many_pairs_feature_sets_on_the_same_folds():
    # Identical features -> identical scores in every repeat, only possible with shared folds and seeds.
    rng = np.random.default_rng(2)
    x, y = _dataset(rng)
    noise = rng.standard_normal(x.shape)
    scores = probe_f1_many({"a": x, "b": x.copy(), "noise": noise}, y, ProbeSettings(repeats=6), workers=2)
    np.testing.assert_array_equal(scores["a"], scores["b"])
    assert scores["a"].shape == (6, 2)
    assert scores["a"].mean() > scores["noise"].mean() + 0.2  # informative features probe better


@pytest.mark.parametrize(("labels", "match"), [
    (np.array([True, False, False, False]), "at least 2 images with and without"),
    (np.array([1, 0, 1, 0]), "boolean"),
])
def test_probe_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        probe_f1(np.zeros((len(labels), 3)), labels, ProbeSettings(repeats=2))


def test_probe_rejects_misaligned_features():
    with pytest.raises(ValueError, match=r"features must be \(N, D\) with N = 6"):
        probe_f1(np.zeros((5, 3)), np.array([True, False] * 3), ProbeSettings(repeats=2))
