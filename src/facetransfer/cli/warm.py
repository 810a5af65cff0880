"""`facetransfer warm -- <command>`: run a command (usually `dvc repro`) with warm-started stages."""

from __future__ import annotations

import os
import subprocess

import typer

from facetransfer.cli.app import app


@app.command("warm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def warm(ctx: typer.Context) -> None:
    """Run COMMAND with every `facetransfer` stage forked from one preloaded process.

    `facetransfer warm -- dvc repro` imports torch, torchvision, sklearn, mlflow
    and the project once; each stage DVC starts then skips those imports (~11 s
    per stage on 2 cores). Same command lines, outputs and exit codes as without
    it: dvc.lock does not change. See facetransfer/warm.py.
    """
    from facetransfer.warm import ENV, warm_server

    if not ctx.args:
        raise typer.BadParameter("give the command to run, e.g. `facetransfer warm -- dvc repro`", param_hint="COMMAND")
    with warm_server() as address:
        code = subprocess.run(ctx.args, env={**os.environ, ENV: address}).returncode
    raise typer.Exit(code)
