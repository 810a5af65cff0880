"""Stage `trainee-report`: did relevance-based masking speed learning, across training seeds?

Per variant the mean and SD over `study.seeds` of final F1, area under the F1 curve and steps to the target F1,
each masked variant's paired difference from plain with a t-test over seeds (Holm per variant); the mean curves
(Schiller et al. 2020, Fig. 10); as detail, the detail seed's confusion matrices of the best masked variant and
plain with McNemar.

Reads   metrics/trainee/seed<s>/<variant>.json, plots/trainee/seed<s>/<variant>/{history.csv, confusion.csv}
        (train-trainee, every seed)
Writes  OUTPUTS: reports/trainee/{summary.csv/.md, by_seed.csv, curves.png, confusion.png},
        metrics/trainee_summary.json
Core    facetransfer.analysis.trainee
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import StudyConfig, TraineeConfig, load_section
from facetransfer.fsutil import atomic_dir, check_outputs, write_json_atomic
from facetransfer.names import seed_folder
from facetransfer.stages import train_trainee
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("trainee-report",)
OUTPUTS = Outputs({"out": "reports/trainee", "metrics": "metrics/trainee_summary.json"},
                  {"summary": ("out", "summary.csv"), "summary_md": ("out", "summary.md"),
                   "by_seed": ("out", "by_seed.csv"), "curves": ("out", "curves.png"),
                   "confusion": ("out", "confusion.png")})


@dataclass
class Result:
    summary: dict  # metrics/trainee_summary.json
    readable: Any  # DataFrame: the across-seed table for people, one row per variant
    by_seed: Any  # DataFrame: every seed's numbers
    curves_figure: Any
    confusion_figure: Any


def _finite_or_none(value):
    """JSON has no NaN / inf: a variant that never reached the target gets null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _trainee_outputs(summaries: Path, curves: Path, names: list[str], seed: int):
    """One seed's curve summaries, histories and validation predictions, from `<folder>/seed<seed>/`."""
    import pandas as pd

    loaded, histories, predictions = {}, {}, {}
    for name in names:
        summary_path = train_trainee.OUTPUTS.file("summary", summaries / seed_folder(seed), variant=name)
        history_path, confusion_path = (train_trainee.OUTPUTS.file(key, curves / seed_folder(seed), variant=name)
                                        for key in ("history", "confusion"))
        for path in (summary_path, history_path, confusion_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (run `facetransfer train-trainee --seed {seed} "
                                        f"--variant {name}` first, or check study.seeds)")
        loaded[name] = json.loads(summary_path.read_text())
        histories[name] = pd.read_csv(history_path)
        predictions[name] = pd.read_csv(confusion_path)
    return loaded, histories, predictions


def _mean_curves(histories_by_seed: dict[int, dict]):
    """variant -> per-step mean and SD over seeds of the validation F1 and loss (every seed takes the same steps)."""
    import pandas as pd

    out = {}
    for name in next(iter(histories_by_seed.values())):
        stacked = pd.concat([h[name][["epoch", "step", "val_macro_f1", "val_loss"]]
                             for h in histories_by_seed.values()])
        grouped = stacked.groupby(["epoch", "step"])
        out[name] = grouped.mean().join(grouped.std(ddof=1).fillna(0.0).add_suffix("_sd")).reset_index()
    return out


def _across_seeds_table(table: dict[str, dict]):
    """The across-seed verdict table for people: one row per variant."""
    import pandas as pd

    def spread(cell: dict, digits: int = 3) -> str:
        if cell["mean"] is None:
            return "never"
        return f"{cell['mean']:.{digits}f}" + (f" ± {cell['sd']:.{digits}f}" if cell["sd"] is not None else "")

    def gain(cell: dict | None) -> str:
        if cell is None:
            return ""
        if cell["ci_low"] is None:
            return f"{cell['mean_diff']:+.3f}"
        return (f"{cell['mean_diff']:+.3f} [{cell['ci_low']:+.3f}, {cell['ci_high']:+.3f}] "
                f"p_holm {cell['pvalue_holm']:.2g}")

    rows = []
    for name, row in table.items():
        steps = row["steps_to_target"]
        rows.append({"variant": name, "final F1 (mean ± SD)": spread(row["final_f1"]),
                     "AUC (mean ± SD)": spread(row["auc"]),
                     "steps to target": f"{spread(steps, 0)} ({steps['n']}/{row['n_seeds']} seeds)",
                     "final F1 - plain": gain(row.get("vs_plain", {}).get("final_f1")),
                     "AUC - plain": gain(row.get("vs_plain", {}).get("auc"))})
    return pd.DataFrame(rows).set_index("variant")


def run(cfg: TraineeConfig, study: StudyConfig, outputs: dict, curves: Path) -> Result:
    """`outputs`: seed -> (variant summaries, histories, validation predictions) as _trainee_outputs reads them."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    from facetransfer.analysis import trainee as core
    from facetransfer.data.labels import EMOTIONS
    from facetransfer.report.figures import confusion_pair, learning_curves

    by_seed = {s: core.summary_table(outputs[s][0]) for s in study.seeds}
    table = core.across_seeds(by_seed)
    verdict = core.verdict_across_seeds(table)
    best, predictions = verdict["best_masked"], outputs[study.detail_seed][2]
    actual = predictions[core.BASELINE]["actual"].to_numpy()
    if not np.array_equal(actual, predictions[best]["actual"].to_numpy()):
        raise ValueError(f"{curves}: {best} and {core.BASELINE} were validated on different images (rerun both)")
    mcnemar = core.compare_predictions(actual, predictions[core.BASELINE]["predicted"].to_numpy(),
                                       predictions[best]["predicted"].to_numpy()) | {"seed": study.detail_seed}
    matrices = {name: confusion_matrix(predictions[name]["actual"], predictions[name]["predicted"],
                                       labels=list(EMOTIONS)) for name in (core.BASELINE, best)}
    curves_figure = learning_curves(_mean_curves({s: outputs[s][1] for s in study.seeds}), cfg.target_f1,
                                    n_seeds=len(study.seeds), architecture=cfg.model.title)
    summary = {"trainee": cfg.model.title, "seeds": list(study.seeds), "detail_seed": study.detail_seed,
               "across_seeds": table, "verdict": verdict,
               "by_seed": {str(s): {name: {k: _finite_or_none(float(v)) for k, v in row.items()}
                                    for name, row in t.iterrows()} for s, t in by_seed.items()},
               "mcnemar_best_vs_plain": mcnemar}
    return Result(summary, _across_seeds_table(table), pd.concat(dict(by_seed.items()), names=["seed"]),
                  curves_figure, confusion_pair(matrices, list(EMOTIONS)))


def write(result: Result, out: Path, metrics: Path) -> None:
    with atomic_dir(out) as tmp:
        result.readable.to_csv(tmp / OUTPUTS.name("summary"))
        (tmp / OUTPUTS.name("summary_md")).write_text(result.readable.to_markdown() + "\n")
        result.by_seed.to_csv(tmp / OUTPUTS.name("by_seed"))
        result.curves_figure.savefig(tmp / OUTPUTS.name("curves"), dpi=120)
        result.confusion_figure.savefig(tmp / OUTPUTS.name("confusion"), dpi=120)
    write_json_atomic(metrics, result.summary)


@app.command("trainee-report")
def trainee_report(
    summaries: Annotated[Path, typer.Option(help="Folder with seed<s>/<variant>.json curve summaries (train-trainee, "
                                                 "one per seed).")],
    curves: Annotated[Path, typer.Option(help="Folder with seed<s>/<variant>/history.csv and confusion.csv.")],
    out: Annotated[Path, typer.Option(help="Folder for summary.csv / .md (across seeds), by_seed.csv, curves.png "
                                           "(Fig. 10, mean over seeds) and confusion.png.")],
    metrics: Annotated[Path, typer.Option(help="JSON: the across-seed table and verdict, each seed's numbers, McNemar "
                                               "best masked vs plain.")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    source_runs: Annotated[Path | None, typer.Option(help="Folder with the trainee runs' seed<s>/<variant>.json run "
                                                          "ids, to link the MLflow run to them.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Did relevance-based masking speed learning, across training seeds? Per variant the mean and SD over
    `study.seeds` of final F1, area under the F1 curve and steps to the target F1, each masked variant's paired
    difference from plain with a t-test over seeds (Holm per variant); the mean curves (Schiller et al. 2020,
    Fig. 10); as detail, the detail seed's confusion matrices of the best masked variant and plain with McNemar."""
    with user_errors():
        check_outputs(folders=[out], files=[metrics, run_id])  # before any work
        cfg, study = load_section(params, "trainee"), load_section(params, "study")
        outputs = {s: _trainee_outputs(summaries, curves, list(cfg.variants), s) for s in study.seeds}
        result = run(cfg, study, outputs, curves)
        write(result, out, metrics)
        names = [f"{seed_folder(s)}/{name}" for s in study.seeds for name in cfg.variants]
        links = tracking.source_run_tags(source_runs, names) if source_runs else {}
        with tracking.start_run("facetransfer", "trainee-report", params=cfg.model_dump(mode="json"),
                                tags=tracking.run_tags("trainee_report", Path.cwd(), **links)) as logged:
            logged.log_table(result.readable.reset_index(), "trainee_summary.json")
            logged.log_figure(result.curves_figure, "learning_curves.png")
            logged.log_figure(result.confusion_figure, "confusion.png")
            logged.log_dict(result.summary, "trainee.json")
            logged.log_metrics({f"auc_{name}": row["auc"]["mean"]
                                for name, row in result.summary["across_seeds"].items()})
            tracking.write_run_id(run_id, logged.run_id)
    typer.echo(result.readable.to_string())
    verdict, mcnemar = result.summary["verdict"], result.summary["mcnemar_best_vs_plain"]
    holds = {True: "yes", False: "no", None: "untested (one seed)"}[verdict["masking_sped_learning"]]
    typer.echo(f"best masked variant {verdict['best_masked']}: mean AUC {verdict['auc_best']:.3f} vs plain "
               f"{verdict['auc_baseline']:.3f} over {len(study.seeds)} seeds (masking sped learning, across seeds: "
               f"{holds}); McNemar on seed {study.detail_seed}'s validation p {mcnemar['pvalue']:.2g} "
               f"({mcnemar['method']})")
