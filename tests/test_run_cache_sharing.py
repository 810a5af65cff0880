"""`facetransfer share` (sharing.py) on a toy DVC repository: a run that only the run cache knows (as a
queued experiment's seed is) reaches a teammate with its outputs, so their `dvc repro --pull` restores it
instead of running it again; `dvc push --run-cache` alone sends the record without the outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e import run as _run

GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t")
# The toy stage: writes its seed into model/, and appends a line to a log outside the repository each time
# it really runs (a restore from the run cache does not).
TRAIN = """import pathlib, sys, yaml
seed = yaml.safe_load(open("params.yaml"))["seed"]
pathlib.Path("model").mkdir(exist_ok=True)
pathlib.Path("model/weights.txt").write_text(f"weights of seed {seed}\\n")
with open(sys.argv[1], "a") as log:
    log.write(f"trained seed {seed}\\n")
"""


def _set_seed(repo: Path, seed: int) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"seed": seed}))


@pytest.fixture
def trained(tmp_path) -> tuple[Path, Path, Path]:
    """Repository A ran seed 1, then seed 2 (its dvc.lock and workspace: seed 2; seed 1 only in the run cache),
    with a local remote `team`; returns A, the remote and the training log."""
    a, store, log = tmp_path / "a", tmp_path / "store", tmp_path / "trainings.log"
    a.mkdir()
    (a / "train.py").write_text(TRAIN)
    (a / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": f"python train.py {log}", "deps": ["train.py"], "params": ["seed"], "outs": ["model"]}}}))
    _run(a, "git", "init", "-q")
    _run(a, "dvc", "init", "-q")
    _run(a, "dvc", "remote", "add", "-d", "team", str(store))
    for seed in (1, 2):
        _set_seed(a, seed)
        _run(a, "dvc", "repro", "-q")
    _run(a, "git", "add", "-A")
    _run(a, *GIT, "commit", "-q", "-m", "seed 2")
    assert log.read_text() == "trained seed 1\ntrained seed 2\n"
    return a, store, log


def _teammate_runs_seed_1(a: Path, tmp_path: Path) -> str:
    """A fresh clone of A asks for seed 1 with `dvc repro --pull`: its output."""
    b = tmp_path / "b"
    _run(tmp_path, "git", "clone", "-q", str(a), str(b))
    _set_seed(b, 1)
    return _run(b, "dvc", "repro", "--pull")


def test_share_sends_the_outputs_of_runs_only_the_run_cache_knows(trained, tmp_path):
    a, _, log = trained
    said = _run(a, "facetransfer", "share")
    # seed 1's model/: its folder listing (.dir) and weights.txt, sent besides seed 2's (the workspace's)
    assert "2 run-cache records" in said and "2 files of outputs only the run cache knows" in said, said
    out = _teammate_runs_seed_1(a, tmp_path)
    assert "is cached - skipping run" in out, out
    assert (tmp_path / "b" / "model" / "weights.txt").read_text() == "weights of seed 1\n"
    assert log.read_text() == "trained seed 1\ntrained seed 2\n"  # the teammate trained nothing


def test_dvc_push_run_cache_alone_leaves_the_teammate_to_train_again(trained, tmp_path):
    """Why `share` exists: the record arrives without its outputs (DVC 3.67), and seed 1 runs again."""
    a, _, log = trained
    _run(a, "dvc", "push", "--run-cache", "-q")
    _teammate_runs_seed_1(a, tmp_path)
    assert log.read_text() == "trained seed 1\ntrained seed 2\ntrained seed 1\n"


def test_an_unknown_remote_is_one_line(trained):
    a, _, _ = trained
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's facetransfer
    done = subprocess.run(["facetransfer", "share", "--remote", "nowhere"], cwd=a, capture_output=True, text=True,
                          env={**os.environ, "PATH": path})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dvc:") and "nowhere" in lines[0], done.stderr

