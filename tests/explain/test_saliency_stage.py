"""The saliency stage on a tiny prepared benchmark with random models: outputs and their layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.concepts.study import ranked_candidates
from facetransfer.config import ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.training.recipes import MODEL_FORMAT, build


def _save(path, seed, stage="retrain_emotion"):
    torch.manual_seed(seed)
    path.mkdir(parents=True)
    torch.save({"format": MODEL_FORMAT, "stage": stage, "arch": ModelSpec().model_dump(), "classes": list(EMOTIONS),
                "state_dict": build(ModelSpec(), 8).state_dict()}, path / "model.pt")


def _stage_inputs(tmp_path, prepared):
    """Random models; FreezeB5 always right, FreezeB0 right half the time: contrast images in every class."""
    test = pd.read_csv(prepared / "test.csv")
    rng = np.random.default_rng(0)
    _save(tmp_path / "emotion", 0, "train_emotion")
    for seed in (1, 2):  # two training seeds: the detail seed 1, and seed 2 for the ranking across seeds
        for k in (5, 0):
            folder = tmp_path / "retrain" / f"seed{seed}" / f"freeze{k}"
            _save(folder, k + 1 + 10 * seed)
            predicted = test["label"] if k == 5 else np.where(rng.random(len(test)) < 0.5, test["label"],
                                                              (test["label"] + 1) % 8)
            pd.DataFrame({"row": test["row"], "label": test["label"], "predicted": predicted}).to_csv(
                folder / "test_predictions.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text("saliency: {compare: [0], grid_images: 2, min_images: 1, device: cpu, batch_size: 16}\n"
                      "study: {seeds: [1, 2], detail_seed: 1}\n")
    return params


def _run_stage(tmp_path, prepared, params):
    out, ranking, metrics = tmp_path / "saliency", tmp_path / "saliency" / "au_ranking.json", tmp_path / "loc.json"
    result = CliRunner().invoke(app, [
        "saliency", "--retrain", str(tmp_path / "retrain"), "--source", str(tmp_path / "emotion"),
        "--data", str(prepared), "--out", str(out), "--ranking", str(ranking),
        "--metrics", str(metrics), "--run-id", str(tmp_path / "run.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    return out, json.loads(ranking.read_text()), json.loads(metrics.read_text()), result.output


def test_saliency_stage_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("affectnet",))
    prepared = tmp_path / "prepared" / "affectnet"
    out, summary, scores, _ = _run_stage(tmp_path, prepared, _stage_inputs(tmp_path, prepared))
    assert summary["reference"] == "freeze5" and set(summary["pairs"]["freeze0"]) == set(EMOTIONS)
    contempt = summary["pairs"]["freeze0"]["contempt"]
    assert contempt["n_images"] > 0 and len(contempt["ranking"]) == 17
    assert {"au", "mass_reference", "mass_model", "mean_diff", "pvalue", "pvalue_holm"} <= set(contempt["ranking"][0])
    assert set(scores) == {"emotion", "freeze5", "freeze0"}
    for s in scores.values():
        assert 0 <= s["lrp"]["relevance_mass_accuracy"] <= 1 and 0 <= s["gradcam"]["iou"] <= 1
    maps = np.load(out / "maps" / "freeze5_vs_freeze0.npz")
    n = contempt["n_images"]
    for key in ("reference", "model", "difference", "gradcam_reference", "gradcam_model"):
        assert maps[f"contempt_{key}"].shape == (n, 64, 64), key
    assert 0 <= maps["contempt_gradcam_model"].min() and maps["contempt_gradcam_model"].max() <= 1
    assert len(list((out / "grids").glob("*.png"))) == 8
    per_image = pd.read_csv(out / "localisation" / "per_image.csv")
    assert set(per_image["model"]) == set(scores) and (out / "localisation" / "localisation.png").is_file()
    emotion = per_image[per_image["model"] == "emotion"]
    assert len(emotion) == scores["emotion"]["n_images"]
    assert np.isclose(emotion["dice"].mean(), scores["emotion"]["gradcam"]["dice"])
    assert ranked_candidates(summary, ["freeze0"], top=1).keys() <= set(range(1, 44))
    across = summary["across_seeds"]["freeze0"]["contempt"]  # the ranking over both seeds
    assert summary["seeds"] == [1, 2] and len(across) == 17
    tested = [r for r in across if r["n_seeds"] == 2]
    assert tested and all(len(r["per_seed"]) == 2 and r["pvalue_holm"] is not None for r in tested)
    first_seed = {r["au"]: r["mean_diff"] for r in contempt["ranking"]}
    assert all(r["per_seed"][0] == first_seed[r["au"]] for r in tested)  # seed 1 is the detail seed's ranking


def test_saliency_stage_runs_on_real_data_without_au_labels(tmp_path, smoke_benchmark, monkeypatch):
    """Real AffectNet has landmarks but no AU labels: rank every AU on every contrast image, skip localisation."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    real = tmp_path / "real"
    shutil.copytree(smoke_benchmark / "affectnet", real / "affectnet")
    (real / "affectnet" / "groundtruth.csv").unlink()
    prepare(real, tmp_path / "prepared", PrepareConfig(), datasets=("affectnet",))
    prepared = tmp_path / "prepared" / "affectnet"
    assert not any(c.startswith("gt_au_") for c in pd.read_csv(prepared / "test.csv").columns)
    out, summary, scores, output = _run_stage(tmp_path, prepared, _stage_inputs(tmp_path, prepared))
    assert "no ground-truth AU columns" in output
    assert set(scores) == {"skipped"}
    contempt = summary["pairs"]["freeze0"]["contempt"]
    assert contempt["n_images"] >= 1 and all(r["n_images"] == contempt["n_images"] for r in contempt["ranking"])
    assert len(list((out / "grids").glob("*.png"))) == 8
    assert not (out / "localisation" / "localisation.png").exists()


def test_ranked_candidates_take_significant_positive_aus_only():
    ranking = {"alpha": 0.05, "pairs": {"freeze0": {
        "surprise": {"ranking": [{"au": 5, "mean_diff": 0.08, "pvalue_holm": 0.001},
                                 {"au": 7, "mean_diff": 0.07, "pvalue_holm": 0.002}]},
        "contempt": {"ranking": [{"au": 14, "mean_diff": 0.002, "pvalue_holm": 0.24}]},
        "fear": {"ranking": [{"au": 4, "mean_diff": -0.1, "pvalue_holm": 0.0}]}}}}
    assert ranked_candidates(ranking, ["freeze0"], top=1) == {5: ["freeze0/surprise"]}
    assert ranked_candidates(ranking, ["freeze0"], top=2) == {5: ["freeze0/surprise"], 7: ["freeze0/surprise"]}
    assert ranked_candidates(ranking, ["freeze1"], top=1) == {}
