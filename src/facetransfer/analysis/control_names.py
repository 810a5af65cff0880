"""The planted-forgetting controls' names, apart from their analysis so that light stages (cka) can list them."""

from __future__ import annotations

from dataclasses import dataclass

from facetransfer.names import CONTROLS_REFERENCE

REFERENCE = CONTROLS_REFERENCE  # the source model, the controls' reference
NEGATIVE = "negative"


def control_name(au: int) -> str:
    return f"suppress_au{au}"


def negative_name(seed: int) -> str:
    """A further negative control (controls.extra_negative_seeds)."""
    return f"{NEGATIVE}_seed{seed}"


def positive_seed_name(au: int, seed: int) -> str:
    """A further fine-tuning of a positive control (controls.extra_positive_seeds)."""
    return f"{control_name(au)}_seed{seed}"


@dataclass(frozen=True)
class Control:
    """One control model: its name, the AU planted as forgotten and the class that needs it (None: negative)."""

    name: str
    au: int | None = None
    dependent: str | None = None


def planned(cfg) -> list[Control]:
    """The control models of a `controls` section, in order: positives (one per suppressed AU), then negatives."""
    positives = [Control(control_name(au), au, cfg.dependent_class[au]) for au in cfg.suppress_aus]
    return positives + [Control(NEGATIVE)] + [Control(negative_name(seed)) for seed in cfg.extra_negative_seeds]


def replicates(cfg) -> dict[str, list[str]]:
    """positive control -> its models over the fine-tuning seeds (the detail model first), and NEGATIVE -> the
    negative controls: the groups `recall_dropped_across_seeds` compares."""
    out = {control_name(au): [control_name(au)] + [positive_seed_name(au, s) for s in cfg.extra_positive_seeds]
           for au in cfg.suppress_aus}
    return out | {NEGATIVE: [NEGATIVE] + [negative_name(seed) for seed in cfg.extra_negative_seeds]}
