"""train-trainee and trainee-report on a tiny prepared FER+: every variant's outputs, then the comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import PrepareConfig
from facetransfer.data.prepare import prepare

VARIANTS = ["plain", "mean", "mean-then-plain"]


@pytest.fixture
def stage_inputs(tmp_path, smoke_benchmark, monkeypatch):
    """Prepared FER+ plus a fake masked/mean dataset (left half of each image blanked), params for 2 short epochs."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("ferplus",))
    data = tmp_path / "prepared" / "ferplus"
    rows = pd.read_csv(data / "train.csv")["row"].to_numpy()
    masked = np.load(data / "images.npy")[rows]
    masked[:, :, : masked.shape[2] // 2] = 0
    folder = tmp_path / "masked" / "mean"
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", masked)
    pd.DataFrame({"source_row": rows}).to_csv(folder / "train.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text(f"trainee: {{variants: [{', '.join(VARIANTS)}], width: 0.35, epochs: 2, switch_epoch: 1, "
                      "batch_size: 16, target_f1: 0.05}\n")
    return tmp_path, data, params


def _train(tmp_path, data, params, variant):
    return CliRunner().invoke(app, ["train-trainee", "--variant", variant, "--data", str(data),
                                    "--masked", str(tmp_path / "masked"), "--out", str(tmp_path / "models" / variant),
                                    "--metrics", str(tmp_path / "metrics" / f"{variant}.json"),
                                    "--plots", str(tmp_path / "plots" / variant),
                                    "--run-id", str(tmp_path / "runs" / f"{variant}.json"), "--params", str(params)])


def test_train_trainee_then_report(stage_inputs):
    tmp_path, data, params = stage_inputs
    for variant in VARIANTS:
        result = _train(tmp_path, data, params, variant)
        assert result.exit_code == 0, result.output
        history = pd.read_csv(tmp_path / "plots" / variant / "history.csv")
        assert list(history["epoch"]) == [1, 2]
        assert (tmp_path / "models" / variant / "model.pt").is_file()
    assert list(pd.read_csv(tmp_path / "plots" / "mean-then-plain" / "history.csv")["images"]) == ["mean", "plain"]
    report = tmp_path / "reports"
    result = CliRunner().invoke(app, ["trainee-report", "--summaries", str(tmp_path / "metrics"),
                                      "--curves", str(tmp_path / "plots"), "--out", str(report),
                                      "--metrics", str(tmp_path / "summary.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--source-runs", str(tmp_path / "runs"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["variants"]) == set(VARIANTS)
    assert summary["verdict"]["best_masked"] in ("mean", "mean-then-plain")
    assert 0 <= summary["mcnemar_best_vs_plain"]["pvalue"] <= 1
    for name in ("summary.csv", "summary.md", "curves.png", "confusion.png"):
        assert (report / name).is_file()


def test_train_trainee_names_a_missing_masked_dataset(stage_inputs):
    tmp_path, data, params = stage_inputs
    (tmp_path / "masked" / "mean" / "images.npy").unlink()
    result = _train(tmp_path, data, params, "mean")
    assert result.exit_code != 0 and "masked/mean/images.npy: not found" in result.output


def test_trainee_report_names_a_missing_variant(stage_inputs):
    tmp_path, _, params = stage_inputs
    result = CliRunner().invoke(app, ["trainee-report", "--summaries", str(tmp_path / "metrics"),
                                      "--curves", str(tmp_path / "plots"), "--out", str(tmp_path / "reports"),
                                      "--metrics", str(tmp_path / "s.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code != 0 and "plain.json: not found" in result.output
    assert not (tmp_path / "reports").exists()
