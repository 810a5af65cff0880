"""Tracking against a real SQLite MLflow store in a temp folder: what a run logs is what reads back."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow.pytorch
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure  # no pyplot: no backend, nothing to close
from mlflow.tracking import MlflowClient

from facetransfer.tracking import (
    artifact_root,
    dvc_data_hash,
    flatten_params,
    init_store,
    mlflow_store,
    register_model_version,
    run_tags,
    run_timings,
    source_run_tags,
    start_run,
    sweep_id,
    tracking_uri,
    write_run_id,
)


@pytest.fixture(scope="module")
def store_root(tmp_path_factory) -> Path:
    """One store for the module: its first open (tables, migrations) takes a second or two."""
    root = tmp_path_factory.mktemp("repo")
    init_store(f"sqlite:///{root / 'mlflow.db'}")
    return root


@pytest.fixture
def repo(store_root, monkeypatch) -> Path:
    """Act as a DVC stage of the repo at `store_root`, run from somewhere else."""
    monkeypatch.setenv("DVC_ROOT", str(store_root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(store_root.parent)  # artifacts must not follow the working directory
    return store_root


def client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri())


def local_path(artifact_uri: str) -> Path:
    """A run's `file://` artifact URI as a path."""
    return Path(unquote(urlparse(artifact_uri).path))


# --- where the store lives ---------------------------------------------------------------------


def test_uri_is_sqlite_under_dvc_root(repo):
    assert tracking_uri() == f"sqlite:///{repo / 'mlflow.db'}"
    assert artifact_root() == repo / "mlruns"


def test_uri_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking_uri(tmp_path / "x") == f"sqlite:///{tmp_path.resolve() / 'x' / 'mlflow.db'}"


def test_init_store_creates_the_database_and_is_idempotent(repo):
    db = repo / "mlflow.db"
    assert db.is_file() and db.stat().st_size > 0
    before = client().search_experiments()
    init_store()
    init_store()
    assert [e.experiment_id for e in client().search_experiments()] == [e.experiment_id for e in before]


def _init_and_log(uri: str) -> None:
    """A stage in its own process: first open of the store, then a run in a shared experiment."""
    init_store(uri)
    with start_run("parallel", "worker", uri=uri) as run:
        run.log_metrics({"x": 1.0})


