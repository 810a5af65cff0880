"""`facetransfer units`: last-conv units that behave like AU detectors, and whether they survive fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic


@app.command()
def units(
    source: Annotated[Path, typer.Option(help="The emotion model's model.pt (the reference).")],
    pain: Annotated[Path, typer.Option(help="Folder with freeze{k}/model.pt (the pain models of units.compare).")],
    data: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder (all.csv with gt AUs, images, AU region masks).")],
    out: Annotated[Path, typer.Option(help="Folder for units.csv, detectors.csv/.md, survival.csv/.md, patches.png.")],
    metrics: Annotated[Path, typer.Option(help="JSON: detectors per model and AU, the tracked units' AUC in every model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Khorrami et al.: for every unit of the last conv layer, ROC AUC of its peak activation for each AU's presence
    and the lift of its activation inside the AU's region, on CK+ peak frames; units passing both are AU detectors.
    The emotion model's detectors for units.track_aus are followed into FreezeB0 / FreezeB5 (same unit index)."""
    from facetransfer.analysis import units as core
    from facetransfer.analysis.saliency import load_test_images
    from facetransfer.report.unit_figures import unit_patches
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.stages import EMOTION_SOURCE, PAIN_MODEL, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg = load_section(params, "units")
        device = str(resolve_device(cfg.device))
        images = load_test_images(data, "all")
        paths = {"emotion": source} | {f"freeze{k}": pain / f"freeze{k}" / "model.pt" for k in cfg.compare}
        tables, activations = [], {}
        for name, path in paths.items():
            model, _ = load_model(path, EMOTION_SOURCE if name == "emotion" else PAIN_MODEL)
            activations[name] = core.unit_activations(model, images.images, cfg.batch_size, device)
            tables.append(core.unit_table(name, activations[name], images))
        import pandas as pd

        table = pd.concat(tables, ignore_index=True)
        found = core.detectors(table, cfg.auc_min, cfg.lift_min)
        survival = core.survival(table, "emotion", cfg.track_aus, cfg.auc_min, cfg.lift_min)
        tracked = survival[survival["model"] == "emotion"]
        figure = unit_patches([(f"emotion unit {int(r.unit)} (AU{r.au}, AUC {r.auc:.2f})",
                                core.top_patches(images.images, activations["emotion"], int(r.unit), cfg.top_k, cfg.patch))
                               for r in tracked.itertuples()])
        with atomic_dir(out) as tmp:
            table.to_csv(tmp / "units.csv", index=False)
            found.to_csv(tmp / "detectors.csv", index=False)
            (tmp / "detectors.md").write_text(found.to_markdown(index=False, floatfmt=".3f") + "\n")
            survival.to_csv(tmp / "survival.csv", index=False)
            (tmp / "survival.md").write_text(survival.to_markdown(index=False, floatfmt=".3f") + "\n")
            figure.savefig(tmp / "patches.png", dpi=120)
        summary = _summary(found, survival, list(paths)) | {"regions": images.region_source}
        write_json_atomic(metrics, summary)
        with tracking.start_run("facetransfer", "units", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("units", Path.cwd())) as run:
            run.log_table(found, "detectors.json")
            run.log_table(survival, "survival.json")
            run.log_figure(figure, "patches.png")
            run.log_metrics({f"detectors_{m}": float(n) for m, n in summary["detector_units"].items()})
            tracking.write_run_id(run_id, run.run_id)
    for model, count in summary["detector_units"].items():
        typer.echo(f"{model}: {count} AU-detector units; best per AU: " + ", ".join(
            f"{au} u{v['unit']} ({v['auc']:.2f})" for au, v in summary["best"][model].items()))


def _summary(found, survival, models: list[str]) -> dict:
    """Counts and best detector per model and AU, and the tracked units across models."""
    best = {m: {} for m in models}
    for row in found.drop_duplicates(["model", "au"]).itertuples():
        best[row.model][f"AU{row.au}"] = {"unit": int(row.unit), "auc": float(row.auc), "lift": float(row.lift)}
    counts = {m: int(found[found["model"] == m]["unit"].nunique()) for m in models}
    tracked = {f"AU{r.au}/{r.model}": {"unit": int(r.unit), "auc": float(r.auc), "lift": float(r.lift),
                                       "detector": bool(r.detector)} for r in survival.itertuples()}
    return {"detector_units": counts, "best": best, "tracked": tracked}
