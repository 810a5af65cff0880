"""Report figures: each draws what its docstring promises (lines, bars, cells), headless."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facetransfer.report.figures import (
    confusion_pair,
    learning_curves,
    mask_sheet,
    recall_bars,
    saliency_grid,
    signed_difference,
)


def _history(f1):
    return pd.DataFrame({"step": np.arange(1, len(f1) + 1) * 10, "val_macro_f1": f1, "val_loss": 2 - np.asarray(f1)})


def test_learning_curves_one_line_per_variant_and_styles_by_schedule():
    histories = {"plain": _history([0.1, 0.2]), "mean": _history([0.1, 0.1]), "mean-then-plain": _history([0.1, 0.3])}
    fig = learning_curves(histories, target_f1=0.25)
    f1_axis, loss_axis = fig.axes
    lines = {line.get_label(): line for line in f1_axis.get_lines()}
    assert set(lines) == {"plain", "mean", "mean-then-plain", "target F1 0.25"}
    assert lines["mean-then-plain"].get_linestyle() == "--" and lines["mean"].get_linestyle() == "-"
    assert lines["mean"].get_color() == lines["mean-then-plain"].get_color() != lines["plain"].get_color()
    np.testing.assert_allclose(lines["mean-then-plain"].get_ydata(), [0.1, 0.3])
    assert len(loss_axis.get_lines()) == 3


def test_confusion_pair_shows_counts_and_row_rates():
    counts = np.array([[3, 1], [0, 4]])
    fig = confusion_pair({"plain": counts, "mean": counts.T}, ["a", "b"])
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].texts] == ["3", "1", "0", "4"]
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), [[0.75, 0.25], [0.0, 1.0]])


def test_recall_bars_one_bar_per_model_and_class():
    table = pd.DataFrame([[0.5, 0.7], [0.6, 0.8]], index=["freeze0", "freeze5"], columns=["happy", "macro"])
    fig = recall_bars(table)
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    np.testing.assert_allclose(heights, [0.5, 0.6, 0.7, 0.8])


def test_mask_sheet_rows_of_three_panels():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    keep = np.ones((2, 4, 4), bool)
    fig = mask_sheet(images, keep, images, "mean")
    assert len(fig.axes) == 6


def test_unit_patches_one_row_per_unit():
    from facetransfer.report.unit_figures import unit_patches

    fig = unit_patches([("unit 1", np.zeros((3, 8, 8, 3), np.uint8)), ("unit 2", np.zeros((2, 8, 8, 3), np.uint8))])
    assert len(fig.axes) == 6 and fig.axes[0].get_title(loc="left") == "unit 1"
    assert sum(len(ax.images) for ax in fig.axes) == 5


def test_signed_difference_keeps_the_sign_and_scales_by_the_largest_magnitude():
    reference = np.array([[[1.0, 0.0], [0.5, 2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    model = np.array([[[0.0, 4.0], [0.5, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    # by hand: d = [[1, -4], [0, 2]], largest |d| 4; the second pair has no difference at all
    np.testing.assert_allclose(signed_difference(reference, model), [[[0.25, -1.0], [0.0, 0.5]], np.zeros((2, 2))])


def test_saliency_grid_draws_grad_cam_columns_and_a_diverging_difference():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    maps = np.full((2, 4, 4), 0.5)
    fig = saliency_grid(images, maps, maps, maps - 0.5, ("freeze5", "freeze0"), "t", gradcam=(maps, maps))
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes[:6]] == ["input", "LRP freeze5", "LRP freeze0", "freeze5 - freeze0",
                                                       "Grad-CAM freeze5", "Grad-CAM freeze0"]
    difference = fig.axes[3].images[0]
    assert difference.get_cmap().name == "RdBu_r" and difference.get_clim() == (-1, 1)
    assert len(saliency_grid(images, maps, maps, maps, ("a", "b"), "t").axes) == 8


def test_forgetting_forest_one_panel_per_model_and_interval_per_class():
    from facetransfer.report.figures import forgetting_forest

    rows = pd.DataFrame([{"model": m, "class": c, "mean_diff": 0.1, "ci_low": 0.0, "ci_high": 0.2,
                          "pvalue_holm": p, "per_seed": "+0.050 +0.150"}
                         for m, p in (("freeze0", 0.01), ("freeze3", 0.5)) for c in ("sad", "contempt")])
    fig = forgetting_forest(rows, 0.95)
    assert [ax.get_title() for ax in fig.axes] == ["freeze0", "freeze3"]
    ticks = {t.get_text(): y for t, y in zip(fig.axes[0].get_yticklabels(), fig.axes[0].get_yticks(), strict=True)}
    assert ticks["sad"] > ticks["contempt"]  # the first class on top
    assert len(fig.axes[0].lines) == 2 + 1  # two intervals and the zero line


def test_cka_lines_one_line_per_model_with_bands_where_there_are_seeds():
    from facetransfer.report.figures import cka_lines

    seeded = {f"block{b}": {"mean": 1.0 - b / 10, "ci_low": 0.8 - b / 10, "ci_high": 1.0, "n_seeds": 3}
              for b in range(1, 6)}
    single = {f"block{b}": {"mean": 0.9, "ci_low": None, "ci_high": None, "n_seeds": 1} for b in range(1, 6)}
    fig = cka_lines({"freeze0": seeded, "negative": single}, 0.95)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["freeze0", "negative"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.9, 0.8, 0.7, 0.6, 0.5])
    assert len(ax.collections) == 1  # one interval band: the control has none
