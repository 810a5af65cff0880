"""`facetransfer necessity`: which AUs each model needs, from counterfactual test images (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic

SOURCE = "emotion"  # the source model's key, as in the saliency stage's outputs


def _model_paths(source: Path, retrain: Path, blocks: tuple[int, ...]) -> dict[str, Path]:
    paths = {SOURCE: source / "model.pt"} | {f"freeze{k}": retrain / f"freeze{k}" / "model.pt" for k in blocks}
    for name, path in paths.items():
        if not path.is_file():
            stage = "train-emotion" if name == SOURCE else f"retrain-emotion stage for freeze block {name[6:]}"
            raise FileNotFoundError(f"{path}: not found (run the {stage} first)")
    return paths


def _write(out: Path, table, figure) -> None:
    formats = {"recall": "{:.3f}", "recall_without": "{:.3f}", "drop": "{:+.3f}", "ci_low": "{:+.3f}",
               "ci_high": "{:+.3f}", "drop_among_shown": "{:+.3f}", "pvalue": "{:.2g}", "pvalue_holm": "{:.2g}"}
    shown = table.assign(**{c: table[c].map(f.format) for c, f in formats.items()})
    with atomic_dir(out) as tmp:
        table.to_csv(tmp / "necessity.csv", index=False, float_format="%.6g")
        (tmp / "necessity.md").write_text(shown.to_markdown(index=False, disable_numparse=True) + "\n")
        figure.savefig(tmp / "necessity.png", dpi=120)


def _skip(data: Path, out: Path, metrics: Path, summary: Path, run_id: Path, cfg) -> None:
    """Real data has no counterfactual images: say so in every output (and the MLflow run) instead of failing."""
    reason = f"{data} has no counterfactual test images (only the synthetic benchmark renders them)"
    typer.echo(f"necessity: skipped: {reason}", err=True)
    with atomic_dir(out) as tmp:
        (tmp / "README.md").write_text(f"Necessity skipped: {reason}.\n")
    write_json_atomic(metrics, {"skipped": reason})
    write_json_atomic(summary, {"skipped": reason})
    with tracking.start_run("facetransfer", "necessity", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("necessity", Path.cwd(), skipped=reason)) as run:
        tracking.write_run_id(run_id, run.run_id)


@app.command()
def necessity(
    source: Annotated[Path, typer.Option(help="Folder with the emotion source model.pt.")],
    retrain: Annotated[Path, typer.Option(help="Folder with freeze{k}/model.pt (the retrained heads).")],
    data: Annotated[Path, typer.Option(help="Prepared AffectNet(-like) folder with counterfactual_images.npy (synthetic).")],
    out: Annotated[Path, typer.Option(help="Folder for necessity.csv / .md and the class x AU heatmaps (necessity.png).")],
    metrics: Annotated[Path, typer.Option(help="metrics/necessity.json: model -> class -> AU<k> -> recall, drop, ...")],
    summary: Annotated[Path, typer.Option(help="metrics/necessity_summary.json: the drops of the study's AUs per model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score every model on the test images and on their counterfactuals (the same image with one AU switched off,
    everything else identical): per class and AU, the recall drop when that AU is removed, with a paired McNemar
    test. The ground truth of what each model uses, against which the forgetting analyses are judged."""
    from facetransfer.analysis import necessity as core
    from facetransfer.report.figures import necessity_heatmaps
    from facetransfer.training.loop import resolve_device
    from facetransfer.training.stages import EMOTION_HEAD, EMOTION_SOURCE, load_model

    with user_errors():
        check_outputs(folders=[out], files=[metrics, summary, run_id])  # before any work
        cfg = load_section(params, "necessity")
        device = str(resolve_device(cfg.device))
        paths = _model_paths(source, retrain, cfg.freeze_blocks)
        if not core.has_counterfactuals(data):
            _skip(data, out, metrics, summary, run_id, cfg)
            return
        test = core.load_counterfactual_test_set(data)
        core.warn_if_sparse(test, data / "test.csv")
        typer.echo(f"necessity: {len(test.labels)} test images, {len(test.counterfactual_images)} counterfactuals, "
                   f"{len(paths)} models", err=True)
        models = {name: load_model(path, EMOTION_SOURCE if name == SOURCE else EMOTION_HEAD)[0]
                  for name, path in paths.items()}
        results = {name: core.model_necessity(model, test, cfg.batch_size, device, cfg.confidence)
                   for name, model in models.items()}
        table = core.long_table(results)
        matrices = {name: core.cell_matrix(cells) for name, cells in results.items()}
        marks = {name: core.cell_matrix(cells, core.significant_drop(cfg.alpha)) > 0 for name, cells in results.items()}
        figure = necessity_heatmaps(matrices, marks)
        _write(out, table, figure)
        write_json_atomic(metrics, results)
        write_json_atomic(summary, core.summary(results))
        with tracking.start_run("facetransfer", "necessity", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("necessity", Path.cwd())) as run:
            run.log_table(table, "necessity.json")
            run.log_figure(figure, "necessity.png")
            run.log_metrics({f"{m}.{cell}.drop": drop for m, cells in core.summary(results).items()
                             for cell, drop in cells.items()})
            tracking.write_run_id(run_id, run.run_id)
    for name, cells in core.summary(results).items():
        typer.echo(f"recall drop, {name:8} " + "  ".join(f"{cell} {drop:+.2f}" for cell, drop in cells.items()))
