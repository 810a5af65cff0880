"""Forgetting across training seeds: the seed-level test, its interval, the family rule, its calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from facetransfer.analysis.forgetting import (
    across_seeds,
    mcnemar_by_class,
    mean_over_seeds,
    summarise_pain,
)
from facetransfer.stats import holm, seed_difference

CLASSES = ("a", "b", "c")


def _table(rows: dict[str, list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(CLASSES))
    return frame.assign(macro=frame.mean(axis=1))


def test_seed_difference_is_scipys_paired_t_and_t_interval():
    ref, other = [0.74, 0.70, 0.78, 0.72], [0.60, 0.66, 0.61, 0.69]
    cell = seed_difference(ref, other, 0.95)
    d = np.subtract(ref, other, dtype=np.float64)
    expected = stats.ttest_rel(ref, other)
    interval = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert cell["mean_diff"] == pytest.approx(d.mean(), abs=1e-15)
    assert cell["pvalue"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert cell["n_seeds"] == 4 and cell["per_seed"] == pytest.approx(list(d))


def test_one_seed_gives_no_interval_and_no_pvalue_and_equal_differences_no_width():
    one = seed_difference([0.7], [0.6], 0.95)
    assert one["pvalue"] is None and one["ci_low"] is None and one["mean_diff"] == pytest.approx(0.1)
    same = seed_difference([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 0.95)
    assert same["pvalue"] == 1.0 and same["ci_low"] == same["ci_high"] == 0.0


def test_across_seeds_pairs_models_by_seed_and_corrects_within_each_model():
    by_seed = {
        2022: _table({"freeze0": [0.5, 0.9, 0.8], "freeze3": [0.7, 0.9, 0.8], "freeze5": [0.8, 0.9, 0.8]}),
        2023: _table({"freeze0": [0.4, 0.8, 0.9], "freeze3": [0.6, 0.8, 0.9], "freeze5": [0.7, 0.9, 0.8]}),
        2024: _table({"freeze0": [0.6, 0.7, 0.7], "freeze3": [0.7, 0.7, 0.7], "freeze5": [0.85, 0.8, 0.75]}),
    }
    result = across_seeds(by_seed, CLASSES, reference=5, confidence=0.95)
    assert set(result) == {"freeze0", "freeze3"}
    cell = result["freeze0"]["a"]
    assert cell["per_seed"] == pytest.approx([0.3, 0.3, 0.25])  # reference minus model, seed by seed
    ref = [by_seed[s].loc["freeze5", "a"] for s in (2022, 2023, 2024)]
    model = [by_seed[s].loc["freeze0", "a"] for s in (2022, 2023, 2024)]
    assert cell["pvalue"] == pytest.approx(stats.ttest_rel(ref, model).pvalue, rel=1e-12)
    for per_class in result.values():  # the family: one model's classes
        raw = [per_class[c]["pvalue"] for c in CLASSES]
        assert [per_class[c]["pvalue_holm"] for c in CLASSES] == pytest.approx(list(holm(raw)))


def test_one_seed_leaves_every_cell_untested():
    result = across_seeds({2022: _table({"freeze0": [0.5, 0.9, 0.8], "freeze5": [0.8, 0.9, 0.8]})}, CLASSES, 5, 0.95)
    assert all(c["pvalue"] is None and c["pvalue_holm"] is None for c in result["freeze0"].values())


def test_mcnemar_holm_family_is_one_models_classes():
    labels = np.repeat([0, 1, 2], 10)
    right = labels.copy()
    wrong_a, wrong_b = labels.copy(), labels.copy()
    wrong_a[:6] = 1  # model 0 misses 6 of class a
    wrong_b[10:13] = 2  # model 3 misses 3 of class b
    frames = {k: pd.DataFrame({"row": np.arange(30), "label": labels, "predicted": p})
              for k, p in ((5, right), (0, wrong_a), (3, wrong_b))}
    result = mcnemar_by_class(frames, CLASSES, 5, 0.95)
    for per_class in result.values():
        raw = [per_class[c]["pvalue"] for c in CLASSES]
        assert [per_class[c]["pvalue_holm"] for c in CLASSES] == pytest.approx(list(holm(raw)))


def test_mean_over_seeds_and_pain_summary():
    tables = {1: _table({"freeze0": [0.2, 0.4, 0.6]}), 2: _table({"freeze0": [0.4, 0.6, 0.8]})}
    assert mean_over_seeds(tables).loc["freeze0", list(CLASSES)].tolist() == pytest.approx([0.3, 0.5, 0.7])
    measures = ("precision", "recall", "f1")
    seed_a = {"accuracy": 0.8, **{m: {"no_pain": 0.9, "pain": 0.7, "macro": 0.8} for m in measures}}
    seed_b = {"accuracy": 0.6, **{m: {"no_pain": 0.7, "pain": 0.5, "macro": 0.6} for m in measures}}
    summary = summarise_pain({2023: seed_b, 2022: seed_a})
    assert summary["accuracy"] == pytest.approx(0.7) and summary["recall"]["pain"] == pytest.approx(0.6)
    assert summary["sd"]["accuracy"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert summary["n_seeds"] == 2 and summary["seeds"] == [2022, 2023]


def _null_study(rng: np.random.Generator, n_seeds: int, n_images: int, seed_sd: float) -> dict[int, pd.DataFrame]:
    """Per seed, the reference and one compared model on the same images of one class, no true difference.

    logit P(correct) = 1.6 + a_i + b_sm + u_smi: image difficulty a_i (SD 1.5) shared by both models and every
    seed, how well a seed's training of a model went b_sm (SD seed_sd), which images that model gets right
    u_smi (SD 1). Recall near 0.74, as the default run's contempt (bench/seed_tests.py has the full model).
    """
    image = rng.normal(0.0, 1.5, n_images)                                  # (N,)
    tables = {}
    for seed in range(n_seeds):
        logits = 1.6 + image + rng.normal(0.0, seed_sd, (2, 1)) + rng.normal(0.0, 1.0, (2, n_images))  # (2, N)
        recall = (rng.random((2, n_images)) < special.expit(logits)).mean(axis=1)  # (2,): freeze5, freeze0
        tables[seed] = pd.DataFrame({"a": recall, "b": recall, "c": recall, "macro": recall},
                                    index=["freeze5", "freeze0"])
    return tables


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_the_across_seed_test_keeps_alpha_on_null_data_with_seed_and_image_variation(n_seeds):
    # 400 null studies: the 95 % binomial range of a calibrated test's rejections is about 0.03-0.07; the
    # contract asks for [0.01, 0.10]. Seed-dominated variation (b_sm SD 0.6) is where image-level tests fail
    # (bench/seed_tests.py: McNemar on pooled image pairs rejects > 20 %).
    rng = np.random.default_rng(17)
    rejections = [across_seeds(_null_study(rng, n_seeds, 100, 0.6), ("a",), 5, 0.95)["freeze0"]["a"]["pvalue"] < 0.05
                  for _ in range(400)]
    assert 0.01 <= np.mean(rejections) <= 0.10, np.mean(rejections)


def test_the_across_seed_test_finds_a_large_real_drop():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(50):
        tables = _null_study(rng, 5, 100, 0.1)
        for t in tables.values():
            t.loc["freeze0"] -= 0.15  # the compared model loses 0.15 recall in every seed
        hits += across_seeds(tables, ("a",), 5, 0.95)["freeze0"]["a"]["pvalue"] < 0.05
    assert hits >= 45
