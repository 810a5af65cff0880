"""The units stage on the tiny benchmark with random models: its tables, figure and metrics."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.training.recipes import MODEL_FORMAT, build


def _save(path, seed, stage="train_pain"):
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": MODEL_FORMAT, "stage": stage, "arch": ModelSpec().model_dump(), "classes": list(EMOTIONS),
                "state_dict": build(ModelSpec(), 8).state_dict()}, path)


def test_units_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("ckplus",))
    _save(tmp_path / "emotion.pt", 0, "train_emotion")
    _save(tmp_path / "pain" / "freeze0" / "model.pt", 1)
    _save(tmp_path / "pain" / "freeze5" / "model.pt", 0)  # same weights as the reference: same units
    params = tmp_path / "params.yaml"
    params.write_text("units: {device: cpu, auc_min: 0.51, lift_min: 0.01, track_aus: [5]}\n")
    out = tmp_path / "units"
    result = CliRunner().invoke(app, ["units", "--source", str(tmp_path / "emotion.pt"),
                                      "--pain", str(tmp_path / "pain"), "--data", str(tmp_path / "prepared" / "ckplus"),
                                      "--out", str(out),
                                      "--metrics", str(tmp_path / "m.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m.json").read_text())
    assert set(summary["detector_units"]) == {"emotion", "freeze0", "freeze5"}
    assert summary["tracked"]["AU5/emotion"] == summary["tracked"]["AU5/freeze5"]
    for name in ("units.csv", "detectors.csv", "survival.md", "patches.png"):
        assert (out / name).is_file()
