"""Stage `units` (Khorrami et al.): last-conv units that behave like AU detectors, and whether they survive
fine-tuning to pain.

For every unit of the last conv layer: ROC AUC of its peak activation for each AU's presence and the lift of its
activation inside the AU's region, on CK+ peak frames; units passing both are AU detectors. The emotion model's
detectors for units.track_aus are followed into the pain models of units.compare (same unit index).

Reads   models/emotion/model.pt, models/pain/seed<detail>/freeze<k>/model.pt, prepared/ckplus
Writes  OUTPUTS: reports/units/{units.csv, detectors.csv/.md, survival.csv/.md, patches.png}, metrics/units.json
Core    facetransfer.analysis.units
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import UnitsConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, SOURCE, freeze_name
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("units",)
OUTPUTS = Outputs({"out": "reports/units", "metrics": "metrics/units.json"},
                  {"units": ("out", "units.csv"), "detectors": ("out", "detectors.csv"),
                   "detectors_md": ("out", "detectors.md"), "survival": ("out", "survival.csv"),
                   "survival_md": ("out", "survival.md"), "figure": ("out", "patches.png")})


@dataclass
class Result:
    table: Any  # DataFrame: every unit's AUC and lift per model and AU
    detectors: Any  # the units passing both thresholds
    survival: Any  # the tracked units in every model
    summary: dict  # metrics/units.json
    figure: Any


def run(cfg: UnitsConfig, paths: dict[str, Path], data: Path, device: str) -> Result:
    """Unit activations of every model on the CK+ peak frames, the detector table and the tracked units."""
    import pandas as pd

    from facetransfer.analysis import units as core
    from facetransfer.analysis.saliency import load_test_images
    from facetransfer.report.unit_figures import unit_patches
    from facetransfer.training.recipes import EMOTION_SOURCE, PAIN_MODEL, load_model

    images = load_test_images(data, "all")
    tables, activations = [], {}
    for name, path in paths.items():
        model, _ = load_model(path, EMOTION_SOURCE if name == SOURCE else PAIN_MODEL)
        activations[name] = core.unit_activations(model, images.images, cfg.batch_size, device)
        tables.append(core.unit_table(name, activations[name], images))
    table = pd.concat(tables, ignore_index=True)
    found = core.detectors(table, cfg.auc_min, cfg.lift_min)
    survival = core.survival(table, SOURCE, cfg.track_aus, cfg.auc_min, cfg.lift_min)
    tracked = survival[survival["model"] == SOURCE]
    figure = unit_patches([(f"{SOURCE} unit {int(r.unit)} (AU{r.au}, AUC {r.auc:.2f})",
                            core.top_patches(images.images, activations[SOURCE], int(r.unit), cfg.top_k, cfg.patch))
                           for r in tracked.itertuples()])
    summary = _summary(found, survival, list(paths)) | {"regions": images.region_source}
    return Result(table, found, survival, summary, figure)


def write(result: Result, out: Path, metrics: Path) -> None:
    with atomic_dir(out) as tmp:
        result.table.to_csv(tmp / OUTPUTS.name("units"), index=False)
        result.detectors.to_csv(tmp / OUTPUTS.name("detectors"), index=False)
        (tmp / OUTPUTS.name("detectors_md")).write_text(
            result.detectors.to_markdown(index=False, floatfmt=".3f") + "\n")
        result.survival.to_csv(tmp / OUTPUTS.name("survival"), index=False)
        (tmp / OUTPUTS.name("survival_md")).write_text(result.survival.to_markdown(index=False, floatfmt=".3f") + "\n")
        result.figure.savefig(tmp / OUTPUTS.name("figure"), dpi=120)
    write_json_atomic(metrics, result.summary)


@app.command()
def units(
    source: Annotated[Path, typer.Option(help="The emotion model's model.pt (the reference).")],
    pain: Annotated[Path, typer.Option(help="Folder with freeze{k}/model.pt (the pain models of units.compare).")],
    data: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder (all.csv with gt AUs, images, AU region "
                                            "masks).")],
    out: Annotated[Path, typer.Option(help="Folder for units.csv, detectors.csv/.md, survival.csv/.md, patches.png.")],
    metrics: Annotated[Path, typer.Option(help="JSON: detectors per model and AU, the tracked units' AUC in every "
                                               "model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Khorrami et al.: for every unit of the last conv layer, ROC AUC of its peak activation for each AU's presence
    and the lift of its activation inside the AU's region, on CK+ peak frames; units passing both are AU detectors.
    The emotion model's detectors for units.track_aus are followed into FreezeB0 / FreezeB5 (same unit index)."""
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg = load_section(params, "units")
        device = str(resolve_device(cfg.device))
        paths = {SOURCE: source} | {freeze_name(k): pain / freeze_name(k) / MODEL_FILE for k in cfg.compare}
        result = run(cfg, paths, data, device)
        write(result, out, metrics)
        with tracking.start_run("facetransfer", "units", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("units", Path.cwd())) as logged:
            logged.log_table(result.detectors, "detectors.json")
            logged.log_table(result.survival, "survival.json")
            logged.log_figure(result.figure, "patches.png")
            logged.log_metrics({f"detectors_{m}": float(n) for m, n in result.summary["detector_units"].items()})
            tracking.write_run_id(run_id, logged.run_id)
    for model, count in result.summary["detector_units"].items():
        typer.echo(f"{model}: {count} AU-detector units; best per AU: " + ", ".join(
            f"{au} u{v['unit']} ({v['auc']:.2f})" for au, v in result.summary["best"][model].items()))


def _summary(found, survival, models: list[str]) -> dict:
    """Counts and best detector per model and AU, and the tracked units across models."""
    best = {m: {} for m in models}
    for row in found.drop_duplicates(["model", "au"]).itertuples():
        best[row.model][f"AU{row.au}"] = {"unit": int(row.unit), "auc": float(row.auc), "lift": float(row.lift)}
    counts = {m: int(found[found["model"] == m]["unit"].nunique()) for m in models}
    tracked = {f"AU{r.au}/{r.model}": {"unit": int(r.unit), "auc": float(r.auc), "lift": float(r.lift),
                                       "detector": bool(r.detector)} for r in survival.itertuples()}
    return {"detector_units": counts, "best": best, "tracked": tracked}
