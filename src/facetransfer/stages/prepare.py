"""Stage `prepare` (and the second command of `control-data`): crop, resize and split the native datasets into
arrays (params section `prepare`).

Reads   data/{affectnet, unbc, ckplus, ferplus} in their native layouts (facetransfer.data readers)
Writes  OUTPUTS: prepared/<dataset>/ (images.npy memory-mapped, split lists, index.csv, meta.json; AU masks and
        counterfactuals where the benchmark has them), metrics/prepare.json (row counts)
Core    facetransfer.data.prepare
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
from facetransfer.data.prepare import PLANNERS
from facetransfer.data.prepare import prepare as prepare_all
from facetransfer.fsutil import check_outputs, write_json_atomic
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("prepare",)  # and the second command of control-data (synth.py)
ALL_DATASETS = ",".join(PLANNERS)
OUTPUTS = Outputs({"out": "prepared", "metrics": "metrics/prepare.json"})


def run(cfg, data: Path, out: Path, names: tuple[str, ...], progress, workers: int) -> dict:
    """Prepare each dataset of `names` into out/<name>/ (streamed: the arrays are too large to return); returns
    dataset -> its meta (split row counts under "splits")."""
    return prepare_all(data, out, cfg, names, progress, workers)


@app.command()
def prepare(
    data: Annotated[Path, typer.Option(help="Folder holding affectnet/ unbc/ ckplus/ ferplus/ in native layouts.")],
    out: Annotated[Path, typer.Option(help="Folder for prepared/<dataset>/ arrays and split CSVs.")],
    metrics: Annotated[Path | None, typer.Option(help="Write row counts per dataset and split here (JSON).")] = None,
    datasets: DatasetsOption = ALL_DATASETS,
    params: ParamsOption = Path("params.yaml"),
    workers: WorkersOption = 2,
) -> None:
    """Decode, crop (AffectNet face box, landmarks elsewhere), resize once, split (section `prepare`).

    AffectNet: conflicting duplicate labels resolved, training list split into
    train/val, official validation list = test. UNBC: 4 held-out subjects =
    test; 1,000 balanced, non-consecutive frames from the rest, 900/100. CK+:
    peak frames with AU labels, plus an upper-face variant. FER+: majority
    labels, official splits. Images stream to memory-mapped .npy arrays.
    """
    with user_errors():
        check_outputs(folders=[out], files=[metrics] if metrics is not None else [])  # before any work
        cfg = load_section(params, "prepare")
        names = split_names(datasets, tuple(PLANNERS), "--datasets")
        with progress_bars() as progress:
            metas = run(cfg, data, out, names, progress, workers)
        if metrics is not None:
            write_json_atomic(metrics, {name: meta["splits"] for name, meta in metas.items()})
    for name, meta in metas.items():
        typer.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in meta["splits"].items()))
