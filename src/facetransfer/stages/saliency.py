"""Stage `saliency`: where the models look, where they differ, and which AUs the difference points to.

LRP (zennit, z+ conv / z dense) on test images FreezeB5 got right and FreezeBk wrong: maps, difference maps and
figure grids; AU regions ranked by how much more relevance FreezeB5 put there (Wilcoxon, Holm); every model's
LRP and Grad-CAM maps scored against the true AU regions. All of it on the detail seed's models; the ranking
also on every other training seed's, and each AU's difference tested across seeds.

Reads   models/retrain/seed<s>/freeze<k>/{model.pt, test_predictions.csv}, models/emotion/model.pt,
        prepared/affectnet (test images, AU regions)
Writes  OUTPUTS: saliency/au_ranking.json, saliency/maps/<pair>.npz, saliency/grids/<pair>_<class>.png,
        saliency/localisation/{per_image.csv, localisation.png}, metrics/localisation.json
Core    facetransfer.analysis.saliency, facetransfer.explain
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, progress_bars, user_errors
from facetransfer.config import SaliencyConfig, StudyConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import MODEL_FILE, PREDICTIONS_FILE, SOURCE, freeze_name, seed_folder
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("saliency",)
# maps/<reference>_vs_<model>.npz and grids/<reference>_vs_<model>_<class>.png, one per compared model (and class).
OUTPUTS = Outputs({"out": "saliency", "ranking": "saliency/au_ranking.json", "metrics": "metrics/localisation.json"},
                  {"maps": ("out", "maps"), "grids": ("out", "grids"), "localisation": ("out", "localisation"),
                   "per_image": ("out", "localisation/per_image.csv"),
                   "localisation_figure": ("out", "localisation/localisation.png")})


@dataclass
class Pair:
    """The reference vs one model: the AU ranking per class and the contrast images' maps per class."""

    ranking: dict
    arrays: dict  # class -> index, rows, reference / model LRP maps, Grad-CAM maps: (n, H, W) each


@dataclass
class Result:
    summary: dict  # saliency/au_ranking.json
    scores: dict  # metrics/localisation.json: model -> LRP and Grad-CAM scores (or {"skipped": why})
    pairs: dict[str, Pair]  # compared model -> Pair (detail seed)
    grids: dict  # file name -> figure
    explained: dict  # model -> analysis.saliency.Explained (its per-image localisation scores)
    localisation_figure: Any  # None when nothing was scored


