"""The saliency core: loading test images (with and without AU labels), contrast sets, streamed explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facetransfer.analysis import saliency as core
from facetransfer.config import ModelSpec
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS
from facetransfer.explain import (
    dice_iou,
    gradcam_maps,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from facetransfer.training.recipes import build

SIZE = 64


def _random_test_images(n=10, seed=0) -> core.TestImages:
    rng = np.random.default_rng(seed)
    regions = rng.random((n, len(ACTION_UNITS), SIZE, SIZE)) < 0.1
    present = rng.random((n, len(ACTION_UNITS))) < 0.3
    present[0] = False  # one image without any AU: not scorable
    return core.TestImages(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 8, n),
                           np.arange(100, 100 + n), present, np.packbits(regions, axis=-1))


def _prepared(tmp_path, mask_rows, gt=True):
    n = len(mask_rows)
    table = pd.DataFrame({"row": np.arange(n), "label": np.arange(n) % 8, "mask_row": mask_rows})
    if gt:
        table = table.assign(**{f"gt_au_{au}": (np.arange(n) + au) % 3 for au in ACTION_UNITS})
    table.to_csv(tmp_path / "test.csv", index=False)
    np.save(tmp_path / "images.npy", np.zeros((n, 8, 8, 3), np.uint8))
    masked = int((np.asarray(mask_rows) >= 0).sum())
    np.save(tmp_path / "masks.npy", np.zeros((max(masked, 1), len(ACTION_UNITS), 8, 1), np.uint8))
    return tmp_path


def test_load_test_images_leaves_out_rows_without_landmarks(tmp_path, capsys):
    data = core.load_test_images(_prepared(tmp_path, [0, -1, 1, 2]))
    assert data.rows.tolist() == [0, 2, 3] and data.present.shape == (3, len(ACTION_UNITS))
    assert "1 of 4 rows have no landmarks" in capsys.readouterr().err


def test_load_test_images_without_au_labels(tmp_path):
    prepared = _prepared(tmp_path, [0, 1], gt=False)
    with pytest.raises(DatasetFormatError, match=r"test\.csv: no gt_au_\* columns"):
        core.load_test_images(prepared)
    data = core.load_test_images(prepared, require_labels=False)
    assert data.present is None and data.shown(np.array([0])) is None
    assert core.localisation_indices(data, 0).size == 0
    with pytest.raises(ValueError, match="true regions are unknown"):
        data.truth(np.array([0]))


def test_load_test_images_refuses_data_without_any_landmarks(tmp_path):
    with pytest.raises(DatasetFormatError, match="no row has landmarks"):
        core.load_test_images(_prepared(tmp_path, [-1, -1]))


def test_contrast_sets_hold_each_pairs_contrast_images_and_their_union_for_the_reference():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = {"freeze5": labels.copy(), "freeze0": np.array([1, 0, 0, 1, 2, 0]),
                   "freeze1": np.array([0, 1, 1, 0, 2, 2])}
    predictions["freeze5"][5] = 0  # the reference is wrong on image 5: never a contrast image
    sets = core.contrast_sets(predictions, labels, "freeze5", ["freeze0", "freeze1"], cap=100)
    assert sets["freeze0"].tolist() == [0, 2] and sets["freeze1"].tolist() == [1, 3]
    assert sets["freeze5"].tolist() == [0, 1, 2, 3]
    capped = core.contrast_sets(predictions, np.zeros(6, int), "freeze5", ["freeze0"], cap=1)
    assert capped["freeze0"].size <= 1


def test_kept_maps_index_like_the_full_array_and_refuse_images_not_kept():
    full = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
    keep = np.array([1, 4, 7])
    kept = core.KeptMaps(keep, full[keep])
    np.testing.assert_array_equal(kept[np.array([7, 1])], full[[7, 1]])
    assert kept[np.array([], np.int64)].shape == (0, 2, 2)
    with pytest.raises(KeyError, match="not kept"):
        kept[np.array([2])]


def test_explain_model_streams_the_same_maps_and_scores_as_the_whole_set_at_once():
    """Reference: every map of every image in one go, scored with the textbook functions."""
    torch.manual_seed(0)
    model = build(ModelSpec(), 8).eval()
    data = _random_test_images()
    keep, scored = np.array([1, 4, 7]), np.array([0, 1, 2, 5, 9])
    got = core.explain_model(model, data, keep, scored, threshold=0.5, batch_size=3, device="cpu")

    lrp = core.all_maps(model, data, batch_size=10, device="cpu")  # (N, H, W)
    cams = gradcam_maps(model, data.images, data.labels, batch_size=10)
    np.testing.assert_allclose(got.lrp[keep], lrp[keep], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.gradcam[keep], cams[keep], rtol=1e-4, atol=1e-6)
    truth = data.truth(scored)
    dice, iou = dice_iou(cams[scored], truth, 0.5)
    expected = {"relevance_mass_accuracy": relevance_mass_accuracy(lrp[scored], truth),
                "relevance_rank_accuracy": relevance_rank_accuracy(lrp[scored], truth),
                "pointing_game": pointing_game(lrp[scored], truth), "dice": dice, "iou": iou}
    assert got.scores["row"].tolist() == data.rows[scored].tolist()
    for key, value in expected.items():
        np.testing.assert_allclose(got.scores[key], value, rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=key)
    summary = core.summarise_localisation(got.scores)
    assert summary["n_images"] == 5
    assert summary["lrp"]["pointing_game"] == pytest.approx(np.nanmean(expected["pointing_game"]))
    assert np.isnan(got.scores.loc[0, "pointing_game"])  # image 0 shows no AU: no true region


def test_rankings_across_seeds_test_each_au_over_seeds_with_holm_over_the_models_cells():
    from scipy import stats

    from facetransfer.analysis.saliency import rankings_across_seeds
    from facetransfer.data.labels import ACTION_UNITS
    from facetransfer.stats import holm

    def ranking(diffs: dict[int, float]) -> dict:
        return {"freeze0": {cls: {"n_images": 9, "ranking": [{"au": au, "mean_diff": d} for au, d in diffs.items()]}
                            for cls in ("sad", "contempt")}}

    by_seed = {1: ranking({14: 0.10, 5: 0.01}), 2: ranking({14: 0.12, 5: -0.02}), 3: ranking({14: 0.08})}
    across = rankings_across_seeds(by_seed, 0.95, 0.05)["freeze0"]
    au14 = across["contempt"][0]
    assert au14["au"] == 14 and au14["n_seeds"] == 3 and au14["mean_diff"] == pytest.approx(0.10)
    assert au14["pvalue"] == pytest.approx(stats.ttest_1samp([0.10, 0.12, 0.08], 0.0).pvalue, rel=1e-9)
    au5 = next(r for r in across["contempt"] if r["au"] == 5)
    assert au5["n_seeds"] == 2 and au5["per_seed"] == [0.01, -0.02, None]  # seed 3 had too few images for AU5
    untested = [r for r in across["sad"] if r["n_seeds"] == 0]
    assert len(untested) == len(ACTION_UNITS) - 2 and all(r["pvalue_holm"] is None for r in untested)
    cells = [r for rows in across.values() for r in rows if r["pvalue"] is not None]  # 2 classes x 2 AUs
    assert len(cells) == 4
    assert [r["pvalue_holm"] for r in cells] == pytest.approx(list(holm([r["pvalue"] for r in cells])))
    assert au14["flagged"] == (au14["pvalue_holm"] < 0.05)
