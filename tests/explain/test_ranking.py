"""AU ranking: a planted relevance shift is ranked first and tested; unshown AUs are not ranked."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from facetransfer.explain import rank_aus


def test_planted_au_ranks_first_with_wilcoxon_and_holm():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.1, 0.3, (30, 4))
    noise = rng.normal(0, 0.01, (15, 4))
    model = reference + np.concatenate([noise, -noise])  # symmetric differences: Wilcoxon p = 1
    model[:, 2] -= 0.05  # the model put less relevance in AU "c"'s region
    rows = rank_aus(reference, model, (1, 2, 5, 9))
    assert [r["au"] for r in rows][0] == 5
    top = rows[0]
    assert top["mean_diff"] == pytest.approx((reference[:, 2] - model[:, 2]).mean())
    assert top["pvalue"] == pytest.approx(stats.wilcoxon(reference[:, 2] - model[:, 2]).pvalue)
    raw = sorted(r["pvalue"] for r in rows)
    assert top["pvalue_holm"] == pytest.approx(min(1.0, 4 * raw[0]))
    assert top["pvalue_holm"] < 0.05 and all(r["pvalue_holm"] > 0.05 for r in rows[1:])


def test_only_images_showing_an_au_count_and_too_few_rank_last():
    reference = np.array([[0.5, 0.2], [0.5, 0.2], [0.5, 0.2]])
    model = np.array([[0.1, 0.2], [0.1, 0.2], [0.9, 0.2]])
    shown = np.array([[True, True], [True, True], [False, True]])  # AU 1 not shown on image 3
    rows = rank_aus(reference, model, (1, 2), shown=shown, min_images=2)
    assert rows[0]["au"] == 1 and rows[0]["n_images"] == 2 and rows[0]["mean_diff"] == pytest.approx(0.4)
    assert rows[1]["mean_diff"] == 0.0 and rows[1]["pvalue"] == 1.0  # identical shares: nothing to test
    rows = rank_aus(reference, model, (1, 2), shown=shown, min_images=3)
    assert rows[-1]["au"] == 1 and np.isnan(rows[-1]["mean_diff"]) and rows[-1]["pvalue_holm"] == 1.0


def test_rank_aus_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        rank_aus(np.zeros((2, 2)), np.zeros((2, 2)), (1, 2, 4))
