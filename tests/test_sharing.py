"""Sharing the smoke pipeline's results: DVC remotes (local, S3), an MLflow server, the experiment queue.

They use the end-to-end smoke repository (tests/e2e.py); under `make test` they run on the other
worker than tests/test_pipeline.py, on their own copy of it.
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
    git-tracked (cache: false) outputs such as metrics and run ids; no DVC cache, no models."""
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
    assert (b / "masked" / "mean" / "images.npy").is_file() and (b / "models" / "pain" / "freeze3" / "model.pt").is_file()
    assert any((b / ".dvc" / "cache" / "runs").rglob("*")), "the run cache did not come with the pull"
    assert "up to date" in _run(b, "dvc", "status", env_extra=env)
    second = _run(b, "dvc", "repro", env_extra=env)
    assert "Running stage" not in second, second


def test_a_teammate_pulls_everything_from_a_local_remote(repo, tmp_path):
    store = tmp_path / "store"
    _run(repo, "dvc", "remote", "add", "--local", "-f", "team", str(store))
    _run(repo, "dvc", "push", "--run-cache", "-q", "-r", "team")
    b = tmp_path / "b"
    b.mkdir()
    _teammate_clone(repo, b, [["add", "-d", "team", str(store)]])
    _pull_and_check(b)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def test_a_teammate_pulls_everything_from_an_s3_remote(repo, tmp_path, monkeypatch):
    import boto3

    from tests.servers import moto_s3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    with moto_s3(tmp_path / "moto.log") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="facetransfer")
        remote = [["add", "-f", "s3team", "s3://facetransfer/dvcstore"], ["modify", "s3team", "endpointurl", endpoint]]
        for args in remote:
            _run(repo, "dvc", "remote", *args[:1], "--local", *args[1:], env_extra=S3_ENV)
        _run(repo, "dvc", "push", "--run-cache", "-q", "-r", "s3team", env_extra=S3_ENV)
        b = tmp_path / "b"
        b.mkdir()
        _teammate_clone(repo, b, [*remote, ["default", "s3team"]])
        _pull_and_check(b, S3_ENV)


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


# --- queued experiments: `dvc exp run --queue` + `dvc queue start` log into the repository's own store ---


def _git_repo_copy(a: Path, q: Path) -> None:
    """A copy of A (cache and MLflow store included) turned into a git repository, as a user's checkout is."""
    from dvc.repo import Repo

    shutil.copytree(a, q, ignore=shutil.ignore_patterns("__pycache__"))
    with Repo(str(q)) as repo:
        cached = [Path(out.fs_path).relative_to(q) for stage in repo.index.stages for out in stage.outs if out.use_cache]
    ignored = ["/mlflow.db", "/mlruns", "/data", *[f"/{rel.as_posix()}" for rel in cached]]
    (q / ".gitignore").write_text("\n".join(ignored) + "\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(q, "git", "init", "-q")
    _run(q, "dvc", "config", "core.no_scm", "false")
    _run(q, "git", "add", "-A")
    _run(q, *git, "commit", "-q", "-m", "smoke pipeline")


def test_queued_experiment_logs_into_the_repository_store(repo, tmp_path):
    import time

    from mlflow.tracking import MlflowClient

    q = tmp_path / "q"
    _git_repo_copy(repo, q)
    # A param only the last stage reads: the queued experiment reruns `report` alone (a trainee param
    # would retrain all seven trainees, minutes for no extra check of the queue).
    _run(q, "dvc", "exp", "run", "--queue", "-q", "-n", "top-two", "-S", "report.ranking_top=2")
    _run(q, "dvc", "queue", "start")
    deadline = time.monotonic() + 600
    while "Queued" in (status := _run(q, "dvc", "queue", "status")) or "Running" in status:
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert "Success" in status, status + _run(q, "dvc", "queue", "logs", "top-two")
    _run(q, "dvc", "queue", "stop")
    client = MlflowClient(f"sqlite:///{q / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.dvc_exp_name = 'top-two'")
    assert [r.info.run_name for r in runs] == ["report"] and runs[0].data.params["ranking_top"] == "2"
