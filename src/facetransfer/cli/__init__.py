"""Command-line interface: `facetransfer <command>`. Each pipeline stage's command lives in its own module under
facetransfer/stages/ (one file per stage); cli/ holds the shared Typer app (app.py) and the launcher commands
(track-init, warm, share)."""

from facetransfer.cli import share, track, warm  # noqa: F401  (each module registers its command)
from facetransfer.cli.app import app
from facetransfer.stages import (  # noqa: F401  (each module registers its command)
    attention_study,
    cka,
    concepts,
    controls,
    forgetting,
    mask,
    necessity,
    prepare,
    report,
    retrain_emotion,
    saliency,
    synth,
    train_control,
    train_emotion,
    train_pain,
    train_trainee,
    trainee_report,
    units,
)


def main() -> None:
    app()