def _load(retrain: Path, source: Path, blocks: list[int], rows):
    import pandas as pd

    from facetransfer.training.recipes import EMOTION_HEAD, EMOTION_SOURCE, load_model

    models, predictions = {}, {}
    for k in blocks:
        folder = retrain / freeze_name(k)
        for path in (folder / MODEL_FILE, folder / PREDICTIONS_FILE):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run the retrain-emotion stage for freeze block {k} first)")
        models[freeze_name(k)] = load_model(folder / MODEL_FILE, EMOTION_HEAD)[0]
        table = pd.read_csv(folder / PREDICTIONS_FILE, usecols=["row", "predicted"]).set_index("row")
        predictions[freeze_name(k)] = table.loc[rows, "predicted"].to_numpy()
    if not (source / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{source / MODEL_FILE}: not found (run the train-emotion stage first)")
    return {SOURCE: load_model(source / MODEL_FILE, EMOTION_SOURCE)[0], **models}, predictions


def _seed_rankings(retrain: Path, source: Path, test, cfg, device: str) -> dict:
    """One more training seed's AU rankings (model -> class -> ranking): LRP of its contrast images only."""
    from facetransfer.analysis import saliency as core

    blocks = [cfg.reference, *cfg.compare]
    models, predictions = _load(retrain, source, blocks, test.rows)
    reference = freeze_name(cfg.reference)
    compared = [freeze_name(k) for k in cfg.compare]
    keep = core.contrast_sets(predictions, test.labels, reference, compared, cfg.max_images_per_class)
    lrp = {name: core.contrast_lrp(models[name], test, keep[name], cfg.batch_size, device)
           for name in [reference, *compared]}
    return {name: core.compare_pair(lrp[reference], lrp[name], test, predictions, reference, name,
                                    cfg.max_images_per_class, cfg.min_images)[0] for name in compared}


def _pairs(test, explained: dict, predictions: dict, reference: str, cfg: SaliencyConfig) -> dict[str, Pair]:
    """Per compared model: its AU ranking and contrast maps (LRP and Grad-CAM of the same images)."""
    from facetransfer.analysis import saliency as core

    pairs = {}
    for k in cfg.compare:
        name = freeze_name(k)
        ranking, arrays = core.compare_pair(explained[reference].lrp, explained[name].lrp, test, predictions,
                                            reference, name, cfg.max_images_per_class, cfg.min_images)
        for a in arrays.values():  # Grad-CAM of the same images, for the grids and for reuse
            a["gradcam_reference"] = explained[reference].gradcam[a["index"]]
            a["gradcam_model"] = explained[name].gradcam[a["index"]]
        pairs[name] = Pair(ranking, arrays)
    return pairs


def _grids(test, pairs: dict[str, Pair], reference: str, cfg: SaliencyConfig) -> dict:
    """A figure grid per model pair and class: input | reference | model | difference, Grad-CAM beside."""
    from facetransfer.explain import normalise_maps
    from facetransfer.report.figures import saliency_grid, signed_difference

    grids = {}
    for name, pair in pairs.items():
        for cls, a in pair.arrays.items():
            n = min(cfg.grid_images, a["index"].size)
            grids[f"{reference}_vs_{name}_{cls}.png"] = saliency_grid(
                test.images[a["index"][:n]], normalise_maps(a["reference"][:n]), normalise_maps(a["model"][:n]),
                signed_difference(a["reference"][:n], a["model"][:n]), (reference, name),
                f"{cls}: right by {reference}, wrong by {name} ({a['index'].size} images)",
                gradcam=(a["gradcam_reference"][:n], a["gradcam_model"][:n]))
    return grids


def run(cfg: SaliencyConfig, study: StudyConfig, retrain: Path, source: Path, test, device: str) -> Result:
    """LRP and Grad-CAM of the detail seed's models, the AU ranking of every seed, the localisation scores."""
    import numpy as np

    from facetransfer.analysis import saliency as core
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.report.figures import localisation_bars

    blocks = [cfg.reference, *cfg.compare]
    models, predictions = _load(retrain / seed_folder(study.detail_seed), source, blocks, test.rows)
    reference = freeze_name(cfg.reference)
    keep = core.contrast_sets(predictions, test.labels, reference, [freeze_name(k) for k in cfg.compare],
                              cfg.max_images_per_class)
    keep[SOURCE] = np.array([], np.int64)  # the source model is only scored
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
    pairs = _pairs(test, explained, predictions, reference, cfg)
    grids = _grids(test, pairs, reference, cfg)
    by_seed = {study.detail_seed: {name: pair.ranking for name, pair in pairs.items()}}
    for seed in [s for s in study.seeds if s != study.detail_seed]:
        typer.echo(f"saliency: AU ranking of seed {seed} (LRP of its contrast images)", err=True)
        by_seed[seed] = _seed_rankings(retrain / seed_folder(seed), source, test, cfg, device)
    across = core.rankings_across_seeds(by_seed, cfg.confidence, cfg.alpha)
    summary = {"reference": reference, "classes": list(EMOTIONS), "regions": test.region_source,
               "rule": f"mean share of positive LRP relevance in the AU's {test.region_source[:-1]}, reference "
                       "minus model, over the "
                       f"contrast images {'showing the AU' if test.present is not None else '(no AU labels: all)'}"
                       "; Wilcoxon signed-rank, Holm over the AUs",
               "alpha": cfg.alpha, "pairs": by_seed[study.detail_seed], "seed": study.detail_seed,
               "seeds": list(study.seeds),
               "across_seeds_rule": "per seed the AU's mean difference on its contrast images; mean over seeds, "
                                    "t interval and t-test over seeds, Holm within each model over its classes "
                                    "x AUs", "across_seeds": across}
    figure = None if "skipped" in scores else localisation_bars(scores)
    return Result(summary, scores, pairs, grids, explained, figure)


def write(result: Result, out: Path, ranking: Path, metrics: Path) -> None:
    """maps/ (an npz per model pair), grids/ (PNG per pair and class), localisation/, the ranking and scores."""
    import numpy as np
    import pandas as pd

    reference = result.summary["reference"]
    with atomic_dir(OUTPUTS.file("maps", out)) as tmp:
        for name, pair in result.pairs.items():
            np.savez_compressed(tmp / f"{reference}_vs_{name}.npz",
                                **{f"{cls}_{key}": value for cls, a in pair.arrays.items() for key, value in a.items()})
    with atomic_dir(OUTPUTS.file("grids", out)) as tmp:
        for file, figure in result.grids.items():
            figure.savefig(tmp / file, dpi=90)
    write_json_atomic(ranking, result.summary)
    write_json_atomic(metrics, result.scores)
    with atomic_dir(OUTPUTS.file("localisation", out)) as tmp:
        tables = [e.scores.assign(model=name) for name, e in result.explained.items()]
        pd.concat(tables, ignore_index=True).to_csv(tmp / Path(OUTPUTS.name("per_image")).name, index=False,
                                                    float_format="%.6g")
        if result.localisation_figure is not None:
            result.localisation_figure.savefig(tmp / Path(OUTPUTS.name("localisation_figure")).name, dpi=90)


def _log(result: Result, cfg: SaliencyConfig, source_runs: Path | None, run_id: Path) -> None:
    names = [freeze_name(k) for k in [cfg.reference, *cfg.compare]]
    links = tracking.source_run_tags(source_runs, names) if source_runs else {}
    with tracking.start_run("facetransfer", "saliency", params=cfg.model_dump(mode="json"),
                            tags=tracking.run_tags("saliency", Path.cwd(), **links)) as logged:
        logged.log_dict(result.summary, "au_ranking.json")
        logged.log_dict(result.scores, "localisation.json")
        for file, grid in result.grids.items():
            logged.log_figure(grid, f"grids/{file}")
        if result.localisation_figure is not None:
            logged.log_figure(result.localisation_figure, "localisation.png")
            logged.log_metrics({f"{m}_{g}_{k}": v for m, s in result.scores.items() for g in ("lrp", "gradcam")
                                for k, v in s[g].items()})
        tracking.write_run_id(run_id, logged.run_id)


@app.command()
def saliency(
    retrain: Annotated[Path, typer.Option(help="Folder with seed{s}/freeze{k}/model.pt and test_predictions.csv "
                                               "(retrained heads).")],
    source: Annotated[Path, typer.Option(help="Folder with the emotion source model.pt (scored for localisation "
                                              "too).")],
    data: Annotated[Path, typer.Option(help="Prepared AffectNet(-like) folder: test.csv, images.npy, masks.npy.")],
    out: Annotated[Path, typer.Option(help="Folder for maps/ (npz per model pair) and grids/ (PNG per pair and "
                                           "class).")],
    ranking: Annotated[Path, typer.Option(help="saliency/au_ranking.json: AUs ranked per class and model pair.")],
    metrics: Annotated[Path, typer.Option(help="metrics/localisation.json: localisation scores per model.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the retrained heads' freeze{k}.json run ids, "
                                                          "to link the MLflow run.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """LRP (zennit, z+ conv / z dense) on test images FreezeB5 got right and FreezeBk wrong: maps, difference maps and
    figure grids; AU regions ranked by how much more relevance FreezeB5 put there (Wilcoxon, Holm); every model's
    LRP and Grad-CAM maps scored against the true AU regions. All of it on the detail seed's models; the ranking
    also on every other training seed's, and each AU's difference tested across seeds."""
    from facetransfer.analysis.saliency import load_test_images
    from facetransfer.training.loop import resolve_device

    with user_errors():
        check_outputs(folders=[out], files=[ranking, metrics, run_id])  # before any work
        cfg, study = load_section(params, "saliency"), load_section(params, "study")
        device = str(resolve_device(cfg.device))
        test = load_test_images(data, require_labels=False)
        typer.echo(f"saliency: where each AU is comes from the {test.region_source}", err=True)
        if test.present is None:
            typer.echo(f"saliency: {data / 'test.csv'} has no ground-truth AU columns (real data): every AU is "
                       "ranked on every contrast image, localisation is skipped", err=True)
        result = run(cfg, study, retrain, source, test, device)
        write(result, out, ranking, metrics)
        _log(result, cfg, source_runs, run_id)
    _echo(result, cfg)


def _echo(result: Result, cfg: SaliencyConfig) -> None:
    scores, reference = result.scores, result.summary["reference"]
    for name, s in ({} if result.localisation_figure is None else scores).items():
        typer.echo(f"{name:8} LRP mass acc {s['lrp']['relevance_mass_accuracy']:.3f}  rank acc "
                   f"{s['lrp']['relevance_rank_accuracy']:.3f}  pointing {s['lrp']['pointing_game']:.3f}  "
                   f"Grad-CAM DICE {s['gradcam']['dice']:.3f}  IoU {s['gradcam']['iou']:.3f}")
    first = freeze_name(cfg.compare[0])
    for cls in ("contempt", "surprise"):
        top = result.pairs[first].ranking[cls]["ranking"][:3]
        typer.echo(f"{cls} ({reference} vs {first}, {result.pairs[first].ranking[cls]['n_images']} images): top AUs "
                   + ", ".join(f"AU{r['au']} {r['mean_diff']:+.3f} (n {r['n_images']}, Holm p {r['pvalue_holm']:.2g})"
                               for r in top))
