"""Command-line interface: `facetransfer <stage>`, one small module per stage."""

from facetransfer.cli import attention, concepts, forgetting, mask, prepare, report, saliency, synth, train, trainee, units  # noqa: F401  (each module registers its command)
from facetransfer.cli.app import app


def main() -> None:
    app()
