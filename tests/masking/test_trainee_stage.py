"""train-trainee and trainee-report on a tiny prepared FER+: every variant's outputs for two seeds, then the comparison
across them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import PrepareConfig
from facetransfer.data.prepare import prepare

VARIANTS = ["plain", "mean", "mean-then-plain"]
SEEDS = (2022, 2023)


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
    params.write_text(f"trainee: {{variants: [{', '.join(VARIANTS)}], epochs: 2, switch_epoch: 1, "
                      "batch_size: 16, target_f1: 0.05, threads: 1, workers: 2}\n"
                      f"study: {{seeds: [{', '.join(map(str, SEEDS))}], detail_seed: {SEEDS[0]}}}\n")
    return tmp_path, data, params


def _train(tmp_path, data, params, *variants, seed=SEEDS[0]):
    """train-trainee as the pipeline's train-trainee@<seed> runs it: outputs under <folder>/seed<seed>."""
    chosen = [arg for variant in variants for arg in ("--variant", variant)]
    folders = {option: str(tmp_path / name / f"seed{seed}") for option, name in
               (("--out", "models"), ("--metrics", "metrics"), ("--plots", "plots"), ("--run-id", "runs"))}
    return CliRunner().invoke(app, ["train-trainee", *chosen, "--seed", str(seed), "--data", str(data),
                                    "--masked", str(tmp_path / "masked"), *[a for kv in folders.items() for a in kv],
                                    "--params", str(params)])


def test_train_trainee_then_report(stage_inputs):
    tmp_path, data, params = stage_inputs
    for seed in SEEDS:  # every variant of the params, mean and mean-then-plain sharing epoch 1
        result = _train(tmp_path, data, params, seed=seed)
        assert result.exit_code == 0, result.output
    for variant in VARIANTS:
        history = pd.read_csv(tmp_path / "plots" / "seed2022" / variant / "history.csv")
        assert list(history["epoch"]) == [1, 2]
        saved = torch.load(tmp_path / "models" / "seed2022" / variant / "model.pt", weights_only=True)
        assert saved["format"] == "facetransfer.trainee/2" and saved["model"] == {"name": "resnet10", "width": 1.0}
        assert json.loads((tmp_path / "runs" / "seed2022" / f"{variant}.json").read_text())["run_id"]
    assert json.loads((tmp_path / "runs" / "seed2022" / "train-trainee.json").read_text())["run_id"]  # the stage's run
    history = pd.read_csv(tmp_path / "plots" / "seed2022" / "mean-then-plain" / "history.csv")
    assert list(history["images"]) == ["mean", "plain"]
    other_seed = (tmp_path / "plots" / f"seed{SEEDS[1]}" / "plain" / "history.csv").read_text()
    assert other_seed != (tmp_path / "plots" / "seed2022" / "plain" / "history.csv").read_text()  # the seed counts
    report = tmp_path / "reports"
    result = CliRunner().invoke(app, ["trainee-report", "--summaries", str(tmp_path / "metrics"),
                                      "--curves", str(tmp_path / "plots"), "--out", str(report),
                                      "--metrics", str(tmp_path / "summary.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--source-runs", str(tmp_path / "runs"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["across_seeds"]) == set(VARIANTS) and set(summary["by_seed"]) == {str(s) for s in SEEDS}
    assert summary["verdict"]["best_masked"] in ("mean", "mean-then-plain")
    cell = summary["across_seeds"]["mean"]["vs_plain"]["auc"]
    assert cell["n_seeds"] == 2 and cell["pvalue_holm"] is not None and cell["method"] == "paired-t over seeds"
    by_seed = [summary["by_seed"][str(s)]["mean"]["auc_gain"] for s in SEEDS]
    assert cell["mean_diff"] == pytest.approx(np.mean(by_seed))
    assert summary["mcnemar_best_vs_plain"]["seed"] == 2022 and 0 <= summary["mcnemar_best_vs_plain"]["pvalue"] <= 1
    for name in ("summary.csv", "summary.md", "by_seed.csv", "curves.png", "confusion.png"):
        assert (report / name).is_file()


def test_one_variant_alone_gives_the_bytes_of_the_shared_prefix_run(stage_inputs):
    """mean-then-plain trained by itself (no prefix shared with mean, in this process) = trained with mean
    (its first epoch continued from the shared prefix, in two worker processes)."""
    tmp_path, data, params = stage_inputs
    assert _train(tmp_path, data, params, "mean", "mean-then-plain").exit_code == 0
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "masked").symlink_to(tmp_path / "masked")
    params.write_text(params.read_text().replace("workers: 2", "workers: 1"))
    result = _train(alone, data, params, "mean-then-plain")
    assert result.exit_code == 0, result.output
    for rel in ("plots/seed2022/mean-then-plain/history.csv", "plots/seed2022/mean-then-plain/confusion.csv",
                "metrics/seed2022/mean-then-plain.json"):
        assert (alone / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    import torch

    shared, single = (torch.load(root / "models" / "seed2022" / "mean-then-plain" / "model.pt",
                                 weights_only=True)["state_dict"]
                      for root in (tmp_path, alone))
    assert all(torch.equal(shared[k], single[k]) for k in shared)


def test_train_trainee_names_a_missing_masked_dataset(stage_inputs):
    tmp_path, data, params = stage_inputs
    (tmp_path / "masked" / "mean" / "images.npy").unlink()
    params.write_text(params.read_text().replace("workers: 2", "workers: 1"))  # in order: plain would train first
    result = _train(tmp_path, data, params)
    assert result.exit_code != 0 and "masked/mean/images.npy: not found" in result.output
    assert not (tmp_path / "models").exists()  # refused before any training, plain's included


def test_trainee_report_names_a_missing_variant(stage_inputs):
    tmp_path, _, params = stage_inputs
    result = CliRunner().invoke(app, ["trainee-report", "--summaries", str(tmp_path / "metrics"),
                                      "--curves", str(tmp_path / "plots"), "--out", str(tmp_path / "reports"),
                                      "--metrics", str(tmp_path / "s.json"), "--run-id", str(tmp_path / "r.json"),
                                      "--params", str(params)])
    assert result.exit_code != 0
    assert "seed2022/plain.json: not found" in result.output and "--seed 2022" in result.output
    assert not (tmp_path / "reports").exists()
