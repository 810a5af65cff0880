"""End to end: `dvc repro` of the real dvc.yaml on the smoke profile, in a scratch copy of the repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SMOKE_PARAMS

BIN = Path(sys.executable).parent
FREEZES = range(6)


def _run(cwd: Path, *cmd: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """dvc.yaml, the smoke params and src/ in a fresh DVC repository (no git), after one `dvc repro`."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    shutil.copy(SMOKE_PARAMS, root / "params.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    _run(root, "dvc", "init", "--no-scm", "-q")
    _run(root, "dvc", "config", "core.analytics", "false")
    _run(root, "facetransfer", "synth", "--out", "data", "--smoke")
    _run(root, "facetransfer", "track-init")
    _run(root, "dvc", "repro")
    return root


def test_prepare_outputs(repo):
    counts = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert set(counts) == {"affectnet", "unbc", "ckplus", "ferplus"}
    assert (repo / "prepared" / "affectnet" / "images.npy").is_file()


def test_pain_metrics_have_the_table1_layout(repo):
    for k in FREEZES:
        numbers = json.loads((repo / "metrics" / "pain" / f"freeze{k}.json").read_text())
        assert 0.0 <= numbers["accuracy"] <= 1.0
        for measure in ("precision", "recall", "f1"):
            assert set(numbers[measure]) == {"no_pain", "pain", "macro"}
    shown = _run(repo, "dvc", "metrics", "show")
    assert all(f"metrics/pain/freeze{k}.json" in shown for k in FREEZES)


