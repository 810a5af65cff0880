"""The end-to-end smoke repository: `dvc repro` of the real dvc.yaml on the smoke profile, built once.

tests/test_pipeline.py checks its outputs and runs a queued experiment on it; tests/test_sharing.py
shares it through DVC remotes and an MLflow server. Under `make test` (pytest-xdist) the two files run on different
workers: the first to ask builds the repository while the other waits on a file lock, so it is
built once per session, not once per worker (xdist's documented pattern for session fixtures).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import REPO, SMOKE_PARAMS

BIN = Path(sys.executable).parent


def run(cwd: Path, *cmd: str, env_extra: dict[str, str] | None = None) -> str:
    """Run a command as a user would (this venv first on PATH); its stdout + stderr, or a failed test."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    env.update(env_extra or {})
    # A bound, so that a hang (a child that never lets go of its output pipes) fails instead of stalling CI.
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def build_smoke_repo(root: Path) -> Path:
    """dvc.yaml, the smoke params and src/ in a fresh DVC repository (no git), after one `dvc repro`
    (under `facetransfer warm`, as `make repro`: 2.5 min instead of 8 on 2 cores)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    shutil.copy(SMOKE_PARAMS, root / "params.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    run(root, "dvc", "init", "--no-scm", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "facetransfer", "synth", "--out", "data")  # the synth section of the smoke profile
    run(root, "dvc", "add", "-q", "data")  # data.dvc, as in the real repository
    run(root, "facetransfer", "track-init")
    run(root, "facetransfer", "warm", "--", "dvc", "repro")  # as `make repro` runs it: stages forked warm
    return root


def shared_smoke_repo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The session's smoke repository; under xdist, built by whichever worker asks first.

    The builder keeps the repository; a worker that waited gets a copy made right after the build
    (~150 MB, seconds), because the builder's tests write to theirs (MLflow runs of a rerun trainee)
    while the other worker's run.
    """
    if worker_id == "master":  # not under xdist: this process is the whole session
        return build_smoke_repo(tmp_path_factory.mktemp("repo"))
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above every worker's own
    record = shared / "smoke_repo.json"
    with FileLock(str(shared / "smoke_repo.lock")):
        if not record.is_file():
            try:
                root = build_smoke_repo(tmp_path_factory.mktemp("repo"))
                snapshot = shutil.copytree(root, shared / "smoke_repo_copy", symlinks=True)
            except BaseException as error:  # the waiting worker must fail too, not build it a second time
                record.write_text(json.dumps({"error": f"{type(error).__name__}: {str(error)[-3000:]}"}))
                raise
            record.write_text(json.dumps({"builder": worker_id, "copy": str(snapshot)}))
            return root
    built = json.loads(record.read_text())
    if "error" in built:
        pytest.fail(f"the smoke repository failed to build on another worker: {built['error']}")
    return Path(built["copy"])
