"""`facetransfer concepts`: do the fine-tuned models still encode the action units the reference does?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, write_json_atomic


def _load_models(models: Path, blocks: list[int]) -> dict:
    from facetransfer.training.stages import load_model

    loaded = {}
    for k in blocks:
        path = models / f"freeze{k}" / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the train-pain stage for freeze block {k} first)")
        loaded[f"freeze{k}"] = load_model(path)[0]
    return loaded


def _nominated(ranking: Path | None, compared: list[str], top: int) -> dict[int, list[str]]:
    from facetransfer.concepts import study

    if ranking is None or top == 0:
        return {}
    if not ranking.is_file():
        raise FileNotFoundError(f"{ranking}: not found (run the saliency stage first, or leave out --ranking)")
    return study.ranked_candidates(json.loads(ranking.read_text()), compared, top)


def _probeable(nominated: dict[int, list[str]], data, cfg, params: Path) -> dict[int, list[str]]:
    """Check the params' AUs can be probed (>= 2 frames with and without); drop nominated AUs that cannot."""
    from facetransfer.concepts.probes import N_FOLDS
    from facetransfer.config import ConfigError

    def counts(au: int) -> tuple[int, int]:
        if f"au_{au}" not in data.table.columns:
            return 0, len(data.table)
        present = int(data.labels(au).sum())
        return present, len(data.table) - present

    for au in cfg.aus:
        if min(counts(au)) < N_FOLDS:
            raise ConfigError(f"{params}: concepts.aus: AU{au} is on {counts(au)[0]} of {len(data.table)} CK+ peak "
                              f"frames; a {N_FOLDS}-fold probe needs at least {N_FOLDS} with and without it")
    kept = {au: by for au, by in nominated.items() if min(counts(au)) >= N_FOLDS}
    for au in sorted(set(nominated) - set(kept)):
        typer.echo(f"concepts: AU{au} (nominated by the saliency ranking) skipped: on {counts(au)[0]} CK+ frames", err=True)
    return kept


@app.command()
def concepts(
    models: Annotated[Path, typer.Option(help="Folder with freeze{k}/model.pt (the pain models; their conv blocks are probed).")],
    data: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder: all.csv, images.npy, upper.npy.")],
    out: Annotated[Path, typer.Option(help="Folder for the test table (CSV, Markdown), raw F1 scores (npz) and figure.")],
    metrics: Annotated[Path, typer.Option(help="metrics/concepts.json: one entry per (AU, model pair).")],
    summary: Annotated[Path, typer.Option(help="metrics/concepts_summary.json: the same keyed by AU and model, for `dvc metrics show`.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    ranking: Annotated[Path | None, typer.Option(help="saliency/au_ranking.json: adds its top AUs (concepts.ranking_top) to the params' AUs.")] = None,
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the pain models' freeze{k}.json run ids, to link the MLflow run to them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Concept probes (Prajod et al. 2022, section 4.3): a linear SVM per AU on the last conv block's output,
    2-fold CV x repeats with shared folds, tested reference vs each model with the paper's plain paired t-test,
    the Nadeau-Bengio corrected test and Dietterich's 5x2cv (Holm-corrected over all pairs)."""
    import numpy as np

    from facetransfer.concepts import study
    from facetransfer.report.figures import concept_forest
    from facetransfer.training.loop import resolve_device

    with user_errors():
        cfg = load_section(params, "concepts")
        reference, compared = f"freeze{cfg.reference}", [f"freeze{k}" for k in cfg.compare]
        loaded = _load_models(models, [cfg.reference, *cfg.compare])
        probe_data = study.load_probe_images(data)
        nominated = _probeable(_nominated(ranking, compared, cfg.ranking_top), probe_data, cfg, params)
        cfg = cfg.model_copy(update={"aus": tuple(dict.fromkeys([*cfg.aus, *sorted(nominated)]))})
        features = study.extract_features(loaded, probe_data, cfg, resolve_device(cfg.device))
        typer.echo(f"concepts: {len(cfg.aus)} AUs x {len(loaded)} models x {cfg.repeats} repeats of 2-fold CV "
                   f"on {len(probe_data.table)} CK+ peak frames ({cfg.workers} workers)", err=True)
        scores = study.probe_all(features, probe_data, cfg, cfg.workers)
        rows = study.test_pairs(scores, probe_data, cfg, reference, compared, nominated)
        table = study.rows_table(rows)
        figure = concept_forest(rows)
        with atomic_dir(out) as tmp:
            table.to_csv(tmp / "tests.csv", index=False)
            (tmp / "tests.md").write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
            np.savez_compressed(tmp / "f1_scores.npz", **{f"{m}_au{au}": s for (m, au), s in scores.items()})
            figure.savefig(tmp / "f1_differences.png", dpi=120)
        write_json_atomic(metrics, rows)
        write_json_atomic(summary, study.summary(rows))
        links = tracking.source_run_tags(source_runs, list(loaded)) if source_runs else {}
        with tracking.start_run("facetransfer", "concepts", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("concepts", Path.cwd(), **links)) as run:
            run.log_table(table, "concept_tests.json")
            run.log_figure(figure, "f1_differences.png")
            run.log_dict({"tests": rows}, "concepts.json")
            run.log_metrics({f"mean_f1_au{r['au']}_{r['model_b']}": r["mean_f1_b"] for r in rows}
                            | {f"mean_f1_au{au}_{reference}": float(scores[reference, au].mean()) for au in cfg.aus})
            tracking.write_run_id(run_id, run.run_id)
    for row in rows:
        typer.echo(f"AU{row['au']:<2} {row['model_a']} vs {row['model_b']}: F1 {row['mean_f1_a']:.3f} vs "
                   f"{row['mean_f1_b']:.3f}  plain p {row['plain']['pvalue']:.2g}  corrected p "
                   f"{row['corrected']['pvalue']:.2g} (Holm {row['corrected']['pvalue_holm']:.2g})"
                   + ("  forgotten" if row["forgotten"] else ""))
