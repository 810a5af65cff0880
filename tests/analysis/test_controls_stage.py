"""train-control and controls on the tiny benchmark with a random source model: files, rows, clear errors."""

from __future__ import annotations

import json
import re

import pandas as pd
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import ModelSpec, PrepareConfig, SynthConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.data.synth.generate import generate
from facetransfer.training.recipes import MODEL_FORMAT, build

PARAMS = """controls:
  device: cpu
  suppress_aus: [14]
  dependent_class: {14: contempt}
  fine_tune: {epochs: 1, batch_size: 32}
  head: {epochs: 1, batch_size: 32}
  probe_aus: [14, 5]
  upper_face_aus: [5]
  repeats: 5
  workers: 1
  extra_negative_seeds: [7]
  extra_positive_seeds: [8]
distributed:
  nproc_per_node: 1
"""


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_control_and_controls_smoke(tmp_path, smoke_benchmark, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("affectnet", "ckplus"))
    generate(tmp_path / "suppressed", SynthConfig().smoke().model_copy(update={"suppress_aus": (14,)}), ["affectnet"])
    prepare(tmp_path / "suppressed", tmp_path / "suppressed_prepared", PrepareConfig(), datasets=("affectnet",))
    torch.manual_seed(0)
    source = tmp_path / "emotion.pt"
    torch.save({"format": MODEL_FORMAT, "stage": "train_emotion", "arch": ModelSpec().model_dump(),
                "classes": list(EMOTIONS), "state_dict": build(ModelSpec(), 8).state_dict()}, source)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    original = str(tmp_path / "prepared" / "affectnet")
    for name, data, kind in (("suppress_au14", str(tmp_path / "suppressed_prepared" / "affectnet"),
                              ["--suppressed-au", "14"]),
                             ("suppress_au14_seed8", str(tmp_path / "suppressed_prepared" / "affectnet"),
                              ["--suppressed-au", "14", "--seed", "8"]),
                             ("negative", original, ["--negative"]),
                             ("negative_seed7", original, ["--negative", "--seed", "7"])):
        _invoke("train-control", "--source", str(source), "--data", data, "--heads-data", original, *kind,
                "--out", str(tmp_path / "controls" / name), "--metrics", str(tmp_path / f"{name}.json"),
                "--run-id", str(tmp_path / "runs" / f"{name}.json"), "--checkpoint", str(tmp_path / f"{name}.ckpt"),
                "--params", str(params))
        written = {p.name for p in (tmp_path / "controls" / name).iterdir()}
        assert {"fine_tuned.pt", "model.pt", "test_predictions.csv"} <= written
    out = tmp_path / "report"
    _invoke("controls", "--source", str(source), "--controls", str(tmp_path / "controls"), "--data", original,
            "--ckplus", str(tmp_path / "prepared" / "ckplus"), "--out", str(out), "--metrics", str(tmp_path / "c.json"),
            "--summary", str(tmp_path / "s.json"), "--run-id", str(tmp_path / "r.json"),
            "--source-runs", str(tmp_path / "runs"), "--params", str(params))
    rows = json.loads((tmp_path / "c.json").read_text())
    assert [(r["control"], r["check"]) for r in rows][:2] == [("suppress_au14", "plant_took"),
                                                              ("suppress_au14", "plant_took_across_seeds")]
    names = {"suppress_au14", "negative", "negative_seed7", "all_negatives"}
    assert {r["control"] for r in rows} == names and set(json.loads((tmp_path / "s.json").read_text())) == names
    assert all(r["runs"] == 2 for r in rows if r["control"] == "all_negatives")
    checks = {r["check"]: r for r in rows if r["control"] == "suppress_au14"}
    assert {"plant_took", "necessity_fell"} <= set(checks)  # ground truth from footprints and counterfactual images
    assert set(checks["plant_took"]["negative_shifts"]) == {"negative", "negative_seed7"}
    assert checks["necessity_fell"]["cls"] == "contempt" and checks["necessity_fell"]["n_images"] > 0
    planted = checks["plant_took_across_seeds"]  # the same fine-tunings' footprint shifts, over seeds
    assert (planted["n_control_seeds"], planted["n_negative_seeds"]) == (2, 2) and planted["pvalue"] is not None
    across = checks["recall_dropped_across_seeds"]  # the two fine-tunings of suppress_au14 against the two negatives
    assert (across["cls"], across["n_control_seeds"], across["n_negative_seeds"]) == ("contempt", 2, 2)
    recall = pd.read_csv(out / "recall.csv", index_col="model")
    assert across["recall_control"] == [recall.loc["suppress_au14", "contempt"],
                                        recall.loc["suppress_au14_seed8", "contempt"]]
    assert across["n_negatives"] == 2 and across["pvalue_holm"] is not None
    assert json.loads((out / "analyses.json").read_text())["regions"] == "counterfactual footprints"
    assert json.loads((tmp_path / "runs" / "negative_seed7.json").read_text())  # its own MLflow run
    for name in ("verdicts.md", "recall.csv", "probes.csv", "analyses.json", "contrast_maps.npz",
                 "suppress_au14_contempt.png"):
        assert (out / name).is_file(), name


def test_train_control_rejects_a_set_that_is_not_the_original_without_the_au(tmp_path, smoke_benchmark):
    prepare(smoke_benchmark, tmp_path / "prepared", PrepareConfig(), datasets=("affectnet",))
    (tmp_path / "params.yaml").write_text(PARAMS)
    data = str(tmp_path / "prepared" / "affectnet")
    result = CliRunner().invoke(app, ["train-control", "--source", str(tmp_path / "none.pt"), "--data", data,
                                      "--heads-data", data, "--suppressed-au", "14", "--out", str(tmp_path / "o"),
                                      "--metrics", str(tmp_path / "m.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code != 0
    assert "images still show AU14" in result.output
    both = CliRunner().invoke(app, ["train-control", "--source", "x.pt", "--data", data, "--heads-data", data,
                                    "--suppressed-au", "14", "--negative", "--out", "o", "--metrics", "m.json",
                                    "--run-id", "r.json", "--params", str(tmp_path / "params.yaml")])
    text = re.sub(r"[│╭╮╰╯─\s]+", " ", both.output)  # the rich error box wraps the message
    assert both.exit_code != 0 and "exactly one of --suppressed-au N and --negative" in text

    seed = CliRunner().invoke(app, ["train-control", "--source", "x.pt", "--data", data, "--heads-data", data,
                                    "--negative", "--seed", "8", "--out", "o", "--metrics", "m.json",
                                    "--run-id", "r.json", "--params", str(tmp_path / "params.yaml")])
    text = re.sub(r"[│╭╮╰╯─\s]+", " ", seed.output)
    assert seed.exit_code != 0 and "8 is not one of controls.extra_negative_seeds [7]" in text
    positive = CliRunner().invoke(app, ["train-control", "--source", "x.pt", "--data", data, "--heads-data", data,
                                        "--suppressed-au", "14", "--seed", "7", "--out", "o", "--metrics", "m.json",
                                        "--run-id", "r.json", "--params", str(tmp_path / "params.yaml")])
    text = re.sub(r"[│╭╮╰╯─\s]+", " ", positive.output)
    assert positive.exit_code != 0 and "7 is not one of controls.extra_positive_seeds [8]" in text
