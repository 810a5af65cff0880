"""Necessity: recall per class with one AU switched off, checked by hand and through the stage's command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from facetransfer.analysis import necessity as core
from facetransfer.cli import app
from facetransfer.config import ModelSpec, PrepareConfig
from facetransfer.data.labels import EMOTIONS
from facetransfer.data.prepare import prepare
from facetransfer.training.recipes import MODEL_FORMAT, build

CONTEMPT, HAPPY = EMOTIONS.index("contempt"), EMOTIONS.index("happy")


def _set(labels: np.ndarray, cf_rows: list[tuple[int, int]]) -> core.CounterfactualTestSet:
    """Images are not looked at here: predictions are given directly."""
    n, k = len(labels), len(cf_rows)
    cf = pd.DataFrame({"row": [i for i, _ in cf_rows], "au": [au for _, au in cf_rows], "image_row": np.arange(k),
                       "index": [i for i, _ in cf_rows]})
    return core.CounterfactualTestSet(np.zeros((n, 2, 2, 3), np.uint8), labels, np.arange(n), cf,
                                      np.zeros((k, 2, 2, 3), np.uint8))


def test_cells_by_hand():
    # 10 contempt images, all with AU14 (8 also AU12); 10 happy, 4 with AU14. The model needs AU14 for
    # contempt (6 of 8 right images turn wrong without it) and not for happy.
    labels = np.array([CONTEMPT] * 10 + [HAPPY] * 10)
    happy_14 = [12, 14, 16, 18]  # not the first happy images: the right ones must be replaced
    cf_rows = [(i, 14) for i in range(10)] + [(i, 12) for i in range(8)] + [(i, 14) for i in happy_14]
    data = _set(labels, cf_rows)
    predicted = labels.copy()
    predicted[[8, 9]] = 0  # contempt: 8 of 10 right
    predicted[10] = 0  # happy: 9 of 10 right (image 10 wrong, and it shows no AU14)
    without = np.array([c for c in predicted[:10]] + [CONTEMPT] * 8 + [0, HAPPY, HAPPY, HAPPY])
    without[[0, 1, 2, 3, 4, 5]] = 0  # contempt images 0-5 wrong without AU14 ...
    without[9] = CONTEMPT  # ... and image 9, wrong with AU14, right without (a discordant pair the other way)
    cells = core.necessity_cells(predicted, without, data, 0.95)
    c = cells["contempt"]["AU14"]
    assert (c["recall"], c["recall_without"], c["n_images"], c["n_class"]) == (0.8, 0.3, 10, 10)
    assert np.isclose(c["drop"], 0.5) and c["ci_low"] < 0.5 < c["ci_high"]
    # McNemar on (right, right without): 6 right -> wrong, 1 wrong -> right: exact binomial (statsmodels).
    expected = mcnemar([[2, 6], [1, 1]], exact=True).pvalue
    assert np.isclose(c["pvalue"], expected) and c["method"] == "exact"
    assert cells["contempt"]["AU12"]["drop"] == 0.0 and cells["contempt"]["AU12"]["pvalue"] == 1.0
    h = cells["happy"]["AU14"]  # image 12 turns wrong without AU14: 9 -> 8 of 10
    assert (h["recall"], h["recall_without"], h["n_images"], h["n_class"]) == (0.9, 0.8, 4, 10)
    assert h["drop_among_shown"] == 0.25
    assert "AU14" not in cells["neutral"]
    flat = [cell for per_class in cells.values() for cell in per_class.values()]
    assert np.allclose([x["pvalue_holm"] for x in flat], multipletests([x["pvalue"] for x in flat], method="holm")[1])
    matrix = core.cell_matrix(cells)
    assert matrix.loc["contempt", "AU14"] == 0.5 and np.isnan(matrix.loc["neutral", "AU14"])
    assert core.summary({"m": cells})["m"]["contempt.AU14"] == 0.5


def test_drop_among_shown_is_the_drop_on_the_changed_images():
    labels = np.array([CONTEMPT] * 4)
    data = _set(labels, [(0, 14), (1, 14)])
    cells = core.necessity_cells(labels.copy(), np.array([0, CONTEMPT]), data, 0.95)
    assert cells["contempt"]["AU14"]["drop"] == 0.25  # one of four images lost
    assert cells["contempt"]["AU14"]["drop_among_shown"] == 0.5  # one of the two that showed AU14


def _save(path, seed, stage="retrain_emotion"):
    torch.manual_seed(seed)
    path.mkdir(parents=True)
    torch.save({"format": MODEL_FORMAT, "stage": stage, "arch": ModelSpec().model_dump(), "classes": list(EMOTIONS),
                "state_dict": build(ModelSpec(), 8).state_dict()}, path / "model.pt")


@pytest.fixture(scope="module")
def prepared(smoke_benchmark, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(smoke_benchmark, out, PrepareConfig(), datasets=("affectnet",))
    return out / "affectnet"


def _run(tmp_path, prepared):
    _save(tmp_path / "emotion", 0, "train_emotion")
    for k in (0, 5):
        _save(tmp_path / "retrain" / f"freeze{k}", k + 1)
    params = tmp_path / "params.yaml"
    params.write_text("necessity: {freeze_blocks: [0, 5], device: cpu, batch_size: 32}\n")
    out, metrics, summary = tmp_path / "necessity", tmp_path / "necessity.json", tmp_path / "summary.json"
    result = CliRunner().invoke(app, [
        "necessity", "--source", str(tmp_path / "emotion"), "--retrain", str(tmp_path / "retrain"),
        "--data", str(prepared), "--out", str(out), "--metrics", str(metrics), "--summary", str(summary),
        "--run-id", str(tmp_path / "run.json"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    return out, json.loads(metrics.read_text()), json.loads(summary.read_text())


def test_necessity_stage_writes_the_documented_layout(tmp_path, prepared, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    out, numbers, summary = _run(tmp_path, prepared)
    assert set(numbers) == {"emotion", "freeze0", "freeze5"}
    contempt = numbers["emotion"]["contempt"]
    assert "AU14" in contempt
    for cell in contempt.values():
        assert {"recall", "recall_without", "drop", "n_images"} <= set(cell)
        assert np.isclose(cell["drop"], cell["recall"] - cell["recall_without"]) and cell["n_images"] >= 1
    # The test set's own counts: every contempt image shows AU14.
    test = pd.read_csv(prepared / "test.csv")
    assert contempt["AU14"]["n_images"] == ((test["emotion"] == "contempt") & (test["gt_au_14"] > 0)).sum()
    assert set(summary["emotion"]) >= {"contempt.AU14", "surprise.AU5"}
    assert (out / "necessity.png").stat().st_size > 10_000
    table = pd.read_csv(out / "necessity.csv")
    assert set(table["model"]) == {"emotion", "freeze0", "freeze5"}


def test_real_data_without_counterfactuals_is_skipped_with_a_reason(tmp_path, prepared, monkeypatch):
    import shutil

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    real = tmp_path / "real"
    shutil.copytree(prepared, real)
    (real / "counterfactuals.csv").unlink()
    out, numbers, summary = _run(tmp_path, real)
    assert "skipped" in numbers and "synthetic" in numbers["skipped"] and "skipped" in summary
    assert (out / "README.md").is_file() and json.loads((tmp_path / "run.json").read_text())["run_id"]
