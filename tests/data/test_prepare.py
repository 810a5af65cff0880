"""The `prepare` stage on the smoke benchmark, through its real command-line entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import PrepareConfig, load_section
from facetransfer.data.prepare import Sample, process

from tests.conftest import SMOKE_PARAMS

runner = CliRunner()


def _prepare(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["prepare", "--data", str(data), "--out", str(out), "--params", str(SMOKE_PARAMS),
                               "--workers", "1", *extra])


@pytest.fixture(scope="module")
def prepared(smoke_benchmark, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    result = _prepare(smoke_benchmark, out, "--metrics", str(out / "counts.json"))
    assert result.exit_code == 0, result.output
    return out


def test_outputs_have_the_documented_layout(prepared):
    size = load_section(SMOKE_PARAMS, "prepare").image_size
    for name, splits in {"affectnet": ("train", "val", "test"), "unbc": ("train", "val", "test"),
                         "ckplus": ("all",), "ferplus": ("train", "val", "test")}.items():
        folder = prepared / name
        images = np.load(folder / "images.npy", mmap_mode="r")
        index = pd.read_csv(folder / "index.csv")
        assert images.shape == (len(index), size, size, 3) and images.dtype == np.uint8
        assert np.load(folder / "landmarks.npy", mmap_mode="r").shape == (len(index), 68, 2)
        masks = np.load(folder / "masks.npy", mmap_mode="r")
        assert masks.shape == ((index["mask_row"] >= 0).sum(), 17, size, size // 8)
        meta = json.loads((folder / "meta.json").read_text())
        for split in splits:
            rows = pd.read_csv(folder / f"{split}.csv")
            assert len(rows) == meta["splits"][split] > 0
            assert set(rows["row"]) <= set(index["row"])
        assert not list(prepared.glob(f".{name}.partial"))  # nothing half-written left behind
    counts = json.loads((prepared / "counts.json").read_text())
    assert counts["unbc"] == {"train": 36, "val": 8, "test": counts["unbc"]["test"]}


def test_masks_only_for_scored_splits(prepared):
    index = pd.read_csv(prepared / "affectnet" / "index.csv")
    assert (index.loc[index["split"] == "test", "mask_row"] >= 0).all()
    assert (index.loc[index["split"] == "train", "mask_row"] == -1).all()


def test_unbc_selection_is_balanced_and_holds_out_test_subjects(prepared):
    cfg = load_section(SMOKE_PARAMS, "prepare").unbc
    index = pd.read_csv(prepared / "unbc" / "index.csv")
    train_val = index[index["split"].isin(["train", "val"])]
    assert train_val["label"].sum() == (cfg.train_frames + cfg.val_frames) // 2
    assert set(index.loc[index["split"] == "test", "subject"]) == set(cfg.test_subjects)
    assert not set(train_val["subject"]) & set(cfg.test_subjects)


def test_affectnet_keeps_one_label_per_image(prepared):
    index = pd.read_csv(prepared / "affectnet" / "index.csv")
    assert not index["rel_path"].duplicated().any()
    meta = json.loads((prepared / "affectnet" / "meta.json").read_text())
    assert meta["facts"]["training_conflicting_images"] > 0


def test_ckplus_upper_face_variant_blanks_the_mouth(prepared):
    images = np.load(prepared / "ckplus" / "images.npy")
    upper = np.load(prepared / "ckplus" / "upper.npy")
    lm = np.load(prepared / "ckplus" / "landmarks.npy")
    for k in range(len(images)):
        mouth_row = int(lm[k, 57, 1])
        assert upper[k, mouth_row:].max() == 0 and images[k, mouth_row:].max() > 0
        eyes = slice(0, int(lm[k, 33, 1]))
        np.testing.assert_array_equal(upper[k, eyes], images[k, eyes])


def test_prepare_is_deterministic(smoke_benchmark, prepared, tmp_path):
    assert _prepare(smoke_benchmark, tmp_path, "--datasets", "unbc").exit_code == 0
    for name in ("images.npy", "index.csv", "train.csv"):
        assert (tmp_path / "unbc" / name).read_bytes() == (prepared / "unbc" / name).read_bytes()


def test_unreadable_image_is_a_one_line_error_or_skipped(smoke_benchmark, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke_benchmark / "ckplus", data / "ckplus")
    broken = sorted((data / "ckplus" / "cohn-kanade-images").rglob("*.png"))[-1]
    broken.write_bytes(b"not a png")
    result = _prepare(data, tmp_path / "out", "--datasets", "ckplus")
    assert result.exit_code == 2
    assert "cannot be decoded" in result.output and broken.name in result.output
    assert not (tmp_path / "out" / "ckplus").exists()

    cfg = PrepareConfig(missing_images="skip")
    out = process(Sample(str(broken)), cfg.image_size, skip_errors=True)
    assert out.error and broken.name in out.error and out.image.max() == 0


def test_missing_test_subject_is_named(smoke_benchmark, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(SMOKE_PARAMS.read_text().replace("101-sy101", "999-nobody"))
    result = runner.invoke(app, ["prepare", "--data", str(smoke_benchmark), "--out", str(tmp_path / "o"),
                                 "--params", str(params), "--datasets", "unbc"])
    assert result.exit_code == 2 and "999-nobody" in result.output


def test_npy_stream_round_trips_and_checks_counts(tmp_path):
    from facetransfer.data.prepare import NpyStream

    rows = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    stream = NpyStream(tmp_path / "a.npy", np.float32, rows.shape)
    for row in rows[:2]:
        stream.write(row)
    stream.write(None)  # a skipped row is zeros
    stream.close()
    expected = rows.copy()
    expected[2] = 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)
    short = NpyStream(tmp_path / "b.npy", np.uint8, (2, 3))
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        short.write(np.zeros(4))
    short.write(np.zeros(3))
    with pytest.raises(RuntimeError, match="wrote 1 rows, header says 2"):
        short.close()
