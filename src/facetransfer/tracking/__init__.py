"""Experiment tracking. The only package that imports mlflow (lazily: see mlflow_store)."""

from facetransfer.tracking.mlflow_store import (
    RunLogger,
    artifact_root,
    dvc_data_hash,
    flatten_params,
    init_store,
    register_model_version,
    repo_root,
    run_tags,
    run_timings,
    source_run_tags,
    start_run,
    sweep_id,
    tracking_uri,
    write_run_id,
)

__all__ = [
    "RunLogger",
    "artifact_root",
    "dvc_data_hash",
    "flatten_params",
    "init_store",
    "register_model_version",
    "repo_root",
    "run_tags",
    "run_timings",
    "source_run_tags",
    "start_run",
    "sweep_id",
    "tracking_uri",
    "write_run_id",
]
