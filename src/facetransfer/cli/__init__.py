"""Command-line interface: `facetransfer <stage>`, one small module per stage."""

from facetransfer.cli import (  # noqa: F401  (each module registers its command)
    attention,
    cka,
    concepts,
    control_training,
    controls,
    forgetting,
    mask,
    necessity,
    prepare,
    report,
    saliency,
    synth,
    train,
    trainee,
    units,
    warm,
)
from facetransfer.cli.app import app


def main() -> None:
    app()
