"""The attention-study stage on the tiny benchmark with a random emotion model: its tables, figure and runs."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.training.recipes import MODEL_FORMAT, build


def test_attention_study_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepared = tmp_path / "prepared"
    prepare(smoke_benchmark, prepared, PrepareConfig(), datasets=("ckplus", "ferplus"))
    torch.manual_seed(0)
    torch.save({"format": MODEL_FORMAT, "stage": "train_emotion", "arch": ModelSpec().model_dump(),
                "classes": list(EMOTIONS), "state_dict": build(ModelSpec(), 8).state_dict()}, tmp_path / "model.pt")
    params = tmp_path / "params.yaml"
    params.write_text("attention_study: {device: cpu, folds: 2, epochs: 1, attentions: [none, cbam]}\n")
    out = tmp_path / "attention"
    result = CliRunner().invoke(app, ["attention-study", "--source", str(tmp_path / "model.pt"),
                                      "--ckplus", str(prepared / "ckplus"), "--test", str(prepared / "ferplus"),
                                      "--out", str(out), "--metrics", str(tmp_path / "m.json"),
                                      "--run-ids", str(tmp_path / "runs.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m.json").read_text())
    assert set(summary) == {"scratch/none", "scratch/cbam", "pretrained/none", "pretrained/cbam"}
    assert set(summary["scratch/cbam"]["accuracy"]) == {"ckplus", "ferplus"}
    assert 0 <= summary["pretrained/none"]["accuracy"]["ferplus"]["mean"] <= 1
    assert len(json.loads((tmp_path / "runs.json").read_text())["runs"]) == 8  # 2 inits x 2 attentions x 2 folds
    for name in ("accuracy.csv", "accuracy.md", "localisation.csv", "folds.csv", "accuracy.png"):
        assert (out / name).is_file()


def test_attention_study_names_a_missing_source(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("attention_study: {device: cpu}\n")
    result = CliRunner().invoke(app, ["attention-study", "--source", str(tmp_path / "none.pt"),
                                      "--ckplus", str(tmp_path), "--test", str(tmp_path), "--out", str(tmp_path / "o"),
                                      "--metrics", str(tmp_path / "m.json"), "--run-ids", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code != 0 and "none.pt" in result.output and "Traceback" not in result.output
