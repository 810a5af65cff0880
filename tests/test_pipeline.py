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


def _run(cwd: Path, *cmd: str) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """dvc.yaml, the smoke params and src/ in a fresh DVC repository (no git)."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(SMOKE_PARAMS, root / "params.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    _run(root, "dvc", "init", "--no-scm", "-q")
    _run(root, "dvc", "config", "core.analytics", "false")
    _run(root, "facetransfer", "synth", "--out", "data", "--smoke")
    return root


def test_smoke_pipeline_runs_and_then_is_up_to_date(repo):
    _run(repo, "dvc", "repro")
    counts = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert set(counts) == {"affectnet", "unbc", "ckplus", "ferplus"}
    assert (repo / "prepared" / "affectnet" / "images.npy").is_file()
    assert "up to date" in _run(repo, "dvc", "status")
    second = _run(repo, "dvc", "repro")
    assert "Running stage" not in second and "didn't change" in second
