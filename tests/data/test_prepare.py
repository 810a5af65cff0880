"""The `prepare` stage on the smoke benchmark, through its real command-line entry point."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facetransfer.cli import app
from facetransfer.config import PrepareConfig, load_section
from facetransfer.data.errors import DatasetFormatError
from facetransfer.data.labels import ACTION_UNITS
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


@pytest.mark.parametrize(("box", "message"), [
    ((10, 10, 0, 20), "face box (x 10, y 10, w 0, h 20) has no area; expected w and h > 0"),
    ((10, 10, 20, -5), "has no area"),
    ((500, 10, 20, 20), "face box (x 500, y 10, w 20, h 20) lies outside the 40x30 image; expected it to overlap"),
    ((-50, -50, 20, 20), "lies outside the 40x30 image"),
])
def test_a_face_box_without_area_or_outside_the_image_is_refused_or_skipped(box, message):
    """Issue 18: a box of width 0 was a ZeroDivisionError in the crop, one far outside gave a black crop."""
    pixels = np.full((30, 40, 3), 200, np.uint8)
    with pytest.raises(DatasetFormatError) as err:
        process(Sample(None, pixels=pixels, box=box), 16)
    assert message in str(err.value)
    skipped = process(Sample(None, pixels=pixels, box=box), 16, skip_errors=True)
    assert skipped.error and message in skipped.error and skipped.image.max() == 0
    inside = process(Sample(None, pixels=pixels, box=(-5, -5, 20, 20)), 16)  # partly outside: cropped, black margin
    assert inside.error is None and inside.image.max() == 200


def test_an_empty_dataset_is_refused_not_written(smoke_benchmark, tmp_path):
    """Issue 18: a FER+ set whose lists hold only their headers was written as a finished dataset."""
    data = tmp_path / "data"
    shutil.copytree(smoke_benchmark / "ferplus", data / "ferplus")
    for name in ("fer2013.csv", "fer2013new.csv"):
        path = data / "ferplus" / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
    result = _prepare(data, tmp_path / "out", "--datasets", "ferplus")
    assert result.exit_code == 2, result.output
    assert f"{data / 'ferplus'}: no labelled images found; expected at least one" in result.output
    assert not (tmp_path / "out" / "ferplus").exists()


def test_an_image_in_both_the_training_and_the_test_list_is_refused(smoke_benchmark, tmp_path):
    """Issue 18: an AffectNet image listed for training and for testing had been accepted."""
    data = tmp_path / "data"
    shutil.copytree(smoke_benchmark / "affectnet", data / "affectnet")
    lists = data / "affectnet" / "Manually_Annotated_file_lists"
    shared = (lists / "validation.csv").read_text().splitlines()[1]
    with (lists / "training.csv").open("a") as handle:
        handle.write(shared + "\n")
    result = _prepare(data, tmp_path / "out", "--datasets", "affectnet")
    assert result.exit_code == 2, result.output
    assert f"{lists / 'training.csv'}: 1 image(s) also in the test (validation) list, e.g. {shared.split(',')[0]}" \
        in result.output
    assert not (tmp_path / "out" / "affectnet").exists()


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


def test_footprints_are_stored_beside_the_landmark_regions(prepared):
    for name in ("affectnet", "ckplus"):
        folder = prepared / name
        index = pd.read_csv(folder / "index.csv")
        footprints = np.load(folder / "footprints.npy", mmap_mode="r")
        assert footprints.shape == np.load(folder / "masks.npy", mmap_mode="r").shape
        scored = index["mask_row"] >= 0
        assert index.loc[scored, "footprint"].all() and not index.loc[~scored, "footprint"].any()
        assert json.loads((folder / "meta.json").read_text())["footprint_rows"] == scored.sum()
        # An AU's footprint is empty exactly when the image does not show it (or shows it invisibly).
        table = index[scored]
        bits = np.unpackbits(footprints[table["mask_row"].to_numpy()], axis=-1).any(axis=(2, 3))  # (n, A)
        shown = table[[f"gt_au_{au}" for au in ACTION_UNITS]].to_numpy() > 0
        assert not (bits & ~shown).any() and (bits[shown]).mean() > 0.95
    assert not (prepared / "unbc" / "footprints.npy").exists()


def test_a_cropped_footprint_holds_every_crop_pixel_that_changes(smoke_benchmark, prepared):
    # Rendered (not JPEG-encoded) image and counterfactual, cropped as prepare crops: every changed crop
    # pixel lies in the cropped footprint, and the stored footprint is that crop of the native one.
    from PIL import Image

    from facetransfer.config import SynthConfig
    from facetransfer.data import counterfactuals
    from facetransfer.data.crops import crop_resize, face_box_from_landmarks
    from facetransfer.data.synth.datasets import build_affectnet
    from facetransfer.data.synth.render import render

    items = {i.rel_path: i for i in build_affectnet(SynthConfig().smoke()) if i.meta["split"] == "validation"}
    found = counterfactuals.read(smoke_benchmark / "affectnet")
    index = pd.read_csv(prepared / "affectnet" / "index.csv").set_index("rel_path")
    stored = np.load(prepared / "affectnet" / "footprints.npy", mmap_mode="r")
    checked = 0
    for row in found.index.itertuples():
        item = items[row.image]
        image, landmarks = render(item.scene)
        without, _ = render(replace(item.scene, expression=item.scene.expression.without((row.au,))))
        box = face_box_from_landmarks(landmarks)
        crop = lambda a, box=box: np.asarray(crop_resize(Image.fromarray(a), box, 64), np.int16)  # noqa: E731
        changed = (crop(image) != crop(without)).any(axis=-1)
        footprint = counterfactuals.footprint_in_crop(found.footprints[row.footprint], image.shape[1], box, 64)
        assert not (changed & ~footprint).any()
        assert footprint.sum() <= 4 * max(changed.sum(), 1) + 40  # a 1-2 px rim, not a region
        mask_row = index.loc[row.image, "mask_row"]
        kept = np.unpackbits(stored[mask_row, ACTION_UNITS.index(row.au)], axis=-1).astype(bool)
        np.testing.assert_array_equal(kept, footprint)
        checked += 1
        if checked == 12:
            break


def test_counterfactual_test_images_differ_from_the_originals_only_in_the_footprint(prepared):
    folder = prepared / "affectnet"
    cf = pd.read_csv(folder / "counterfactuals.csv")
    test = pd.read_csv(folder / "test.csv").set_index("row")
    images = np.load(folder / "counterfactual_images.npy", mmap_mode="r")
    assert len(images) == len(cf) == json.loads((folder / "meta.json").read_text())["counterfactual_images"]
    assert set(cf["row"]) <= set(test.index) and (cf["image_row"] == np.arange(len(cf))).all()
    originals = np.load(folder / "images.npy", mmap_mode="r")
    footprints = np.load(folder / "footprints.npy", mmap_mode="r")
    outside = inside = 0
    for row in cf.itertuples():
        # 8: past JPEG noise
        moved = np.abs(originals[row.row].astype(int) - images[row.image_row].astype(int)).max(-1) > 8
        fp = np.unpackbits(footprints[test.loc[row.row, "mask_row"], ACTION_UNITS.index(row.au)], axis=-1).astype(bool)
        outside += int((moved & ~fp).sum())
        inside += int((moved & fp).sum())
    assert inside > 20 * outside


def test_counterfactuals_with_a_bad_index_are_a_one_line_error(smoke_benchmark, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke_benchmark / "ckplus", data / "ckplus")
    index = data / "ckplus" / "counterfactuals" / "index.csv"
    index.write_text(index.read_text().replace("\n", "\n", 1).replace(",0,", ",99999,", 1))
    result = _prepare(data, tmp_path / "out", "--datasets", "ckplus", "--metrics", str(tmp_path / "m.json"))
    assert result.exit_code == 2 and "index.csv" in result.output and "footprint" in result.output
