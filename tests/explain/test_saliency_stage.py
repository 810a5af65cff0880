"""The saliency stage on a tiny prepared benchmark with random models: outputs and their layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.concepts.study import ranked_candidates
from facetransfer.config import ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.training.stages import MODEL_FORMAT, build


def _save(path, seed):
    torch.manual_seed(seed)
    path.mkdir(parents=True)
    torch.save({"format": MODEL_FORMAT, "arch": ModelSpec().model_dump(), "classes": list(EMOTIONS),
                "state_dict": build(ModelSpec(), 8).state_dict()}, path / "model.pt")


def test_saliency_stage_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("affectnet",))
    test = pd.read_csv(tmp_path / "prepared" / "affectnet" / "test.csv")
    rng = np.random.default_rng(0)
    _save(tmp_path / "emotion", 0)
    for k in (5, 0):
        _save(tmp_path / "retrain" / f"freeze{k}", k + 1)
        # FreezeB5 always right, FreezeB0 right half the time: contrast images in every class.
        predicted = test["label"] if k == 5 else np.where(rng.random(len(test)) < 0.5, test["label"], (test["label"] + 1) % 8)
        pd.DataFrame({"row": test["row"], "label": test["label"], "predicted": predicted}).to_csv(
            tmp_path / "retrain" / f"freeze{k}" / "test_predictions.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text("saliency: {compare: [0], grid_images: 2, min_images: 1, device: cpu}\n")
    out, ranking, metrics = tmp_path / "saliency", tmp_path / "saliency" / "au_ranking.json", tmp_path / "loc.json"
    result = CliRunner().invoke(app, [
        "saliency", "--retrain", str(tmp_path / "retrain"), "--source", str(tmp_path / "emotion"),
        "--data", str(tmp_path / "prepared" / "affectnet"), "--out", str(out), "--ranking", str(ranking),
        "--metrics", str(metrics), "--run-id", str(tmp_path / "run.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads(ranking.read_text())
    assert summary["reference"] == "freeze5" and set(summary["pairs"]["freeze0"]) == set(EMOTIONS)
    contempt = summary["pairs"]["freeze0"]["contempt"]
    assert contempt["n_images"] > 0 and len(contempt["ranking"]) == 17
    assert {"au", "mass_reference", "mass_model", "mean_diff", "pvalue", "pvalue_holm"} <= set(contempt["ranking"][0])
    scores = json.loads(metrics.read_text())
    assert set(scores) == {"emotion", "freeze5", "freeze0"}
    for s in scores.values():
        assert 0 <= s["lrp"]["relevance_mass_accuracy"] <= 1 and 0 <= s["gradcam"]["iou"] <= 1
    maps = np.load(out / "maps" / "freeze5_vs_freeze0.npz")
    assert maps["contempt_reference"].shape == maps["contempt_difference"].shape
    assert len(list((out / "grids").glob("*.png"))) == 8
    assert ranked_candidates(summary, ["freeze0"], top=1).keys() <= set(range(1, 44))


def test_ranked_candidates_take_significant_positive_aus_only():
    ranking = {"alpha": 0.05, "pairs": {"freeze0": {
        "surprise": {"ranking": [{"au": 5, "mean_diff": 0.08, "pvalue_holm": 0.001},
                                 {"au": 7, "mean_diff": 0.07, "pvalue_holm": 0.002}]},
        "contempt": {"ranking": [{"au": 14, "mean_diff": 0.002, "pvalue_holm": 0.24}]},
        "fear": {"ranking": [{"au": 4, "mean_diff": -0.1, "pvalue_holm": 0.0}]}}}}
    assert ranked_candidates(ranking, ["freeze0"], top=1) == {5: ["freeze0/surprise"]}
    assert ranked_candidates(ranking, ["freeze0"], top=2) == {5: ["freeze0/surprise"], 7: ["freeze0/surprise"]}
    assert ranked_candidates(ranking, ["freeze1"], top=1) == {}