def test_every_model_and_run_is_recorded(repo):
    from mlflow.tracking import MlflowClient

    models = [repo / "models" / "emotion"] + [repo / "models" / s / f"freeze{k}" for s in ("pain", "retrain") for k in FREEZES]
    assert all((m / "model.pt").is_file() for m in models)
    run_files = [repo / "runs" / "emotion.json"] + [repo / "runs" / s / f"freeze{k}.json" for s in ("pain", "retrain") for k in FREEZES]
    run_ids = {json.loads(f.read_text())["run_id"] for f in run_files}
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facetransfer")
    runs = client.search_runs([experiment.experiment_id])
    training = {r.info.run_id for r in runs if r.data.tags.get("stage") not in ("forgetting", "concepts", "saliency", "mask")}
    assert run_ids == training and len(run_ids) == 13
    pain = [r for r in runs if r.data.tags.get("stage") == "train_pain"]
    assert sorted(r.data.tags["freeze_blocks"] for r in pain) == [str(k) for k in FREEZES]
    assert all(len(client.get_metric_history(r.info.run_id, "val_macro_recall")) == 2 for r in pain)
    predictions = (repo / "models" / "retrain" / "freeze0" / "test_predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("row,label,predicted,p_neutral")


def test_frozen_blocks_of_pain_models_equal_the_source(repo):
    import torch

    source = torch.load(repo / "models" / "emotion" / "model.pt", weights_only=True)["state_dict"]
    pain3 = torch.load(repo / "models" / "pain" / "freeze3" / "model.pt", weights_only=True)["state_dict"]
    conv = [k for k in source if k.startswith("features.") and k.endswith(".weight")]
    # VGG16-BN features: 3 blocks hold the first 7 conv layers (2 + 2 + 3).
    first_three, later = conv[:14], conv[14:]  # conv and batch-norm weights, in order
    assert all(torch.equal(source[k], pain3[k]) for k in first_three)
    assert any(not torch.equal(source[k], pain3[k]) for k in later)


def test_forgetting_metrics_have_the_documented_layout(repo):
    numbers = json.loads((repo / "metrics" / "forgetting.json").read_text())
    assert set(numbers["recall"]) == {f"freeze{k}" for k in FREEZES}
    assert set(numbers["mcnemar"]) == {f"freeze{k}" for k in FREEZES if k != 5}
    cell = numbers["mcnemar"]["freeze0"]["contempt"]
    assert {"statistic", "pvalue", "pvalue_holm", "method"} <= set(cell)
    assert numbers["trade_off"]["balanced"] in numbers["trade_off"]["pareto_front"]
    assert all((repo / "reports" / "forgetting" / f).is_file() for f in ("recall.csv", "recall.md", "recall.png",
                                                                          "trade_off.png"))


def test_concept_tests_have_the_documented_layout(repo):
    rows = json.loads((repo / "metrics" / "concepts.json").read_text())
    pairs = {(r["au"], r["model_b"]) for r in rows}
    assert pairs >= {(au, f"freeze{k}") for au in (5, 14, 4, 6, 12) for k in range(5)}  # + AUs the ranking adds
    assert len(pairs) == len(rows) and len(rows) % 5 == 0
    for row in rows:
        assert row["model_a"] == "freeze5" and 0.0 <= row["mean_f1_a"] <= 1.0 and 0.0 <= row["mean_f1_b"] <= 1.0
        for test in ("plain", "corrected", "five_by_two"):
            assert {"statistic", "pvalue", "pvalue_holm"} <= set(row[test])
    shown = _run(repo, "dvc", "metrics", "show")
    assert "metrics/concepts_summary.json" in shown and "AU14.freeze0.corrected_p" in shown
    assert (repo / "reports" / "concepts" / "f1_differences.png").is_file()


def test_saliency_outputs(repo):
    ranking = json.loads((repo / "saliency" / "au_ranking.json").read_text())
    assert set(ranking["pairs"]) == {f"freeze{k}" for k in range(5)}
    assert len(ranking["pairs"]["freeze0"]["contempt"]["ranking"]) == 17
    scores = json.loads((repo / "metrics" / "localisation.json").read_text())
    assert set(scores) == {"emotion"} | {f"freeze{k}" for k in FREEZES}
    assert {"relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game"} == set(scores["freeze0"]["lrp"])
    assert (repo / "saliency" / "grids" / "freeze5_vs_freeze0_surprise.png").is_file()
    assert (repo / "saliency" / "maps" / "freeze5_vs_freeze0.npz").is_file()


def test_masked_datasets(repo):
    import numpy as np

    summary = json.loads((repo / "metrics" / "masking.json").read_text())
    train = (repo / "prepared" / "ferplus" / "train.csv").read_text().splitlines()
    for method in ("negative", "mean", "perceptive"):
        folder = repo / "masked" / method
        images = np.load(folder / "images.npy")
        assert images.shape[0] == len(train) - 1 == summary["images"]
        keep = np.unpackbits(np.load(folder / "keep.npy"), axis=-1, count=images.shape[2]).astype(bool)
        assert not images[~keep].any()  # dropped pixels are 0 in every channel
        assert (folder / "sample.png").is_file() and (folder / "train.csv").is_file()
    assert 0.85 <= summary["kept_fraction"]["negative"] <= 0.95


def test_analysis_runs_link_to_the_training_runs(repo):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    pain0 = json.loads((repo / "runs" / "pain" / "freeze0.json").read_text())["run_id"]
    retrain0 = json.loads((repo / "runs" / "retrain" / "freeze0.json").read_text())["run_id"]
    concepts = client.get_run(json.loads((repo / "runs" / "concepts.json").read_text())["run_id"]).data.tags
    forgetting = client.get_run(json.loads((repo / "runs" / "forgetting.json").read_text())["run_id"]).data.tags
    assert concepts["source_run.freeze0"] == pain0
    assert forgetting["source_run.pain.freeze0"] == pain0 and forgetting["source_run.retrain.freeze0"] == retrain0


def test_second_repro_does_nothing(repo):
    assert "up to date" in _run(repo, "dvc", "status")
    second = _run(repo, "dvc", "repro")
    assert "Running stage" not in second and "didn't change" in second
