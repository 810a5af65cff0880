"""`facetransfer saliency`: where the models look, where they differ, and which AUs the difference points to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, progress_bars, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic


def _load(retrain: Path, source: Path, blocks: list[int], rows):
    import pandas as pd

    from facetransfer.training.stages import EMOTION_HEAD, EMOTION_SOURCE, load_model

    models, predictions = {}, {}
    for k in blocks:
        folder = retrain / f"freeze{k}"
        for path in (folder / "model.pt", folder / "test_predictions.csv"):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the retrain-emotion stage for freeze block {k} first)")
        models[f"freeze{k}"] = load_model(folder / "model.pt", EMOTION_HEAD)[0]
        table = pd.read_csv(folder / "test_predictions.csv", usecols=["row", "predicted"]).set_index("row")
        predictions[f"freeze{k}"] = table.loc[rows, "predicted"].to_numpy()
    if not (source / "model.pt").is_file():
        raise FileNotFoundError(f"{source / 'model.pt'}: not found (run the train-emotion stage first)")
    return {"emotion": load_model(source / "model.pt", EMOTION_SOURCE)[0], **models}, predictions


def _seed_rankings(retrain: Path, source: Path, test, cfg, device: str) -> dict:
    """One more training seed's AU rankings (model -> class -> ranking): LRP of its contrast images only."""
    from facetransfer.analysis import saliency as core

    blocks = [cfg.reference, *cfg.compare]
    models, predictions = _load(retrain, source, blocks, test.rows)
    reference = f"freeze{cfg.reference}"
    compared = [f"freeze{k}" for k in cfg.compare]
    keep = core.contrast_sets(predictions, test.labels, reference, compared, cfg.max_images_per_class)
    lrp = {name: core.contrast_lrp(models[name], test, keep[name], cfg.batch_size, device)
           for name in [reference, *compared]}
    return {name: core.compare_pair(lrp[reference], lrp[name], test, predictions, reference, name,
                                    cfg.max_images_per_class, cfg.min_images)[0] for name in compared}


def _write_maps(out: Path, test, explained: dict, predictions: dict, reference: str, cfg) -> tuple[dict, dict]:
    """Per model pair: the AU ranking, an npz of the contrast images' maps, and a figure grid per class."""
    import numpy as np

    from facetransfer.analysis import saliency as core
    from facetransfer.explain import normalise_maps
    from facetransfer.report.figures import saliency_grid, signed_difference

    rankings, grids = {}, {}
    with atomic_dir(out / "maps") as tmp:
        for k in cfg.compare:
            name = f"freeze{k}"
            rankings[name], arrays = core.compare_pair(explained[reference].lrp, explained[name].lrp, test,
                                                       predictions, reference, name, cfg.max_images_per_class,
                                                       cfg.min_images)
            for a in arrays.values():  # Grad-CAM of the same images, for the grids and for reuse
                a["gradcam_reference"] = explained[reference].gradcam[a["index"]]
                a["gradcam_model"] = explained[name].gradcam[a["index"]]
            np.savez_compressed(tmp / f"{reference}_vs_{name}.npz",
                                **{f"{cls}_{key}": value for cls, a in arrays.items() for key, value in a.items()})
            for cls, a in arrays.items():
                n = min(cfg.grid_images, a["index"].size)
                grids[f"{reference}_vs_{name}_{cls}.png"] = saliency_grid(
                    test.images[a["index"][:n]], normalise_maps(a["reference"][:n]), normalise_maps(a["model"][:n]),
                    signed_difference(a["reference"][:n], a["model"][:n]), (reference, name),
                    f"{cls}: right by {reference}, wrong by {name} ({a['index'].size} images)",
                    gradcam=(a["gradcam_reference"][:n], a["gradcam_model"][:n]))
    with atomic_dir(out / "grids") as tmp:
        for file, figure in grids.items():
            figure.savefig(tmp / file, dpi=90)
    return rankings, grids


def _write_localisation(out: Path, explained: dict, scores: dict):
    """saliency/localisation/: per-image scores (CSV) and the bar chart; None when nothing was scored."""
    import pandas as pd

    from facetransfer.report.figures import localisation_bars

    figure = None if "skipped" in scores else localisation_bars(scores)
    with atomic_dir(out / "localisation") as tmp:
        tables = [e.scores.assign(model=name) for name, e in explained.items()]
        pd.concat(tables, ignore_index=True).to_csv(tmp / "per_image.csv", index=False, float_format="%.6g")
        if figure is not None:
            figure.savefig(tmp / "localisation.png", dpi=90)
    return figure


