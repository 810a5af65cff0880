"""Where the pipeline's time went: per DVC stage and per phase, from the MLflow runs of one `dvc repro`.

Not a test, and no guess: every number is read off the runs the stages
logged while they ran (start and end times, and the `epoch_seconds` each
training run logs per epoch). Run it after a `dvc repro` in the same tree:

    .venv/bin/python bench/pipeline_profile.py                 # the latest repro in ./mlflow.db
    .venv/bin/python bench/pipeline_profile.py --since "2026-11-30 03:50" --end "2026-11-30 06:05"

A stage's time is split into phases:
  epochs   the training epochs (sum of epoch_seconds; validation included)
  in run   the rest of its MLflow run: model set-up, feature caching, test
           predictions, LRP, probes, tests, figures, artifact logging
  outside  from its run's end to the next stage's start: writing outputs,
           DVC hashing and caching, the next process starting and reading
           its data before it opens its run. The analysis stages (forgetting,
           necessity, saliency, concepts, units, controls) open their run only
           to log what they computed, so their work shows here. Finer phases
           (LRP vs probes vs feature extraction) are not logged yet.
Stages that open no run (prepare; synth outside dvc) fall in the "before the
first run" row when --since is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import OrderedDict

import pandas as pd

from facetransfer import tracking

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
    runs = sorted((r for r in runs if r["start_ms"] >= since_ms and (end_ms is None or r["start_ms"] <= end_ms)),
                  key=lambda r: r["start_ms"])
    rows: OrderedDict[str, dict] = OrderedDict()
    for run, following in zip(runs, runs[1:] + [None]):
        row = rows.setdefault(stage_of(run["name"]), {"runs": 0, "epochs": 0.0, "in run": 0.0, "outside": 0.0})
        in_run = (run["end_ms"] - run["start_ms"]) / 1000
        row["runs"] += 1
        row["epochs"] += run["epoch_seconds"]
        row["in run"] += in_run - run["epoch_seconds"]
        if following is not None:
            row["outside"] += max(0.0, (following["start_ms"] - run["end_ms"]) / 1000)
        elif end_ms is not None:
            row["outside"] += max(0.0, (end_ms - run["end_ms"]) / 1000)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table[["epochs", "in run", "outside"]] /= 60
    table["total"] = table[["epochs", "in run", "outside"]].sum(axis=1)
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
    first_run = latest_repro_start(runs)
    since_ms = _ms(args.since) if args.since else first_run
    table = profile(runs, since_ms, _ms(args.end))
    if args.since:
        first = min(r["start_ms"] for r in runs if r["start_ms"] >= since_ms)
        before = pd.DataFrame({"runs": [0], "epochs": [0.0], "in run": [0.0], "outside": [(first - since_ms) / 60000]},
                              index=["before the first run (prepare)"])
        before["total"] = before["outside"]
        table = pd.concat([before, table])
        table["share %"] = 100 * table["total"] / table["total"].sum()
    table["runs"] = table["runs"].astype(int)
    total = table[["epochs", "in run", "outside", "total"]].sum()
    print(f"minutes per stage and phase, {len(runs)} runs in the store, "
          f"from {dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(table.to_markdown(floatfmt=(".0f", ".0f", ".1f", ".1f", ".1f", ".1f", ".0f")))
    print(f"\ntotal {total['total']:.1f} min: epochs {total['epochs']:.1f}, in run {total['in run']:.1f}, "
          f"outside runs {total['outside']:.1f}")


if __name__ == "__main__":
    main()
