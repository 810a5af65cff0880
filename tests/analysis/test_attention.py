"""Attention study core: the six-class subset, class AU regions, subject-disjoint folds, the tables, the inits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from facetransfer.analysis.attention import (
    BASIC,
    FoldResult,
    accuracy_table,
    basic_subset,
    build_variant,
    class_truth,
    folds,
    localisation_table,
)
from facetransfer.analysis.saliency import TestImages
from facetransfer.config import AttentionStudyConfig, ModelSpec
from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.training.recipes import build

ARCH = ModelSpec(width=0.125)


def _images(labels, present_aus, size=8):
    """Tiny TestImages: AU a's region is row ACTION_UNITS.index(a) % size of the image."""
    n, a = len(labels), len(ACTION_UNITS)
    present = np.zeros((n, a), bool)
    regions = np.zeros((n, a, size, size), bool)
    for i, aus in enumerate(present_aus):
        present[i, [ACTION_UNITS.index(au) for au in aus]] = True
    for j in range(a):
        regions[:, j, j % size, :] = True
    packed = np.packbits(regions, axis=-1)
    return TestImages(np.zeros((n, size, size, 3), np.uint8), np.asarray(labels), np.arange(n), present, packed)


def test_basic_subset_drops_neutral_and_contempt_and_renumbers():
    labels = [EMOTIONS.index(e) for e in ("neutral", "happy", "anger", "contempt", "sad")]
    subset, groups = basic_subset(_images(labels, [()] * 5), np.array(["a", "b", "c", "d", "e"]))
    assert list(subset.labels) == [BASIC.index("happy"), BASIC.index("anger"), BASIC.index("sad")]
    assert list(groups) == ["b", "c", "e"] and list(subset.rows) == [1, 2, 4]


def test_class_truth_is_the_union_of_shown_prototype_aus_only():
    # happy = AU6 + AU12; the image also shows AU4, which is not part of happy's prototype
    images = _images([BASIC.index("happy")], [(6, 12, 4)])
    truth = class_truth(images, np.array([0]))[0]
    expected_rows = {ACTION_UNITS.index(6) % 8, ACTION_UNITS.index(12) % 8}
    assert {int(r) for r in np.nonzero(truth.any(axis=1))[0]} == expected_rows


def test_folds_are_subject_disjoint_and_cover_everything():
    labels = np.tile(np.arange(6), 10)
    groups = np.repeat(np.arange(30), 2)
    splits = folds(labels, groups, 3, seed=0)
    held = np.concatenate([h for _, h in splits])
    assert sorted(held) == list(range(60))
    for train, held in splits:
        assert not set(groups[train]) & set(groups[held])


def _result(init, attention, fold, ck, fer, dice):
    loc = pd.DataFrame({"class": ["happy", "sad"], "dice": [dice, dice / 2], "iou": [dice / 2, np.nan]})
    return FoldResult(init, attention, fold, {"ckplus": ck, "ferplus": fer}, loc, [1.0])


def test_accuracy_and_localisation_tables_by_hand():
    results = [_result("scratch", "none", 0, 0.5, 0.2, 0.4), _result("scratch", "none", 1, 0.7, 0.4, 0.6)]
    table = accuracy_table(results).set_index(["init", "attention", "dataset"])
    assert table.loc[("scratch", "none", "ckplus"), "mean"] == pytest.approx(0.6)
    assert table.loc[("scratch", "none", "ckplus"), "sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert table.loc[("scratch", "none", "ferplus"), "folds"] == 2
    places = localisation_table(results).set_index("class")
    assert places.loc["happy", "dice"] == pytest.approx(0.5) and places.loc["happy", "iou"] == pytest.approx(0.25)
    assert np.isnan(places.loc["sad", "iou"])  # nothing to compare in any image: NaN, not 0


def test_pretrained_copies_the_source_conv_weights_and_scratch_does_not():
    torch.manual_seed(0)
    source = build(ARCH, len(EMOTIONS))
    cfg = AttentionStudyConfig()
    pretrained = build_variant("pretrained", "se", ARCH, source.state_dict(), cfg)
    scratch = build_variant("scratch", "se", ARCH, None, cfg)
    first = source.features[0].weight
    assert torch.equal(pretrained.features[0].weight, first) and not torch.equal(scratch.features[0].weight, first)
    assert pretrained.classifier[-1].out_features == len(BASIC)
    assert sum(isinstance(m, nn.Module) and type(m).__name__ == "SEModule" for m in pretrained.features) == 3
    with pytest.raises(ValueError, match="needs the emotion source model"):
        build_variant("pretrained", "none", ARCH, None, cfg)


def test_imagenet_init_loads_the_cached_torchvision_file(torch_home, no_network):
    from torchvision.models import VGG16_Weights

    from tests.models.test_vgg import cache_name, fake_imagenet_file

    fake = fake_imagenet_file(torch_home / cache_name(VGG16_Weights.IMAGENET1K_V1), batch_norm=False)
    model = build_variant("imagenet", "cbam", ModelSpec(width=1.0, batch_norm=False), None, AttentionStudyConfig())
    assert torch.equal(model.features[0].weight, fake["features.0.weight"])
    assert model.classifier[-1].out_features == len(BASIC)


@pytest.mark.real_threads
def test_training_runs_on_the_params_thread_count(monkeypatch):
    from facetransfer.analysis import attention
    from facetransfer.training import loop

    seen = []
    monkeypatch.setattr(loop, "train_one_epoch", lambda *args: seen.append(torch.get_num_threads()) or 0.0)
    cfg = AttentionStudyConfig(epochs=2, threads=1, device="cpu")
    before = torch.get_num_threads()
    attention.train(build(ARCH, 6), np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2, cfg, 0, torch.device("cpu"))
    assert seen == [1, 1] and torch.get_num_threads() == before
