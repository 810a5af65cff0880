"""Stage `necessity`: which AUs each model needs, from counterfactual test images (the same image with one AU
switched off, everything else identical): the ground truth the forgetting analyses are judged against.

Reads   models/emotion/model.pt, models/retrain/seed<detail>/freeze<k>/model.pt, prepared/affectnet
        (counterfactual_images.npy: the synthetic benchmark only; real data skips the stage, saying so)
Writes  OUTPUTS: reports/necessity/{necessity.csv, necessity.md, necessity.png}, metrics/necessity.json,
        metrics/necessity_summary.json
Core    facetransfer.analysis.necessity
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import NecessityConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, SOURCE, freeze_block, freeze_name
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("necessity",)
OUTPUTS = Outputs({"out": "reports/necessity", "metrics": "metrics/necessity.json",
                   "summary": "metrics/necessity_summary.json"},
                  {"table": ("out", "necessity.csv"), "table_md": ("out", "necessity.md"),
                   "figure": ("out", "necessity.png")})
SKIPPED_NOTE = "README.md"  # in --out instead of the three files, on data without counterfactuals


@dataclass
class Result:
    results: dict  # metrics/necessity.json: model -> class -> AU<k> -> recall, recall_without, drop, ...
    summary: dict  # metrics/necessity_summary.json: model -> the study's AU cells -> drop
    table: Any  # DataFrame, one row per model, class and AU
    figure: Any


def _model_paths(source: Path, retrain: Path, blocks: tuple[int, ...]) -> dict[str, Path]:
    paths = {SOURCE: source / MODEL_FILE} | {freeze_name(k): retrain / freeze_name(k) / MODEL_FILE for k in blocks}
    for name, path in paths.items():
        if not path.is_file():
            stage = ("train-emotion" if name == SOURCE
                     else f"retrain-emotion stage for freeze block {freeze_block(name)}")
            raise FileNotFoundError(f"{path}: not found (run the {stage} first)")
    return paths


def run(cfg: NecessityConfig, paths: dict[str, Path], data: Path, device: str) -> Result:
    """Every model scored on the test images and on their counterfactuals: per class and AU, the recall drop."""
    from facetransfer.analysis import necessity as core
    from facetransfer.report.figures import necessity_heatmaps
    from facetransfer.training.recipes import EMOTION_HEAD, EMOTION_SOURCE, load_model

    test = core.load_counterfactual_test_set(data)
    core.warn_if_sparse(test, data / "test.csv")
    typer.echo(f"necessity: {len(test.labels)} test images, {len(test.counterfactual_images)} counterfactuals, "
               f"{len(paths)} models", err=True)
    models = {name: load_model(path, EMOTION_SOURCE if name == SOURCE else EMOTION_HEAD)[0]
              for name, path in paths.items()}
    results = {name: core.model_necessity(model, test, cfg.batch_size, device, cfg.confidence)
               for name, model in models.items()}
    matrices = {name: core.cell_matrix(cells) for name, cells in results.items()}
    marks = {name: core.cell_matrix(cells, core.significant_drop(cfg.alpha)) > 0 for name, cells in results.items()}
    return Result(results, core.summary(results), core.long_table(results), necessity_heatmaps(matrices, marks))


def _write(out: Path, table, figure) -> None:
    formats = {"recall": "{:.3f}", "recall_without": "{:.3f}", "drop": "{:+.3f}", "ci_low": "{:+.3f}",
               "ci_high": "{:+.3f}", "drop_among_shown": "{:+.3f}", "pvalue": "{:.2g}", "pvalue_holm": "{:.2g}"}
    shown = table.assign(**{c: table[c].map(f.format) for c, f in formats.items()})
    with atomic_dir(out) as tmp:
        table.to_csv(tmp / OUTPUTS.name("table"), index=False, float_format="%.6g")
        (tmp / OUTPUTS.name("table_md")).write_text(shown.to_markdown(index=False, disable_numparse=True) + "\n")
        figure.savefig(tmp / OUTPUTS.name("figure"), dpi=120)


def _skip(data: Path, out: Path, metrics: Path, summary: Path, run_id: Path, cfg) -> None:
    """Real data has no counterfactual images: say so in every output (and the MLflow run) instead of failing."""
    reason = f"{data} has no counterfactual test images (only the synthetic benchmark renders them)"
    typer.echo(f"necessity: skipped: {reason}", err=True)
    with atomic_dir(out) as tmp:
        (tmp / SKIPPED_NOTE).write_text(f"Necessity skipped: {reason}.\n")
    write_json_atomic(metrics, {"skipped": reason})
    write_json_atomic(summary, {"skipped": reason})
    with tracking.start_run("facetransfer", "necessity", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("necessity", Path.cwd(), skipped=reason)) as logged:
        tracking.write_run_id(run_id, logged.run_id)


@app.command()
def necessity(
    source: Annotated[Path, typer.Option(help="Folder with the emotion source model.pt.")],
    retrain: Annotated[Path, typer.Option(help="Folder with freeze{k}/model.pt (the retrained heads).")],
    data: Annotated[Path, typer.Option(help="Prepared AffectNet(-like) folder with counterfactual_images.npy "
                                            "(synthetic).")],
    out: Annotated[Path, typer.Option(help="Folder for necessity.csv / .md and the class x AU heatmaps "
                                           "(necessity.png).")],
    metrics: Annotated[Path, typer.Option(help="metrics/necessity.json: model -> class -> AU<k> -> recall, drop, ...")],
    summary: Annotated[Path, typer.Option(help="metrics/necessity_summary.json: the drops of the study's AUs per "
                                               "model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score every model on the test images and on their counterfactuals (the same image with one AU switched off,
    everything else identical): per class and AU, the recall drop when that AU is removed, with a paired McNemar
    test. The ground truth of what each model uses, against which the forgetting analyses are judged."""
    from facetransfer.analysis.necessity import has_counterfactuals
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[metrics, summary, run_id])  # before any work
        cfg = load_section(params, "necessity")
        device = str(resolve_device(cfg.device))
        paths = _model_paths(source, retrain, cfg.freeze_blocks)
        if not has_counterfactuals(data):
            _skip(data, out, metrics, summary, run_id, cfg)
            return
        result = run(cfg, paths, data, device)
        _write(out, result.table, result.figure)
        write_json_atomic(metrics, result.results)
        write_json_atomic(summary, result.summary)
        with tracking.start_run("facetransfer", "necessity", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("necessity", Path.cwd())) as logged:
            logged.log_table(result.table, "necessity.json")
            logged.log_figure(result.figure, "necessity.png")
            logged.log_metrics({f"{m}.{cell}.drop": drop for m, cells in result.summary.items()
                                for cell, drop in cells.items()})
            tracking.write_run_id(run_id, logged.run_id)
    for name, cells in result.summary.items():
        typer.echo(f"recall drop, {name:8} " + "  ".join(f"{cell} {drop:+.2f}" for cell, drop in cells.items()))
