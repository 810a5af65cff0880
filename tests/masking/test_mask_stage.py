"""The mask stage on a tiny prepared FER+ with a random trainer: masked datasets and their layout."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import MaskConfig, ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.masking.dataset import apply_mask, keep_masks
from facetransfer.training.recipes import MODEL_FORMAT, build


def test_keep_masks_follow_the_config_and_apply_zeroes_every_channel():
    relevance = np.random.default_rng(0).standard_normal((3, 10, 10))
    keep = keep_masks(relevance, MaskConfig(negative_fraction=0.2))
    assert all((~keep["negative"][i]).sum() == 20 for i in range(3))
    np.testing.assert_array_equal(keep["mean"], relevance >= relevance.mean(axis=(1, 2), keepdims=True))
    images = np.full((3, 10, 10, 3), 200, np.uint8)
    masked = apply_mask(images, keep["perceptive"])
    assert (masked[~keep["perceptive"]] == 0).all() and (masked[keep["perceptive"]] == 200).all()


def test_mask_stage_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("ferplus",))
    torch.manual_seed(0)
    torch.save({"format": MODEL_FORMAT, "stage": "train_emotion", "arch": ModelSpec().model_dump(),
                "classes": list(EMOTIONS), "state_dict": build(ModelSpec(), 8).state_dict()}, tmp_path / "model.pt")
    params = tmp_path / "params.yaml"
    params.write_text("mask: {device: cpu, sample_images: 2}\n")
    result = CliRunner().invoke(app, ["mask", "--trainer", str(tmp_path / "model.pt"),
                                      "--data", str(tmp_path / "prepared" / "ferplus"),
                                      "--out", str(tmp_path / "masked"),
                                      "--metrics", str(tmp_path / "m.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m.json").read_text())
    for method in ("negative", "mean", "perceptive"):
        folder = tmp_path / "masked" / method
        assert np.load(folder / "images.npy").shape[0] == summary["images"] > 0
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["method"] == method and 0 < meta["kept_fraction"] <= 1
        assert (folder / "sample.png").is_file()
    assert summary["kept_fraction"]["perceptive"] < summary["kept_fraction"]["negative"]
