"""Where the pipeline's time went: per DVC stage and per phase, from the MLflow runs of one `dvc repro`.

Not a test, and no guess: every number is read off the runs the stages
logged while they ran (start and end times, and the `epoch_seconds` each
training run logs per epoch). Run it after a `dvc repro` in the same tree:

    .venv/bin/python bench/pipeline_profile.py                 # the latest repro in ./mlflow.db
    .venv/bin/python bench/pipeline_profile.py --since "2026-11-30 03:50" --end "2026-11-30 06:05"

A stage's time is split into phases:
  before   from the previous run's end to this run's start: DVC hashing and
           caching the previous outputs, this process starting, reading its
           data, and, for the analysis stages that open their run only to
           log what they computed (forgetting, necessity, saliency, concepts,
           units, controls), their whole computation
  epochs   the training epochs (sum of epoch_seconds; validation included)
  in run   the rest of its MLflow run: model set-up, feature caching, test
           predictions, figures, artifact logging
Stages that log no run (prepare; control-data, which renders and prepares the
control datasets) count in the next stage's "before". Finer phases (LRP vs
probes vs feature extraction) are not logged yet. With --since, the time
before the first run has its own row; with --end, the time after the last run
goes to the last stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import OrderedDict
from itertools import pairwise

import pandas as pd

from facetransfer import tracking

PHASES = ["before", "epochs", "in run"]
FIRST_STAGE = "train-emotion"  # the run that opens every full repro (after prepare, which logs none)


def _ms(text: str | None) -> int | None:
    return None if text is None else int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def stage_of(run_name: str) -> str:
    """'facetransfer train-pain/FreezeB0' -> 'train-pain'; 'attention-study/scratch/se/fold3' -> 'attention-study'."""
    return run_name.split(" ", 1)[-1].split("/", 1)[0]


def latest_repro_start(runs: list[dict]) -> int:
    starts = [r["start_ms"] for r in runs if stage_of(r["name"]) == FIRST_STAGE]
    if not starts:
        raise SystemExit(f"no `{FIRST_STAGE}` run in the store: pass --since")
    return max(starts)


def profile(runs: list[dict], since_ms: int, end_ms: int | None) -> pd.DataFrame:
    """One row per stage, in the order the stages ran: minutes per phase."""
    # Nested runs (train-trainee's one per variant) lie inside their parent's run: the parent counts.
    runs = sorted((r for r in runs if r["start_ms"] >= since_ms and (end_ms is None or r["start_ms"] <= end_ms)
                   and not r.get("parent")), key=lambda r: r["start_ms"])
    rows: OrderedDict[str, dict] = OrderedDict()
    for previous, run in pairwise([None, *runs]):  # each run with the one before it (None for the first)
        row = rows.setdefault(stage_of(run["name"]), {"runs": 0, "before": 0.0, "epochs": 0.0, "in run": 0.0})
        row["runs"] += 1
        if previous is not None:
            row["before"] += max(0.0, (run["start_ms"] - previous["end_ms"]) / 1000)
        row["epochs"] += run["epoch_seconds"]
        row["in run"] += (run["end_ms"] - run["start_ms"]) / 1000 - run["epoch_seconds"]
    if runs and end_ms is not None:
        row["in run"] += max(0.0, (end_ms - runs[-1]["end_ms"]) / 1000)
    if runs and runs[0]["start_ms"] > since_ms:  # --since before the first run: prepare and what else logs none
        rows = OrderedDict([("before the first run (prepare)", {"runs": 0, "epochs": 0.0, "in run": 0.0,
                                                                 "before": (runs[0]["start_ms"] - since_ms) / 1000}),
                            *rows.items()])
    table = pd.DataFrame.from_dict(rows, orient="index")[["runs", *PHASES]]
    table[PHASES] /= 60
    table["total"] = table[PHASES].sum(axis=1)
    table["share %"] = 100 * table["total"] / table["total"].sum()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default=None, help="default: this tree's mlflow.db ($MLFLOW_TRACKING_URI)")
    parser.add_argument("--since", default=None, help="UTC 'YYYY-MM-DD HH:MM[:SS]' the repro started (default: "
                                                      f"the latest {FIRST_STAGE} run's start)")
    parser.add_argument("--end", default=None, help="UTC time the repro ended (default: the last run's end)")
    args = parser.parse_args()

    runs = tracking.run_timings(args.tracking_uri)
    since_ms = _ms(args.since) if args.since else latest_repro_start(runs)
    table = profile(runs, since_ms, _ms(args.end))
    table["runs"] = table["runs"].astype(int)
    total = table[PHASES + ["total"]].sum()
    print(f"minutes per stage and phase, {len(runs)} runs in the store, "
          f"from {dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(table.to_markdown(floatfmt=(".0f", ".0f", ".1f", ".1f", ".1f", ".1f", ".0f")))
    print(f"\ntotal {total['total']:.1f} min: before runs {total['before']:.1f}, epochs {total['epochs']:.1f}, "
          f"rest of runs {total['in run']:.1f}")


if __name__ == "__main__":
    main()