@pytest.mark.slow
def test_parallel_first_opens_do_not_crash(tmp_path):
    # Without the lock one of two fresh opens fails with "table ... already exists".
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as DVC starts one per stage
    workers = [spawn.Process(target=_init_and_log, args=(uri,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    experiment = MlflowClient(uri).get_experiment_by_name("parallel")
    runs = MlflowClient(uri).search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


# --- runs ----------------------------------------------------------------------------------------


def test_flatten_params_dots_nested_keys_and_stringifies():
    nested = {"train": {"lr": 0.01, "freeze": [1, 2], "opt": {"name": "sgd"}}, "seed": 3, "none": None}
    assert flatten_params(nested) == {
        "train.lr": "0.01", "train.freeze": "[1, 2]", "train.opt.name": "sgd", "seed": "3", "none": "None"}


def test_run_logs_params_tags_metrics_and_artifacts(repo, tmp_path):
    many = {f"p{i:03d}": i for i in range(250)}  # more than one MLflow batch (100)
    params = {"train": {"lr": 0.01, "epochs": 3}, "many": many}
    state = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "epoch": torch.tensor(2)}
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    with start_run("train", "freeze-3", params=params, tags={"stage": "train", "freeze_blocks": 3}) as run:
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            run.log_metrics({"loss": loss, "acc": 1 - loss}, step=epoch)
        run.log_table(pd.DataFrame({"class": ["happy", "sad"], "recall": [0.9, 0.4]}), "recall.json")
        run.log_figure(figure, "figures/curve.png")
        run.log_dict({"best_epoch": 2}, "summary.json")
        run.log_state_dict(state, "checkpoint")
        run.log_artifact(extra, "extra")
        run.set_tags({"late": "yes"})

    logged = client().get_run(run.run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "freeze-3"
    assert logged.data.params["train.lr"] == "0.01" and logged.data.params["train.epochs"] == "3"
    assert sum(key.startswith("many.") for key in logged.data.params) == 250
    assert logged.data.tags["stage"] == "train" and logged.data.tags["freeze_blocks"] == "3"
    assert logged.data.tags["late"] == "yes"
    history = client().get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 0.9), (1, 0.5), (2, 0.3)]

    artifacts = local_path(logged.info.artifact_uri)
    assert artifacts.is_relative_to(repo / "mlruns")
    assert json.loads((artifacts / "summary.json").read_text()) == {"best_epoch": 2}
    table = json.loads((artifacts / "recall.json").read_text())
    assert table["columns"] == ["class", "recall"] and len(table["data"]) == 2
    assert (artifacts / "figures" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (artifacts / "extra" / "notes.txt").read_text() == "hello"
    loaded = mlflow.pytorch.load_state_dict(f"runs:/{run.run_id}/checkpoint")
    assert torch.equal(loaded["weight"], state["weight"]) and int(loaded["epoch"]) == 2


def test_failing_body_marks_the_run_failed_and_reraises(repo):
    with pytest.raises(RuntimeError, match="diverged"):
        with start_run("train", "boom") as run:
            run.log_metrics({"loss": float("nan")}, step=0)
            raise RuntimeError("diverged")
    assert client().get_run(run.run_id).info.status == "FAILED"


def test_logger_refuses_to_log_after_its_run_ended(repo):
    with start_run("train", "short") as run:
        pass
    with pytest.raises(RuntimeError, match="has ended"):
        run.log_metrics({"loss": 1.0})


def test_table_artifact_must_be_json(repo):
    with pytest.raises(ValueError, match=".json"):
        with start_run("train", "bad-table") as run:
            run.log_table(pd.DataFrame({"a": [1]}), "table.csv")
    assert client().get_run(run.run_id).info.status == "FAILED"


def test_tracking_uri_env_overrides_dvc_root(store_root, tmp_path, monkeypatch):
    # The env var names the module's store; DVC_ROOT names an empty repo that must stay empty.
    uri = f"sqlite:///{store_root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == uri and tracking_uri(tmp_path) == uri
    with start_run("train", "moved") as run:
        run.log_dict({"a": 1}, "a.json")
    artifact_uri = MlflowClient(uri).get_run(run.run_id).info.artifact_uri
    assert local_path(artifact_uri).is_relative_to(store_root / "mlruns")
    assert list(tmp_path.iterdir()) == []


# --- provenance ----------------------------------------------------------------------------------


def test_run_tags_outside_git_read_data_dvc(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo above tmp_path
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-fish")
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  size: 10\n  path: data\n")
    tags = run_tags("train", tmp_path, freeze_blocks=3)
    assert tags == {"stage": "train", "git_commit": "unknown", "git_dirty": "unknown",
                    "data_dvc_md5": "abc123.dir", "dvc_exp_name": "lucky-fish",
                    "freeze_blocks": "3", "sweep": sweep_id(tmp_path)}


def test_sweep_id_is_shared_until_params_or_data_change(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "params.yaml").write_text("train_pain: {lr: 0.01}\n")
    first = sweep_id(tmp_path)
    assert len(first) == 12 and sweep_id(tmp_path) == first
    (tmp_path / "params.yaml").write_text("train_pain: {lr: 0.02}\n")
    second = sweep_id(tmp_path)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data\n")
    assert len({first, second, sweep_id(tmp_path)}) == 3


def test_run_tags_without_data_dvc_or_exp(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "data.dvc").write_text("not: [valid")
    tags = run_tags("evaluate", tmp_path)
    assert tags["data_dvc_md5"] == "unknown" and tags["dvc_exp_name"] == ""


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_run_tags_in_a_git_repo(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                               *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    assert run_tags("train", tmp_path)["git_commit"] == git("rev-parse", "HEAD")
    assert run_tags("train", tmp_path)["git_dirty"] == "false"
    (tmp_path / "a.txt").write_text("2")
    assert run_tags("train", tmp_path)["git_dirty"] == "true"


def test_write_run_id_writes_json(repo, tmp_path):
    path = tmp_path / "runs" / "train.json"
    write_run_id(path, "abc")
    assert json.loads(path.read_text()) == {"run_id": "abc", "tracking_uri": tracking_uri()}
    assert [p.name for p in path.parent.iterdir()] == ["train.json"]  # no temp file left behind


def test_source_run_tags_link_to_the_training_runs(tmp_path):
    write_run_id(tmp_path / "pain" / "freeze0.json", "abc123", uri="sqlite:///x.db")
    assert source_run_tags(tmp_path, ["pain/freeze0"]) == {"source_run.pain.freeze0": "abc123"}
    with pytest.raises(FileNotFoundError, match="freeze1.json: no readable run id"):
        source_run_tags(tmp_path, ["pain/freeze1"])


def test_register_model_version_points_the_alias_at_the_newest(repo):
    runs = []
    for k in (2, 3):
        with start_run("registry", f"pain/freeze{k}") as run:
            run.log_state_dict({"w": torch.ones(2)}, "checkpoint")
            runs.append(run.run_id)
    versions = [register_model_version("pain-balanced", run_id, "checkpoint", "balanced", {"model": f"freeze{k}"})
                for run_id, k in zip(runs, (2, 3), strict=True)]
    assert versions == ["1", "2"]
    chosen = client().get_model_version_by_alias("pain-balanced", "balanced")
    assert chosen.run_id == runs[1] and chosen.tags == {"model": "freeze3"}
    state = mlflow.pytorch.load_state_dict("models:/pain-balanced@balanced")  # as README says
    assert torch.equal(state["w"], torch.ones(2))


# --- what a run read, how it ran, and reading runs back -------------------------------------------

def test_data_input_carries_the_dvc_hash_of_the_output_holding_it(repo, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    (tree / "prepared" / "affectnet").mkdir(parents=True)
    (tree / "controls" / "prepared" / "au5" / "affectnet").mkdir(parents=True)
    (tree / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n    outs:\n"
        "    - path: prepared/affectnet\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n"
        "  control-data@5:\n    cmd: y\n    outs:\n"
        "    - path: controls/prepared/au5\n      hash: md5\n      md5: fedcba9876543210fedcba9876543210.dir\n")
    monkeypatch.chdir(tree)
    assert dvc_data_hash(Path("prepared/affectnet")) == ("prepared/affectnet", "0123456789abcdef0123456789abcdef.dir")
    assert dvc_data_hash(tree / "controls/prepared/au5/affectnet") == (
        "controls/prepared/au5/affectnet", "fedcba9876543210fedcba9876543210.dir")  # inside an output
    assert dvc_data_hash(tmp_path)[1] == "untracked"
    with start_run("train", "with-data") as run:
        run.log_data_input(Path("prepared/affectnet"), context="training")
    inputs = client().get_run(run.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
        ("prepared/affectnet", "0123456789abcdef0123456789abcdef.dir")]
    assert inputs[0].tags[0].value == "training"


def test_system_metrics_are_logged_when_asked(repo, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    with start_run("train", "busy", system_metrics=True) as run:
        time.sleep(1.0)
    with start_run("train", "quiet") as quiet:
        time.sleep(0.5)
    assert "system/cpu_utilization_percentage" in client().get_run(run.run_id).data.metrics
    assert not any(k.startswith("system/") for k in client().get_run(quiet.run_id).data.metrics)


def test_run_timings_read_back_each_finished_run(repo):
    with start_run("timing", "train-pain/FreezeB0") as run:
        for epoch, seconds in enumerate([1.5, 2.5], start=1):
            run.log_metrics({"epoch_seconds": seconds}, step=epoch)
    with start_run("timing", "forgetting") as plain:
        pass
    timings = {t["run_id"]: t for t in run_timings(tracking_uri())}
    assert timings[run.run_id]["epoch_seconds"] == 4.0 and timings[plain.run_id]["epoch_seconds"] == 0.0
    assert timings[run.run_id]["name"] == "train-pain/FreezeB0"
    assert timings[run.run_id]["start_ms"] <= timings[run.run_id]["end_ms"] <= timings[plain.run_id]["start_ms"]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_tracking_server_that_does_not_answer_is_one_line_within_seconds(tmp_path, monkeypatch):
    """Issue 18: MLFLOW_TRACKING_URI at a server that is not there sat silent for 255 s, then printed a 137-line
    traceback chain."""
    from typer.testing import CliRunner

    from facetransfer.cli import app

    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in mlflow_store.HTTP_RETRY_DEFAULTS:  # unset for the test, restored (or removed) after it
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    start = time.monotonic()
    result = CliRunner().invoke(app, ["track-init"])
    assert time.monotonic() - start < 30
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: MLFLOW_TRACKING_URI={uri}: no MLflow server answers ([Errno 111] Connection refused); expected a "
        "running `mlflow server` there, or unset MLFLOW_TRACKING_URI to log to ./mlflow.db"]
    # MLflow's own retries are bounded for the rest of the run (a server lost mid-run fails in under a minute)
    assert {name: os.environ[name] for name in mlflow_store.HTTP_RETRY_DEFAULTS} == \
        mlflow_store.HTTP_RETRY_DEFAULTS
    init_store(f"sqlite:///{tmp_path / 'mlflow.db'}")  # a local store is not probed


# A stage's run as the launcher reports it: user errors one line on stderr, exit status 2.
_RUN_THEN_LOG = """
import sys, typer
from facetransfer.cli.app import user_errors
from facetransfer.tracking import start_run
try:
    with user_errors(), start_run("e", "lost") as run:
        print("open", flush=True)
        sys.stdin.readline()  # the test stops the server meanwhile
        run.log_metrics({"loss": 1.0}, step=1)
except typer.Exit as done:
    sys.exit(done.exit_code)
"""


def test_a_server_lost_mid_run_fails_within_a_minute_with_the_first_error(tmp_path):
    """Issue 18: a server that died mid-run kept the stage silent for 8.5 minutes, and the retry in end_run
    masked the first error. Now: one line naming MLFLOW_TRACKING_URI and the first error, in under 60 s."""
    from tests.servers import mlflow_server

    env = {k: v for k, v in os.environ.items() if k not in mlflow_store.HTTP_RETRY_DEFAULTS}
    with mlflow_server(tmp_path) as url:
        env["MLFLOW_TRACKING_URI"] = url
        stage = subprocess.Popen([sys.executable, "-c", _RUN_THEN_LOG], env=env, text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert stage.stdout.readline().strip() == "open"
    start = time.monotonic()  # the server is gone
    _, stderr = stage.communicate("go\n", timeout=120)
    assert time.monotonic() - start < 60
    assert stage.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: MLFLOW_TRACKING_URI={url}: the MLflow server stopped "
                                                   "answering during run "), stderr
    assert ", which stays RUNNING there (first error: API request to " in lines[0]
    assert "runs/log-batch" in lines[0]  # the log call's error, not end_run's (runs/update)


def test_sigterm_ends_the_run_killed_not_running(tmp_path):
    """Issue 18: SIGTERM left the MLflow run RUNNING forever."""
    import signal

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = ("import sys, time\n"
              "from facetransfer.tracking import start_run\n"
              f"with start_run('e', 'terminated', uri={uri!r}):\n"
              "    print('open', flush=True)\n"
              "    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "open"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) != 0
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("e").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("terminated", "KILLED")]
