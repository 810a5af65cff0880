"""The concepts stage: planted concepts are found, equal models are not flagged, the CLI writes its outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.concepts import block_features, last_block_features, study
from facetransfer.config import ConceptsConfig, ModelSpec, PrepareConfig
from facetransfer.data.prepare import prepare
from facetransfer.training.recipes import MODEL_FORMAT, build


def _probe_images(rng, n=120):
    aus = {f"au_{au}": np.where(rng.random(n) < 0.35, 1.0, np.nan) for au in (5, 14)}
    return study.ProbeImages(np.zeros((n, 4, 4, 3), np.uint8), None, pd.DataFrame(aus))


def test_planted_forgetting_is_found_and_equal_models_are_not_flagged():
    rng = np.random.default_rng(0)
    data = _probe_images(rng)
    au5, au14 = data.labels(5), data.labels(14)
    shared = rng.standard_normal((120, 8)) + 1.2 * au14[:, None] * (np.arange(8) < 2)
    carries_au5 = 1.5 * au5[:, None] * (np.arange(8) >= 6)
    features = {("freeze5", "full", 5): shared + carries_au5,
                ("freeze0", "full", 5): shared,  # lost AU5, kept AU14
                ("freeze4", "full", 5): shared + carries_au5}  # identical to the reference
    cfg = ConceptsConfig(aus=(5, 14), upper_face_aus=(), compare=(0, 4), repeats=30, workers=2, blocks=(5,))
    scores = study.probe_all(features, data, cfg, workers=2)
    rows = {(r["au"], r["model_b"]): r for r in study.test_pairs(scores, data, cfg, "freeze5", ["freeze0", "freeze4"])}
    assert rows[5, "freeze0"]["forgotten"] and rows[5, "freeze0"]["mean_diff"] > 0.3
    assert not rows[14, "freeze0"]["forgotten"]
    for au in (5, 14):  # same features, same folds: exactly no difference
        assert rows[au, "freeze4"]["mean_diff"] == 0.0 and not rows[au, "freeze4"]["forgotten"]
    family = sorted(r["corrected"]["pvalue"] for (au, m), r in rows.items() if m == "freeze0")  # per compared model
    assert rows[5, "freeze0"]["corrected"]["pvalue_holm"] == pytest.approx(min(1.0, 2 * family[0]))
    everything = sorted(r["corrected"]["pvalue"] for r in rows.values())
    assert rows[5, "freeze0"]["corrected"]["pvalue_holm_all"] == pytest.approx(min(1.0, 4 * everything[0]))


def _seed_rows(diffs: dict[int, float]) -> dict[int, list[dict]]:
    return {s: [{"block": 5, "au": 5, "model_a": "freeze5", "model_b": "freeze0", "view": "full",
                 "mean_f1_a": 0.8, "mean_f1_b": 0.8 - d},
                {"block": 5, "au": 14, "model_a": "freeze5", "model_b": "freeze0", "view": "full",
                 "mean_f1_a": 0.7, "mean_f1_b": 0.7 + d / 10}] for s, d in diffs.items()}


def test_across_seeds_tests_each_seeds_mean_f1_difference_and_corrects_within_the_model():
    from scipy import stats

    from facetransfer.stats import holm

    across = {(r["au"], r["block"]): r for r in study.across_seeds(_seed_rows({1: 0.30, 2: 0.25, 3: 0.35}), 0.95, 0.05)}
    au5 = across[5, 5]
    assert au5["mean_diff"] == pytest.approx(0.30) and au5["n_seeds"] == 3
    assert au5["pvalue"] == pytest.approx(stats.ttest_1samp([0.30, 0.25, 0.35], 0.0).pvalue, rel=1e-9)
    raw = [across[5, 5]["pvalue"], across[14, 5]["pvalue"]]
    assert [across[5, 5]["pvalue_holm"], across[14, 5]["pvalue_holm"]] == pytest.approx(list(holm(raw)))
    assert au5["forgotten"] and not across[14, 5]["forgotten"]  # AU14 got better, not worse
    one = study.across_seeds(_seed_rows({1: 0.3}), 0.95, 0.05)
    assert all(r["pvalue"] is None and not r["forgotten"] for r in one)
    summary = study.across_summary(study.across_seeds(_seed_rows({1: 0.30, 2: 0.25}), 0.95, 0.05))
    assert set(summary["AU5"]["block5"]["freeze0"]) >= {"mean_diff", "ci_low", "pvalue_holm", "n_seeds", "forgotten"}


def test_upper_face_aus_use_the_upper_view():
    cfg = ConceptsConfig(aus=(5, 14), upper_face_aus=(5,))
    assert study.view(5, cfg) == "upper" and study.view(14, cfg) == "full"
    data = study.ProbeImages(np.zeros((4, 32, 32, 3), np.uint8), None, pd.DataFrame({"au_5": [1.0] * 4}))
    with pytest.raises(FileNotFoundError, match="upper.npy"):
        study.extract_features({"m": None}, data, cfg)


def test_missing_au_column_is_named():
    data = study.ProbeImages(np.zeros((2, 4, 4, 3), np.uint8), None, pd.DataFrame({"au_5": [1.0, np.nan]}))
    with pytest.raises(ValueError, match="au_14"):
        data.labels(14)


def test_last_block_features_is_the_flattened_block5_pool():
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.0625), 8).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    features = last_block_features(model, images, batch_size=2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1).double()
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1).double()
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255 - mean) / std
    with torch.no_grad():
        expected = model.double().features(x).reshape(5, -1)  # (5, 32 * 2 * 2)
    assert features.shape == (5, 32 * 2 * 2) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)
    # block 4: the features up to block 4's max-pool (VGG16-BN's block 5 is 3 x (conv, bn, relu) + pool)
    with torch.no_grad():
        expected4 = model.features[:-10](x).reshape(5, -1)  # (5, 32 * 4 * 4)
    features4 = block_features(model.float(), images, 4, batch_size=2)
    assert features4.shape == (5, 32 * 4 * 4)
    np.testing.assert_allclose(features4, expected4.numpy(), rtol=1e-4, atol=1e-5)


def test_concepts_stage_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("ckplus",))
    for training_seed in (7, 8):
        for k, seed in ((5, 0), (0, 1)):
            torch.manual_seed(seed + training_seed)
            model = build(ModelSpec(), 2)
            folder = tmp_path / "models" / f"seed{training_seed}" / f"freeze{k}"
            folder.mkdir(parents=True)
            torch.save({"format": MODEL_FORMAT, "stage": "train_pain", "arch": ModelSpec().model_dump(),
                        "classes": ["no_pain", "pain"], "state_dict": model.state_dict()}, folder / "model.pt")
    params = tmp_path / "params.yaml"
    params.write_text("concepts: {aus: [5, 12], compare: [0], repeats: 6, workers: 1, blocks: [5]}\n"
                      "study: {seeds: [7, 8], detail_seed: 7}\n")
    out, metrics, summary = tmp_path / "out", tmp_path / "concepts.json", tmp_path / "summary.json"
    result = CliRunner().invoke(app, [
        "concepts", "--models", str(tmp_path / "models"), "--data", str(tmp_path / "prepared" / "ckplus"),
        "--out", str(out), "--metrics", str(metrics), "--summary", str(summary),
        "--run-id", str(tmp_path / "run.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    rows = json.loads(metrics.read_text())
    assert [(r["seed"], r["au"], r["model_a"], r["model_b"], r["view"]) for r in rows] == [
        (s, au, "freeze5", "freeze0", v) for s in (7, 8) for au, v in ((5, "upper"), (12, "full"))]
    for row in rows:
        assert {"mean_f1_a", "mean_f1_b"} <= set(row) and row["block"] == 5 and row["grouped_by_subject"]
        for test in ("plain", "corrected", "five_by_two"):
            assert {"statistic", "pvalue", "pvalue_holm"} <= set(row[test])
    across = json.loads(summary.read_text())
    assert set(across) == {"AU5", "AU12"} and across["AU12"]["block5"]["freeze0"]["n_seeds"] == 2
    assert np.load(out / "f1_scores.npz")["seed8_freeze0_au12_block5"].shape == (6, 2)
    assert all((out / f).is_file() for f in ("tests.csv", "tests.md", "f1_differences.png"))
    assert json.loads((tmp_path / "run.json").read_text())["run_id"]


def test_concepts_stage_names_a_missing_model(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("concepts: {compare: [0]}\nstudy: {seeds: [2022], detail_seed: 2022}\n")
    result = CliRunner().invoke(app, ["concepts", "--models", str(tmp_path), "--data", str(tmp_path),
                                      "--out", str(tmp_path / "o"), "--metrics", str(tmp_path / "m.json"),
                                      "--summary", str(tmp_path / "s.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code == 2 and "seed2022/freeze5/model.pt: not found" in result.output
