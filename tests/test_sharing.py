"""Sharing the smoke pipeline's results: DVC remotes (local, S3) and an MLflow server.

They use the end-to-end smoke repository (tests/e2e.py); under `make test` they run on the other
worker than tests/test_pipeline.py, on their own copy of it. The experiment-queue test is at the end
of tests/test_pipeline.py, so that it runs on the builder's worker at the same time as these.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e import run as _run


@pytest.fixture(scope="module")
def repo(smoke_repo) -> Path:
    return smoke_repo


# --- sharing through a DVC remote: A pushes, a teammate's fresh clone B pulls and retrains nothing ---


def _teammate_clone(a: Path, b: Path, remote_args: list[list[str]]) -> None:
    """What `git clone` of A gives a teammate: code, params, dvc.yaml/.lock, data.dvc and the
    git-tracked (cache: false) outputs such as metrics and plot data; no DVC cache, no models, no run ids."""
    from dvc.repo import Repo

    with Repo(str(a)) as repo:
        uncached = [Path(out.fs_path).relative_to(a) for stage in repo.index.stages for out in stage.outs
                    if not out.use_cache]
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", "data.dvc"):
        shutil.copy(a / name, b / name)
    for rel in [Path("src"), *uncached]:
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (a / rel).is_dir() else shutil.copy2
        copy(a / rel, b / rel, **({"ignore": shutil.ignore_patterns("__pycache__")} if (a / rel).is_dir() else {}))
    _run(b, "dvc", "init", "--no-scm", "-q")
    for args in remote_args:  # the team's remote, as committed to .dvc/config
        _run(b, "dvc", "remote", *args)


def _pull_and_check(b: Path, env: dict[str, str] | None = None) -> None:
    _run(b, "dvc", "pull", "--run-cache", "-q", env_extra=env)
    assert (b / "masked" / "mean" / "images.npy").is_file()
    assert (b / "models" / "pain" / "seed2022" / "freeze3" / "model.pt").is_file()
    assert any((b / ".dvc" / "cache" / "runs").rglob("*")), "the run cache did not come with the pull"
    assert "up to date" in _run(b, "dvc", "status", env_extra=env)
    second = _run(b, "dvc", "repro", env_extra=env)
    assert "Running stage" not in second, second


def test_a_teammate_pulls_everything_from_a_local_remote(repo, tmp_path):
    store = tmp_path / "store"
    _run(repo, "dvc", "remote", "add", "--local", "-f", "team", str(store))
    _run(repo, "facetransfer", "share", "--remote", "team")
    b = tmp_path / "b"
    b.mkdir()
    _teammate_clone(repo, b, [["add", "-d", "team", str(store)]])
    _pull_and_check(b)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


# Two stages' outputs, a model and the masked datasets: the S3 transport (endpoint URL, credentials, run
# cache) is what this test adds to the local remote's, which moves everything. All ~3,200 cached files
# through moto's one server process took ~60 s of the 2-core `make test`; these ~20 take ~5 s.
S3_STAGES = ("train-pain@2022-3", "mask")


def test_a_teammate_pulls_stage_outputs_from_an_s3_remote(repo, tmp_path, monkeypatch):
    import boto3

    from tests.servers import moto_s3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    with moto_s3(tmp_path / "moto.log") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="facetransfer")
        remote = [["add", "-f", "s3team", "s3://facetransfer/dvcstore"], ["modify", "s3team", "endpointurl", endpoint]]
        for args in remote:
            _run(repo, "dvc", "remote", *args[:1], "--local", *args[1:], env_extra=S3_ENV)
        _run(repo, "dvc", "push", "--run-cache", "-q", "-r", "s3team", *S3_STAGES, env_extra=S3_ENV)
        b = tmp_path / "b"
        b.mkdir()
        _teammate_clone(repo, b, [*remote, ["default", "s3team"]])
        _run(b, "dvc", "pull", "--run-cache", "-q", *S3_STAGES, env_extra=S3_ENV)
        for rel in ("models/pain/seed2022/freeze3/model.pt", "masked/mean/images.npy", "masked/perceptive/images.npy"):
            assert (b / rel).read_bytes() == (repo / rel).read_bytes(), rel
        assert any((b / ".dvc" / "cache" / "runs").rglob("*")), "the run cache did not come with the pull"
        assert "are in sync" in _run(b, "dvc", "status", "--cloud", *S3_STAGES, env_extra=S3_ENV)


# --- sharing through MLflow: the pipeline logs to a team tracking server when MLFLOW_TRACKING_URI says so ---


def test_a_stage_logs_to_a_tracking_server(repo, tmp_path):
    from mlflow.tracking import MlflowClient

    from tests.servers import mlflow_server

    with mlflow_server(tmp_path) as url:
        _run(repo, "facetransfer", "trainee-report", "--summaries", "metrics/trainee", "--curves", "plots/trainee",
             "--out", str(tmp_path / "report"), "--metrics", str(tmp_path / "summary.json"),
             "--run-id", str(tmp_path / "run.json"), env_extra={"MLFLOW_TRACKING_URI": url})
        link = json.loads((tmp_path / "run.json").read_text())
        assert link["tracking_uri"] == url
        run = MlflowClient(url).get_run(link["run_id"])
        # Proxied artifacts: the run stores a server-relative URI, so any client (or clone) can fetch them.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        listed = {a.path for a in MlflowClient(url).list_artifacts(link["run_id"])}
        assert "learning_curves.png" in listed
    assert list((tmp_path / "artifacts").rglob("learning_curves.png"))
