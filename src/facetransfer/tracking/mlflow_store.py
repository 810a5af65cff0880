"""MLflow tracking: where the store lives, how a run is opened, what it is tagged with.

The store is SQLite `mlflow.db` at the repository root with artifacts under
`mlruns/` beside it (MLflow 3.x no longer creates new plain file stores). The
root is `$DVC_ROOT` when DVC runs the stage (`dvc exp run --queue` points it at
the real repo, not the temporary workspace), otherwise the working directory.
`MLFLOW_TRACKING_URI` overrides all of that.

This is the only module that imports mlflow, and it does so inside functions:
`import mlflow` costs over a second, which `facetransfer --help` should not pay.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import posixpath
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import yaml

from facetransfer import launch
from facetransfer.config import ConfigError
from facetransfer.fsutil import read_yaml, write_json_atomic

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlruns"
# MLflow rejects a log_batch with more than 100 params or tags, or 1000 metrics.
_MAX_PARAMS_PER_CALL = 100
_MAX_METRICS_PER_CALL = 1000
# A remote server that stops answering: MLflow's defaults (7 retries, backoff factor 2, 120 s a request)
# kept a stage silent for minutes. These bound a lost server to well under a minute; the environment
# variables still win where set. The timeout is per wait for the server, not per transfer.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
SERVER_PROBE_TIMEOUT_S = 5.0


class TrackingUnavailable(ConfigError):
    """`MLFLOW_TRACKING_URI` names a server that does not answer: one line, exit 2 (a user error)."""


# --- where the store lives ---------------------------------------------------------------------


def repo_root() -> Path:
    """`$DVC_ROOT` when set (DVC stage commands), else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    """`$MLFLOW_TRACKING_URI` if set, else `sqlite:///<root>/mlflow.db` (root: see `repo_root`)."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    root = Path(root).resolve() if root is not None else repo_root()
    # Unquoted on purpose: MLflow makes the db's parent folder from the raw URI text.
    return f"sqlite:///{(root / DB_NAME).as_posix()}"


def artifact_root(root: Path | None = None) -> Path:
    """Where the default store keeps run artifacts: `<root>/mlruns`."""
    return (Path(root).resolve() if root is not None else repo_root()) / ARTIFACT_DIR


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return None if path in ("", ":memory:") else Path(path).resolve()


def _artifact_root_for(uri: str) -> Path | None:
    """Artifacts of a SQLite store go to `mlruns/` beside its database file.

    For any other store (a tracking server, Postgres) None: the server decides,
    e.g. its proxied `mlflow-artifacts:` root.
    """
    db = _sqlite_path(uri)
    return None if db is None else db.parent / ARTIFACT_DIR


@contextmanager
def _init_lock(uri: str) -> Iterator[None]:
    """An exclusive lock per store, shared by all processes on this machine.

    It lives in the temp dir (as MLflow's own migration lock does) so that the
    repo root gets no lock file to ignore; the user id in its name keeps one
    user's lock file from blocking another's in a shared /tmp.
    """
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"facetransfer-mlflow-init-{os.getuid()}-{key}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def init_store(uri: str | None = None) -> None:
    """Create the tracking database and run its migrations, once.

    Two processes opening a new SQLite store at the same time both try to
    create the tables and one crashes ("table ... already exists"), so every
    first open goes through a file lock. Cheap and harmless once the store
    exists: it then only checks the schema version.
    """
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    uri = uri or tracking_uri()
    if _is_remote(uri):
        for name, value in HTTP_RETRY_DEFAULTS.items():  # for the rest of this process
            os.environ.setdefault(name, value)
        check_server(uri)
    try:
        with _init_lock(uri):
            # Building the store creates tables, migrates, and adds the Default experiment.
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except UnsupportedModelRegistryStoreURIException:  # a scheme MLflow has no store for (a typo, say)
        raise TrackingUnavailable(f"MLFLOW_TRACKING_URI={uri}: MLflow has no tracking store for this URI; expected "
                                  "http(s)://host:port of an `mlflow server`, or sqlite:///path/to/mlflow.db") \
            from None


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str) -> None:
    """The tracking server at http(s) `uri` answers /health within SERVER_PROBE_TIMEOUT_S, else
    TrackingUnavailable naming the URI (MLflow itself retried for minutes, then printed a long traceback)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_PROBE_TIMEOUT_S) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingUnavailable(f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers ({reason}); expected a "
                                  "running `mlflow server` there, or unset MLFLOW_TRACKING_URI to log to ./mlflow.db") \
            from None


