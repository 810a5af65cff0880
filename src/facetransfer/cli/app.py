"""The Typer app every stage command registers on, and what they share."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facetransfer.config import ConfigError
from facetransfer.data.errors import DatasetFormatError, ModelFileError, OutputError
from facetransfer.data.splits import SelectionError

app = typer.Typer(
    help="facetransfer: what did a transferred facial-expression model gain, and what did it forget?\n\n"
    "Each command is one stage of the DVC pipeline (see dvc.yaml); run the whole study with `dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

# Errors a user can fix: reported as one line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, DatasetFormatError, ModelFileError, OutputError, SelectionError, FileNotFoundError)

ParamsOption = Annotated[Path, typer.Option("--params", help="Params file; the command reads its own section.")]
DatasetsOption = Annotated[str, typer.Option(help="Comma-separated subset of: affectnet,unbc,ckplus,ferplus.")]
WorkersOption = Annotated[int, typer.Option(min=1, help="Worker processes.")]
SeedOption = Annotated[int, typer.Option(min=0, help="Training seed of this run "
                                                    "(the pipeline runs each of study.seeds).")]


# `facetransfer --debug <stage>` or FACETRANSFER_DEBUG=1 (for stages DVC runs): user errors show their traceback too.
DEBUG_ENV = "FACETRANSFER_DEBUG"


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="On a user error, show the traceback too (also: "
                                                                   f"{DEBUG_ENV}=1).")] = False) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user-fixable error into `error: <one line>` on stderr and exit status 2 (with --debug, the line
    and then the exception with its traceback)."""
    try:
        yield
    except USER_ERRORS as err:
        err_console.print(f"[bold red]error:[/] {_one_line(err)}", highlight=False, soft_wrap=True)
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        raise typer.Exit(2) from None


def _one_line(err: Exception) -> str:
    """`<culprit>: <what was wrong>`. An OSError from open() reads "[Errno 2] No such file or directory: 'x'":
    the path goes first, as in every other error line."""
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror.lower() if err.strerror else type(err).__name__}; " \
               "expected it to exist (check the path, or run the stage that writes it first)"
    return " ".join(str(err).split())


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A `progress(name, done, total)` callback drawing one rich bar per name (quiet when not a TTY)."""
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=not sys.stderr.isatty()) as bars:
        tasks: dict[str, int] = {}

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        yield update


def split_names(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise typer.BadParameter(f"unknown {unknown}; choose from {','.join(allowed)}", param_hint=option)
    return names