@app.command()
def saliency(
    retrain: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/model.pt and test_predictions.csv (retrained heads).")],
    source: Annotated[Path, typer.Option(help="Folder with the emotion source model.pt (scored for localisation too).")],
    data: Annotated[Path, typer.Option(help="Prepared AffectNet(-like) folder: test.csv, images.npy, masks.npy.")],
    out: Annotated[Path, typer.Option(help="Folder for maps/ (npz per model pair) and grids/ (PNG per pair and class).")],
    ranking: Annotated[Path, typer.Option(help="saliency/au_ranking.json: AUs ranked per class and model pair.")],
    metrics: Annotated[Path, typer.Option(help="metrics/localisation.json: localisation scores per model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the retrained heads' freeze{k}.json run ids, to link the MLflow run.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """LRP (zennit, z+ conv / z dense) on test images FreezeB5 got right and FreezeBk wrong: maps, difference maps and
    figure grids; AU regions ranked by how much more relevance FreezeB5 put there (Wilcoxon, Holm); every model's
    LRP and Grad-CAM maps scored against the true AU regions. All of it on the detail seed's models; the ranking
    also on every other training seed's, and each AU's difference tested across seeds."""
    import numpy as np

    from facetransfer.analysis import saliency as core
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[ranking, metrics, run_id])  # before any work
        cfg, study = load_section(params, "saliency"), load_section(params, "study")
        device = str(resolve_device(cfg.device))
        test = core.load_test_images(data, require_labels=False)
        typer.echo(f"saliency: where each AU is comes from the {test.region_source}", err=True)
        if test.present is None:
            typer.echo(f"saliency: {data / 'test.csv'} has no ground-truth AU columns (real data): every AU is "
                       "ranked on every contrast image, localisation is skipped", err=True)
        blocks = [cfg.reference, *cfg.compare]
        models, predictions = _load(retrain / f"seed{study.detail_seed}", source, blocks, test.rows)
        reference = f"freeze{cfg.reference}"
        keep = core.contrast_sets(predictions, test.labels, reference, [f"freeze{k}" for k in cfg.compare],
                                  cfg.max_images_per_class)
        keep["emotion"] = np.array([], np.int64)  # the source model is only scored
        scored = core.localisation_indices(test, cfg.localisation_images)
        explained = {}
        with progress_bars() as progress:
            for name, model in models.items():
                typer.echo(f"saliency: LRP and Grad-CAM of {name} ({len(np.union1d(keep[name], scored))} images)",
                           err=True)
                explained[name] = core.explain_model(model, test, keep[name], scored, cfg.gradcam_threshold,
                                                     cfg.batch_size, device, lambda d, t, n=name: progress(n, d, t))
        scores = ({name: core.summarise_localisation(e.scores) for name, e in explained.items()}
                  if scored.size else {"skipped": "no ground-truth AU labels: the true regions are unknown"})
        rankings, grids = _write_maps(out, test, explained, predictions, reference, cfg)
        by_seed = {study.detail_seed: rankings}
        for seed in [s for s in study.seeds if s != study.detail_seed]:
            typer.echo(f"saliency: AU ranking of seed {seed} (LRP of its contrast images)", err=True)
            by_seed[seed] = _seed_rankings(retrain / f"seed{seed}", source, test, cfg, device)
        across = core.rankings_across_seeds(by_seed, cfg.confidence, cfg.alpha)
        summary = {"reference": reference, "classes": list(EMOTIONS), "regions": test.region_source,
                   "rule": f"mean share of positive LRP relevance in the AU's {test.region_source[:-1]}, reference "
                           "minus model, over the "
                           f"contrast images {'showing the AU' if test.present is not None else '(no AU labels: all)'}"
                           "; Wilcoxon signed-rank, Holm over the AUs",
                   "alpha": cfg.alpha, "pairs": rankings, "seed": study.detail_seed, "seeds": list(study.seeds),
                   "across_seeds_rule": "per seed the AU's mean difference on its contrast images; mean over seeds, "
                                        "t interval and t-test over seeds, Holm within each model over its classes "
                                        "x AUs", "across_seeds": across}
        write_json_atomic(ranking, summary)
        write_json_atomic(metrics, scores)
        figure = _write_localisation(out, explained, scores)
        names = [f"freeze{k}" for k in blocks]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "saliency", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("saliency", Path.cwd(), **links)) as run:
            run.log_dict(summary, "au_ranking.json")
            run.log_dict(scores, "localisation.json")
            for file, grid in grids.items():
                run.log_figure(grid, f"grids/{file}")
            if figure is not None:
                run.log_figure(figure, "localisation.png")
                run.log_metrics({f"{m}_{g}_{k}": v for m, s in scores.items() for g in ("lrp", "gradcam")
                                 for k, v in s[g].items()})
            tracking.write_run_id(run_id, run.run_id)
    for name, s in ({} if figure is None else scores).items():
        typer.echo(f"{name:8} LRP mass acc {s['lrp']['relevance_mass_accuracy']:.3f}  rank acc "
                   f"{s['lrp']['relevance_rank_accuracy']:.3f}  pointing {s['lrp']['pointing_game']:.3f}  "
                   f"Grad-CAM DICE {s['gradcam']['dice']:.3f}  IoU {s['gradcam']['iou']:.3f}")
    for cls in ("contempt", "surprise"):
        first = f"freeze{cfg.compare[0]}"
        top = rankings[first][cls]["ranking"][:3]
        typer.echo(f"{cls} ({reference} vs {first}, {rankings[first][cls]['n_images']} images): top AUs "
                   + ", ".join(f"AU{r['au']} {r['mean_diff']:+.3f} (n {r['n_images']}, Holm p {r['pvalue_holm']:.2g})"
                        for r in top))