# --- runs ----------------------------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 0.01}} -> {"train.lr": "0.01"}; pydantic models and dataclasses are expanded."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        value = _as_mapping(value)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _as_mapping(value: Any) -> Any:
    """A config object as a dict (so its fields flatten), anything else unchanged."""
    if hasattr(value, "model_dump"):  # pydantic, as in facetransfer.config
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _chunks(items: Mapping[str, Any], size: int) -> Iterator[dict[str, Any]]:
    pairs = list(items.items())
    for start in range(0, len(pairs), size):
        yield dict(pairs[start:start + size])


class RunLogger:
    """Logs into one open MLflow run; handed out by `start_run`, useless after it closes."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._open = True

    def _mlflow(self) -> Any:
        # MLflow's fluent calls start a fresh run when none is active; a logger
        # kept past its `with` block must fail instead of logging somewhere new.
        if not self._open:
            raise RuntimeError(f"MLflow run {self.run_id} has ended; log inside its `with start_run(...)` block")
        import mlflow

        return mlflow

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params as dotted keys, in batches MLflow accepts."""
        mlflow = self._mlflow()
        for chunk in _chunks(flatten_params(params), _MAX_PARAMS_PER_CALL):
            mlflow.log_params(chunk)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        mlflow = self._mlflow()
        for chunk in _chunks({k: str(v) for k, v in tags.items()}, _MAX_PARAMS_PER_CALL):
            mlflow.set_tags(chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalars at `step` (e.g. the epoch), so the UI draws them as curves."""
        mlflow = self._mlflow()
        for chunk in _chunks({k: float(v) for k, v in metrics.items()}, _MAX_METRICS_PER_CALL):
            mlflow.log_metrics(chunk, step=step)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Save `data` as JSON at `artifact_file` (run-relative, e.g. "eval/summary.json")."""
        self._mlflow().log_dict(dict(data), artifact_file)

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """Save a DataFrame so the UI shows it as a table; `artifact_file` must end in .json."""
        if not artifact_file.endswith(".json"):
            raise ValueError(f"table artifact must end in .json, got {artifact_file!r}")
        self._mlflow().log_table(frame, artifact_file)

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        """Save a matplotlib figure as an image at `artifact_file` (e.g. "figures/saliency.png")."""
        self._mlflow().log_figure(figure, artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file, or a folder with its contents, to `<artifact_path>/<name>` in the run."""
        mlflow = self._mlflow()
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), posixpath.join(artifact_path or "", path.name))
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path)
        else:
            raise FileNotFoundError(f"no artifact to log at {path}")

    def log_data_input(self, folder: Path, context: str) -> None:
        """Record the data a run read as an MLflow dataset input (the UI's Datasets column).

        Its digest is the DVC hash of `folder` from `dvc.lock` (`<md5>.dir`), so
        the UI, DVC and the run agree on which data a model saw. A folder inside
        a DVC output is named with its subpath and gets that output's hash;
        data DVC does not track gets digest "untracked".
        """
        mlflow = self._mlflow()
        from mlflow.data.meta_dataset import MetaDataset

        name, digest = dvc_data_hash(folder)
        source = _local_source(Path(folder).resolve().as_uri())
        mlflow.log_input(MetaDataset(source, name=name, digest=digest), context=context)

    def log_state_dict(self, state_dict: dict[str, Any], artifact_path: str) -> None:
        """Save a checkpoint (a state dict) under `artifact_path`; read back with mlflow.pytorch.load_state_dict."""
        self._mlflow()
        import mlflow.pytorch  # imports torch, so only here

        mlflow.pytorch.log_state_dict(state_dict, artifact_path)


def _experiment_id(name: str, artifacts: Path | None) -> str:
    """The id of experiment `name`, created with its artifacts under `artifacts/<name>` if new."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if (found := mlflow.get_experiment_by_name(name)) is not None:
        return found.experiment_id
    # Without an explicit location MLflow uses ./mlruns of the *working directory*,
    # which under `dvc exp run --queue` is a temporary workspace that gets deleted.
    location = None if artifacts is None else (artifacts / _slug(name)).as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:
        # A stage running in parallel may have created it first.
        if (found := mlflow.get_experiment_by_name(name)) is not None:
            return found.experiment_id
        raise


def _slug(name: str) -> str:
    """An experiment name as one safe folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


class SilentRun(RunLogger):
    """What `start_run` hands the processes other than rank 0 under torchrun: takes every call, logs nothing."""

    def __init__(self) -> None:
        super().__init__(run_id="")
        self._open = False

    def __getattribute__(self, name: str) -> Any:
        if name in ("run_id", "_open") or name.startswith("__"):
            return object.__getattribute__(self, name)
        return lambda *args, **kwargs: None


@contextmanager
def start_run(experiment: str, run_name: str, *, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, uri: str | None = None,
              system_metrics: bool = False, nested: bool = False) -> Iterator[RunLogger]:
    """Open an MLflow run in `experiment`, log `params` (flattened) and `tags`, yield its logger.

    With `system_metrics`, MLflow samples CPU, memory, disk, network (and GPU
    where it finds one) in a thread while the run is open (`system/...` metrics).
    With `nested`, the run is a child of the run open in this process (the UI shows it under it).

    The run ends FINISHED, or FAILED if the body raises (KILLED on Ctrl-C or SIGTERM);
    the exception propagates either way.
    """
    if not launch.is_main():  # torchrun's other processes: rank 0 alone keeps the record
        yield SilentRun()
        return
    import mlflow

    uri = uri or tracking_uri()
    init_store(uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = _experiment_id(experiment, _artifact_root_for(uri))
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, log_system_metrics=system_metrics,
                           nested=nested)
    logger = RunLogger(run.info.run_id)
    status = "FAILED"
    try:
        with _terminate_as_interrupt():
            logger.log_params(params or {})
            logger.set_tags(tags or {})
            yield logger
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as err:
        lost = _lost_server(uri, logger.run_id, err)
        if lost is None:
            raise
        status = "LOST"  # the server cannot take a status: the error says the run stays RUNNING there
        raise lost from err
    finally:
        logger._open = False
        _end_run(mlflow, uri, logger.run_id, status)


def _lost_server(uri: str, run_id: str, err: Exception) -> TrackingUnavailable | None:
    """The one-line user error for `err` when it came from a remote tracking server that no longer answers
    (probed once more); None for anything else, which then propagates as it is."""
    from mlflow.exceptions import MlflowException

    if not _is_remote(uri) or not isinstance(err, MlflowException):
        return None
    try:
        check_server(uri)
    except TrackingUnavailable:
        first = " ".join(str(err).split())  # MLflow's message runs over lines and quotes urllib3's retries
        first = first if len(first) <= 300 else first[:300] + "..."
        return TrackingUnavailable(f"MLFLOW_TRACKING_URI={uri}: the MLflow server stopped answering during run "
                                   f"{run_id}, which stays RUNNING there (first error: {first}); expected the "
                                   "server to stay up until the stage ends")
    return None


def _end_run(mlflow: Any, uri: str, run_id: str, status: str) -> None:
    """End the active run as `status`. With an error already on its way out (FAILED, KILLED), a server that
    cannot take the status must not replace that error with its own (MLflow's retry in end_run once hid the
    first error): a warning, and the first error goes on. LOST (the server is gone and the error says so):
    FAILED is tried without a word. mlflow.end_run pops the active run before it calls the server, so a
    failed call leaves no run open in this process."""
    if status == "LOST":  # one quick try: a hung server would hold a full retry cycle (~35 s) again
        from unittest import mock  # patch.dict: set for the block, then restore or remove (stdlib)

        with mock.patch.dict(os.environ, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}):
            try:
                mlflow.end_run(status="FAILED")
            except Exception:
                pass
        return
    try:
        mlflow.end_run(status=status)
    except Exception as err:
        if status == "FINISHED":
            lost = _lost_server(uri, run_id, err)
            if lost is None:
                raise
            raise lost from err
        print(f"warning: MLflow run {run_id} could not be marked {status} ({type(err).__name__}); it may show "
              "as RUNNING in the UI", file=sys.stderr)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (what `kill`, DVC and schedulers send) raises KeyboardInterrupt while a run is open, as Ctrl-C
    does, so the run ends KILLED instead of staying RUNNING forever. Only in the main thread (where Python
    handles signals) and only over the default action: a handler someone else installed is kept."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- provenance ----------------------------------------------------------------------------------


def run_tags(stage: str, root: Path | None = None, **extra: Any) -> dict[str, str]:
    """Standard tags tying a run to its code, data and DVC experiment; never fails.

    `root` is the working tree the code runs from (default: the working
    directory; under `dvc exp run --queue` that is the experiment's workspace,
    not `$DVC_ROOT`). Anything unreadable is tagged "unknown".
    """
    root = Path(root) if root is not None else Path.cwd()
    tags = {
        "stage": stage,
        "git_commit": _git(root, "rev-parse", "HEAD") or "unknown",
        "git_dirty": _git_dirty(root),
        "data_dvc_md5": _data_dvc_md5(root / "data.dvc"),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "sweep": sweep_id(root),
    }
    if baseline := os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc_exp_baseline_rev"] = baseline  # the commit a queued experiment started from
    tags.update({key: str(value) for key, value in extra.items()})
    return tags


def sweep_id(root: Path) -> str:
    """One id per (git commit, data.dvc hash, params.yaml bytes), shared by every run of one `dvc repro`.

    The MLflow UI groups a sweep's runs with the filter `tags.sweep = '<id>'` (the six
    freeze variants side by side in the compare view). A queued experiment with other
    params gets its own id. Uncommitted code changes do not change it (see `git_dirty`).
    """
    digest = hashlib.sha256()
    digest.update((_git(root, "rev-parse", "HEAD") or "no-git").encode())
    digest.update(_data_dvc_md5(root / "data.dvc").encode())
    try:
        digest.update((root / "params.yaml").read_bytes())
    except OSError:
        digest.update(b"no-params")
    return digest.hexdigest()[:12]


def _git(root: Path, *args: str) -> str | None:
    """stdout of `git <args>` in `root`, stripped; None if git or the repo is missing."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _git_dirty(root: Path) -> str:
    """"true" if tracked files differ from HEAD (untracked files do not count)."""
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return "unknown"
    return "true" if status else "false"


def _data_dvc_md5(path: Path) -> str:
    """The md5 of the first output recorded in a `.dvc` file, "unknown" if absent or unreadable."""
    try:
        return str(read_yaml(path)["outs"][0]["md5"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return "unknown"


def dvc_data_hash(folder: Path, root: Path | None = None) -> tuple[str, str]:
    """(name, hash) of a data folder as `dvc.lock` records it: the output that is, or holds, `folder`.

    `root` is the working tree (default: the working directory, as `run_tags`).
    The name is `folder` relative to `root`; the hash is "untracked" where no
    stage output covers it (data outside the pipeline, tests).
    """
    root = Path(root) if root is not None else Path.cwd()
    folder = Path(folder).resolve()
    try:
        name = folder.relative_to(root.resolve()).as_posix()
    except ValueError:
        return folder.as_posix(), "untracked"
    best = ("", "untracked")
    for path, md5 in _dvc_lock_outs(root / "dvc.lock"):
        covers = name == path or name.startswith(path.rstrip("/") + "/")
        if covers and len(path) > len(best[0]):
            best = (path, md5)
    return name, best[1]


def _dvc_lock_outs(lock: Path) -> list[tuple[str, str]]:
    """(path, md5) of every stage output in a dvc.lock; empty if it is absent or unreadable."""
    try:
        stages = read_yaml(lock)["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []
    return [(str(out["path"]), str(out["md5"])) for stage in stages.values() for out in stage.get("outs", [])
            if isinstance(out, dict) and "path" in out and "md5" in out]


def _local_source(uri: str) -> Any:
    """MLflow's dataset source for a local folder, from MLflow's own resolver.

    MLflow registers its local artifact source twice (for "file" and for plain
    paths), so resolving any local URI warns that it "can be interpreted in
    multiple ways"; both are the same class, so that warning is silenced.
    """
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        return resolve_dataset_source(uri)


def write_run_id(path: Path, run_id: str, uri: str | None = None) -> None:
    """Write {"run_id", "tracking_uri"} to `path` atomically: the link from a DVC stage to its run."""
    write_json_atomic(path, {"run_id": run_id, "tracking_uri": uri or tracking_uri()})


def register_model_version(name: str, run_id: str, artifact_path: str, alias: str, tags: Mapping[str, str],
                           description: str = "", uri: str | None = None) -> str:
    """Register `artifact_path` of run `run_id` as a new version of model `name`, point `alias` at it.

    The source is the run's own artifact URI, so the version resolves wherever the run's
    artifacts live (local store or a server's proxied `mlflow-artifacts:`). Returns the version.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=run_id, tags=dict(tags), description=description)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def source_run_tags(folder: Path, names: list[str]) -> dict[str, str]:
    """Tags `source_run.<name>` -> run id, read from `folder/<name>.json` files (see `write_run_id`).

    They link an analysis run to the training runs it analysed (searchable in the UI:
    `tags."source_run.freeze0" = '<id>'`). A missing or unreadable file is a FileNotFoundError.
    """
    tags = {}
    for name in names:
        path = Path(folder) / f"{name}.json"
        try:
            run_id = json.loads(path.read_text())["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            raise FileNotFoundError(f"{path}: no readable run id (run the stage that trains {name} first)") from None
        tags[f"source_run.{name.replace('/', '.')}"] = str(run_id)
    return tags


# --- reading runs back -----------------------------------------------------------------------------


def run_timings(uri: str | None = None) -> list[dict[str, Any]]:
    """Every finished run of the store: id, name, start and end (ms since the epoch), the sum of the
    `epoch_seconds` it logged (0 for runs that train nothing) and its parent run's id (None unless
    nested). For bench/pipeline_profile.py."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    out = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'FINISHED'", max_results=50000):
        trained = "epoch_seconds" in run.data.metrics
        epochs = client.get_metric_history(run.info.run_id, "epoch_seconds") if trained else []
        out.append({"run_id": run.info.run_id, "name": run.info.run_name or "", "start_ms": run.info.start_time,
                    "end_ms": run.info.end_time, "epoch_seconds": float(sum(m.value for m in epochs)),
                    "parent": run.data.tags.get("mlflow.parentRunId")})
    return out
