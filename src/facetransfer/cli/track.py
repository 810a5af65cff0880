"""`facetransfer track-init`: create the MLflow store once, before `dvc repro` runs stages side by side."""

from __future__ import annotations

import typer

from facetransfer import tracking
from facetransfer.cli.app import app, user_errors


@app.command("track-init")
def track_init() -> None:
    """Create the MLflow tracking store once (SQLite mlflow.db + mlruns/), before stages run in parallel."""
    with user_errors():
        tracking.init_store()
    typer.echo(f"MLflow store ready: {tracking.tracking_uri()}")
