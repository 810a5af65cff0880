"""Our corrected and 5x2cv t-tests against independent implementations: baycomp and mlxtend."""

from __future__ import annotations

import numpy as np
import pytest
from baycomp import CorrelatedTTest
from mlxtend.evaluate import paired_ttest_5x2cv
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from facetransfer.stats import (
    corrected_resampled_ci,
    corrected_resampled_ttest,
    five_by_two_cv_ttest,
)


@pytest.mark.parametrize(("folds", "runs"), [(2, 50), (5, 10), (10, 3)])
def test_corrected_test_matches_baycomp_correlated_t(folds, runs):
    # baycomp's correlated t-test (Corani & Benavoli 2015) uses the Nadeau-Bengio variance
    # with rho = 1 / folds, i.e. n_test / n_train = 1 / (folds - 1); with a flat prior its
    # posterior P(difference > 0) is one minus the one-sided p-value.
    rng = np.random.default_rng(folds)
    a = 0.8 + 0.03 * rng.standard_normal(folds * runs)
    b = a - 0.01 + 0.02 * rng.standard_normal(folds * runs)
    n = 1000
    ours = corrected_resampled_ttest(a, b, n_train=n - n // folds, n_test=n // folds)
    mean, var, df = CorrelatedTTest.compute_statistics(b, a, runs=runs)  # baycomp's diff is y - x
    assert ours.statistic == pytest.approx(mean / np.sqrt(var), rel=1e-9) and ours.df == df
    p_left, p_right = CorrelatedTTest.probs(b, a, rope=0, runs=runs)
    assert ours.pvalue == pytest.approx(2 * min(p_left, p_right), rel=1e-6)
    _, lo, hi = corrected_resampled_ci(a - b, n - n // folds, n // folds, 0.95)
    half = stats.t.ppf(0.975, df) * np.sqrt(var)
    assert (lo, hi) == pytest.approx((mean - half, mean + half), rel=1e-9)


def _columns(cols):
    return FunctionTransformer(lambda x: x[:, cols])


def test_five_by_two_matches_mlxtend():
    # mlxtend fits both estimators on its own 5 random half splits; replay the same splits
    # (its RandomState draws one seed per replication) and feed our test the 5x2 accuracies.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 4))
    y = (x[:, 0] + 0.5 * x[:, 2] + 0.8 * rng.standard_normal(120)) > 0
    model_a = make_pipeline(_columns([0, 1]), LogisticRegression())
    model_b = make_pipeline(_columns([2, 3]), LogisticRegression())
    t_ref, p_ref = paired_ttest_5x2cv(model_a, model_b, x, y, random_seed=7)
    seeds = np.random.RandomState(7)
    scores = np.empty((2, 5, 2))
    for i in range(5):
        x1, x2, y1, y2 = train_test_split(x, y, test_size=0.5, random_state=seeds.randint(low=0, high=32767))
        for f, (xtr, ytr, xte, yte) in enumerate([(x1, y1, x2, y2), (x2, y2, x1, y1)]):
            for m, model in enumerate((model_a, model_b)):
                scores[m, i, f] = accuracy_score(yte, model.fit(xtr, ytr).predict(xte))
    ours = five_by_two_cv_ttest(scores[0], scores[1])
    assert ours.statistic == pytest.approx(t_ref, rel=1e-12)
    assert ours.pvalue == pytest.approx(p_ref, rel=1e-12)
