"""`facetransfer share`: push outputs, the run cache and the run cache's outputs to a DVC remote (sharing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer.cli.app import app, err_console


@app.command("share")
def share(remote: Annotated[str | None, typer.Option(help="DVC remote (default: the repository's default remote).")]
          = None,
          repo: Annotated[Path, typer.Option(help="The DVC repository to push from.")] = Path("."),
          jobs: Annotated[int | None, typer.Option(min=1, help="Parallel uploads (default: DVC's).")] = None) -> None:
    """What `dvc push --run-cache` leaves out, too: the models and metrics of runs only the run cache knows.

    After `dvc queue start` has trained seeds or variants as queued experiments, this sends their outputs
    with the run-cache records, so a teammate's `dvc repro --pull` restores them instead of training them
    again (docs/scaling.md).
    """
    from dvc.exceptions import DvcException

    from facetransfer.sharing import push

    try:
        shared = push(repo, remote, jobs)
    except DvcException as err:
        err_console.print(f"[bold red]error:[/] dvc: {' '.join(str(err).split())}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    typer.echo(f"shared: {shared.outputs} workspace output files, {shared.records} run-cache records, "
               f"{shared.run_outputs} files of outputs only the run cache knows")
