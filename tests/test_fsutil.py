"""fsutil: atomic writes, the fast YAML reader every stage uses for params.yaml and dvc.lock, array and output
checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

from facetransfer.data.errors import DatasetFormatError, OutputError
from facetransfer.fsutil import check_outputs, load_array, read_yaml
from facetransfer.training.data import load_split
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["params.yaml", "dvc.yaml", "dvc.lock", "profiles/smoke.yaml"])
def test_read_yaml_equals_pyyaml_safe_load(name):
    path = REPO / name
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_read_yaml_uses_libyaml_where_pyyaml_has_it(monkeypatch, tmp_path):
    """The point of read_yaml is speed: it must take the C loader when PyYAML was built with it."""
    used = []
    real_load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda text, Loader: used.append(Loader) or real_load(text, Loader=Loader))
    (tmp_path / "a.yaml").write_text("a: [1, 2]\n")
    assert read_yaml(tmp_path / "a.yaml") == {"a": [1, 2]}
    assert used == [yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader]


def test_read_yaml_is_safe(tmp_path):
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError):
        read_yaml(tmp_path / "evil.yaml")


def test_a_truncated_or_foreign_array_is_named(tmp_path):
    """Issue 18: a truncated images.npy ended in numpy's ValueError, naming no file."""
    good = tmp_path / "images.npy"
    np.save(good, np.zeros((4, 8, 8, 3), np.uint8))
    assert load_array(good).shape == (4, 8, 8, 3)
    (tmp_path / "train.csv").write_text("row,label\n0,1\n1,0\n")
    good.write_bytes(good.read_bytes()[:300])  # header intact, data cut
    for path in (good, tmp_path / "train.csv"):
        with pytest.raises(DatasetFormatError) as err:
            load_array(path)
        assert str(err.value).startswith(f"{path}: not a readable .npy array (") and "prepare again" in str(err.value)
    with pytest.raises(DatasetFormatError, match="images.npy: not a readable .npy array"):
        load_split(tmp_path, "train")
    with pytest.raises(FileNotFoundError):
        load_array(tmp_path / "missing.npy")


def test_check_outputs_finds_what_cannot_be_written_before_any_work(tmp_path):
    """Issue 18: an output folder that was a file was found only after training finished."""
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    check_outputs(folders=[tmp_path / "new" / "deeper"], files=[tmp_path / "m" / "metrics.json"])  # fine: made later
    cases = [
        ({"folders": [a_file]}, a_file, "is a file; expected a folder (or nothing) there"),
        ({"folders": [a_file / "model"]}, a_file, f"is a file; expected a folder, to hold {a_file / 'model'}"),
        ({"files": [tmp_path]}, tmp_path, "is a folder; expected a file path for this output"),
        ({"files": [a_file / "metrics.json"]}, a_file, "is a file; expected a folder"),
    ]
    for kwargs, culprit, message in cases:
        with pytest.raises(OutputError) as err:
            check_outputs(**kwargs)
        assert str(err.value).startswith(f"{culprit}: {message}"), str(err.value)


def test_check_outputs_refuses_a_folder_it_may_not_write(tmp_path, monkeypatch):
    """Permission bits do not stop root (as CI runs), so the access check is what is tested here."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match=f"{tmp_path}: is not writable; expected to write {tmp_path / 'out'} there"):
        check_outputs(folders=[tmp_path / "out"])
