"""Stage `concepts`: do the fine-tuned models still encode the action units the reference does? (Prajod et al.
2022, section 4.3: concept probes.)

A linear SVM per AU on each probed conv block's output, subject-grouped 2-fold CV x repeats with shared folds,
per training seed: reference vs each model with the paper's plain paired t-test, the Nadeau-Bengio corrected
test and Dietterich's 5x2cv; then each seed's mean F1 difference tested across seeds. Holm within each model.

Reads   models/pain/seed<s>/freeze<k>/model.pt (every seed), prepared/ckplus (peak frames, AU labels),
        saliency/au_ranking.json (its top AUs join the params' AUs)
Writes  OUTPUTS: reports/concepts/ (tests, across seeds, raw F1 scores, figure), metrics/concepts.json,
        metrics/concepts_summary.json
Core    facetransfer.concepts.study, facetransfer.concepts.probes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import ConceptsConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import freeze_name, seed_folder, sweep_model
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("concepts",)
OUTPUTS = Outputs({"out": "reports/concepts", "metrics": "metrics/concepts.json",
                   "summary": "metrics/concepts_summary.json"},
                  {"tests": ("out", "tests.csv"), "tests_md": ("out", "tests.md"),
                   "across_seeds": ("out", "across_seeds.csv"), "across_seeds_md": ("out", "across_seeds.md"),
                   "scores": ("out", "f1_scores.npz"), "figure": ("out", "f1_differences.png")})


@dataclass
class Result:
    rows: list[dict]  # metrics/concepts.json: one test per (seed, block, AU, model pair)
    across: list[dict]  # the across-seed tests
    scores_by_seed: dict  # seed -> (model, AU, block) -> F1 per fold, (repeats, 2)
    table: Any  # DataFrame of rows
    across_table: Any
    figure: Any
    cfg: ConceptsConfig  # with the nominated AUs added


def _model_paths(models: Path, seeds: tuple[int, ...], blocks: list[int]) -> dict[int, dict[str, Path]]:
    """seed -> freeze{k} -> model.pt, every one checked before any work starts."""
    paths = {s: {freeze_name(k): sweep_model(models, s, k) for k in blocks} for s in seeds}
    for s, per_seed in paths.items():
        for name, path in per_seed.items():
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the train-pain stage of seed {s}, {name} first)")
    return paths


def _load_models(paths: dict[str, Path]) -> dict:
    from facetransfer.training.recipes import PAIN_MODEL, load_model

    return {name: load_model(path, PAIN_MODEL)[0] for name, path in paths.items()}


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
        typer.echo(f"concepts: AU{au} (nominated by the saliency ranking) skipped: on {counts(au)[0]} CK+ frames",
                   err=True)
    return kept


def run(cfg: ConceptsConfig, seeds: tuple[int, ...], detail_seed: int, paths: dict, probe_data,
        nominated: dict[int, list[str]]) -> Result:
    """Probe every seed's models; the paired tests per seed and across seeds."""
    from facetransfer.concepts import study
    from facetransfer.report.figures import concept_forest
    from facetransfer.training.loop import resolve_device

    reference, compared = freeze_name(cfg.reference), [freeze_name(k) for k in cfg.compare]
    cfg = cfg.model_copy(update={"aus": tuple(dict.fromkeys([*cfg.aus, *sorted(nominated)]))})
    rows_by_seed, scores_by_seed = {}, {}
    for seed in seeds:
        loaded = _load_models(paths[seed])
        features = study.extract_features(loaded, probe_data, cfg, resolve_device(cfg.device))
        typer.echo(f"concepts: seed {seed}: {len(cfg.aus)} AUs x blocks {list(cfg.blocks)} x {len(loaded)} models "
                   f"x {cfg.repeats} repeats of 2-fold CV on {len(probe_data.table)} CK+ peak frames"
                   f"{' (folds grouped by subject)' if probe_data.groups is not None else ''}", err=True)
        scores_by_seed[seed] = study.probe_all(features, probe_data, cfg, cfg.workers)
        rows_by_seed[seed] = [{"seed": seed, **row} for row in
                              study.test_pairs(scores_by_seed[seed], probe_data, cfg, reference, compared, nominated)]
    rows = [row for seed in seeds for row in rows_by_seed[seed]]
    across = study.across_seeds(rows_by_seed, cfg.confidence, cfg.alpha)
    figure = concept_forest(rows_by_seed[detail_seed])  # the per-seed detail of one seed
    return Result(rows, across, scores_by_seed, study.rows_table(rows), pd_frame(across), figure, cfg)


