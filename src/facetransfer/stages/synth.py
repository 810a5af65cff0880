"""`facetransfer synth` (not a stage of its own: `make data` runs it, versioned by data.dvc; the first command of
`control-data`): the synthetic FACS benchmark in the four datasets' native layouts (params section `synth`).

Writes  OUTPUTS: data/{affectnet, unbc, ckplus, ferplus}/ (native files, groundtruth.csv with AU intensities and
        landmarks, contact_sheets/)
Core    facetransfer.data.synth (render.py draws a face from 68 landmarks and 17 AUs)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer.cli.app import (
    DatasetsOption,
    ParamsOption,
    WorkersOption,
    app,
    progress_bars,
    split_names,
    user_errors,
)
from facetransfer.config import load_section
from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.synth.generate import DATASETS, generate
from facetransfer.fsutil import check_outputs
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("control-data",)  # synth, then prepare (prepare.py), into controls/: other folders
ALL_DATASETS = ",".join(DATASETS)
OUTPUTS = Outputs({"out": "data"})


def run(cfg, out: Path, names: tuple[str, ...], progress) -> dict[str, int]:
    """Render the datasets `names` into out/ (streamed to disk: images are written as they are drawn); returns
    dataset -> images written."""
    return generate(out, cfg, names, progress)


def _aus(text: str) -> tuple[int, ...]:
    try:
        aus = tuple(int(a) for a in text.replace("AU", "").split(",") if a.strip())
    except ValueError:
        raise typer.BadParameter(f"expected AU numbers like 14,5; got {text!r}", param_hint="--suppress-aus") from None
    unknown = sorted(set(aus) - set(ACTION_UNITS))
    if unknown:
        raise typer.BadParameter(f"AUs {unknown} are not rendered; choose from {list(ACTION_UNITS)}",
                                 param_hint="--suppress-aus")
    return aus


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write affectnet/ unbc/ ckplus/ ferplus/ into.")],
    smoke: Annotated[bool, typer.Option(help="A tiny benchmark for tests (same seed and image size).")] = False,
    seed: Annotated[int | None, typer.Option(min=0, help="Overrides synth.seed.")] = None,
    suppress_aus: Annotated[str, typer.Option(help="Render without these AUs, all else identical (e.g. 14,5).")] = "",
    datasets: DatasetsOption = ALL_DATASETS,
    params: ParamsOption = Path("params.yaml"),
    workers: WorkersOption | None = None,
) -> None:
    """Generate the synthetic FACS benchmark (section `synth` of the params file).

    Faces are rendered from a 68-point landmark model with 17 action units;
    every image has ground-truth AU intensities and landmarks (groundtruth.csv)
    from which AU region masks follow. The same seed gives the same bytes.
    Contact sheets land in <dataset>/contact_sheets/.
    """
    with user_errors():
        check_outputs(folders=[out])  # before any work
        cfg = load_section(params, "synth")
        cfg = cfg.smoke() if smoke or cfg.benchmark == "smoke" else cfg
        update = {"seed": seed} if seed is not None else {}
        update |= {"suppress_aus": _aus(suppress_aus)} if suppress_aus else {}
        update |= {"workers": workers} if workers else {}
        cfg = cfg.model_copy(update=update)
        with progress_bars() as progress:
            counts = run(cfg, out, split_names(datasets, DATASETS, "--datasets"), progress)
    typer.echo(f"wrote {sum(counts.values())} images to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