def write(result: Result, out: Path, metrics: Path, summary: Path) -> None:
    import numpy as np

    from facetransfer.concepts import study

    with atomic_dir(out) as tmp:
        result.table.to_csv(tmp / OUTPUTS.name("tests"), index=False)
        (tmp / OUTPUTS.name("tests_md")).write_text(result.table.to_markdown(index=False, floatfmt=".4g") + "\n")
        result.across_table.to_csv(tmp / OUTPUTS.name("across_seeds"), index=False)
        (tmp / OUTPUTS.name("across_seeds_md")).write_text(
            result.across_table.to_markdown(index=False, floatfmt=".4g") + "\n")
        np.savez_compressed(tmp / OUTPUTS.name("scores"), **{f"{seed_folder(s)}_{m}_au{au}_block{b}": f1
                                                             for s, scores in result.scores_by_seed.items()
                                                             for (m, au, b), f1 in scores.items()})
        result.figure.savefig(tmp / OUTPUTS.name("figure"), dpi=120)
    write_json_atomic(metrics, result.rows)
    write_json_atomic(summary, study.across_summary(result.across))


@app.command()
def concepts(
    models: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/model.pt (the pain models; their conv "
                                              "blocks are probed).")],
    data: Annotated[Path, typer.Option(help="Prepared CK+(-like) folder: all.csv, images.npy, upper.npy.")],
    out: Annotated[Path, typer.Option(help="Folder for the test tables (CSV, Markdown), raw F1 scores (npz) and "
                                           "figure.")],
    metrics: Annotated[Path, typer.Option(help="metrics/concepts.json: one entry per (seed, block, AU, model pair).")],
    summary: Annotated[Path, typer.Option(help="metrics/concepts_summary.json: the across-seed tests keyed by AU, "
                                               "block and model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    ranking: Annotated[Path | None, typer.Option(help="saliency/au_ranking.json: adds its top AUs "
                                                      "(concepts.ranking_top) to the params' AUs.")] = None,
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the pain models' seed{s}/freeze{k}.json run "
                                                          "ids, to link the MLflow run to them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Concept probes (Prajod et al. 2022, section 4.3): a linear SVM per AU on each probed conv block's output,
    subject-grouped 2-fold CV x repeats with shared folds, per training seed: reference vs each model with the
    paper's plain paired t-test, the Nadeau-Bengio corrected test and Dietterich's 5x2cv; then each seed's mean F1
    difference tested across seeds. Holm within each compared model."""
    from facetransfer.concepts import study

    with user_errors():
        check_outputs(folders=[out], files=[metrics, summary, run_id])  # before any work
        cfg, study_cfg = load_section(params, "concepts"), load_section(params, "study")
        seeds = study_cfg.seeds
        paths = _model_paths(models, seeds, [cfg.reference, *cfg.compare])
        probe_data = study.load_probe_images(data)
        compared = [freeze_name(k) for k in cfg.compare]
        nominated = _probeable(_nominated(ranking, compared, cfg.ranking_top), probe_data, cfg, params)
        result = run(cfg, seeds, study_cfg.detail_seed, paths, probe_data, nominated)
        write(result, out, metrics, summary)
        names = [f"{seed_folder(s)}/{freeze_name(k)}" for s in seeds for k in [cfg.reference, *cfg.compare]]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "concepts",
                                params=result.cfg.model_dump(mode="json") | {"seeds": seeds},
                                tags=tracking.run_tags("concepts", Path.cwd(), **links)) as logged:
            logged.log_table(result.table, "concept_tests.json")
            logged.log_table(result.across_table, "concept_tests_across_seeds.json")
            logged.log_figure(result.figure, "f1_differences.png")
            logged.log_dict({"tests": result.rows, "across_seeds": result.across}, "concepts.json")
            tracking.write_run_id(run_id, logged.run_id)
    for row in result.across:
        p = "-" if row["pvalue"] is None else f"{row['pvalue']:.2g} (Holm {row['pvalue_holm']:.2g})"
        typer.echo(f"AU{row['au']:<2} block {row['block']} {row['model_a']} - {row['model_b']}: F1 difference "
                   f"{row['mean_diff']:+.3f} over {row['n_seeds']} seeds, p {p}"
                   + ("  forgotten" if row["forgotten"] else ""))


def pd_frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "per_seed"}
                         | {"per_seed": " ".join(f"{v:+.3f}" for v in r["per_seed"])} for r in rows])
