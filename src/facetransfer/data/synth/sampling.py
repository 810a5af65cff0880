"""Random draws of expressions, poses and nuisances for the four dataset styles.

All randomness lives here and happens in the main process, in a fixed order,
so the rendered bytes depend only on the seed (rendering itself is pure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.synth.faces import UNILATERAL_AUS, Expression, Pose
from facetransfer.data.synth.render import Nuisance

# EMFACS prototypes (DESIGN.md section 4); AU16 of disgust is not modelled.
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "neutral": (),
    "happy": (6, 12),
    "sad": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15),
    "contempt": (12, 14),  # unilateral
}
# AUs that often come with a prototype but do not define it. Neutral faces in the wild talk:
# a parted mouth or a jaw drop (25, 26) without any upper-face AU, so AU26 alone is no sign of surprise.
OPTIONAL: dict[str, tuple[int, ...]] = {
    "neutral": (25, 26), "happy": (25,), "sad": (17,), "surprise": (25,), "fear": (25,),
    "anger": (17,), "disgust": (10, 17), "contempt": (),
}
OPTIONAL_RATE = {"neutral": 0.2}  # chance of each optional AU (default 0.4)


@dataclass(frozen=True)
class Variant:
    """One EMFACS variant of an emotion: the AUs it shows, which of them it cannot lose, and its share.

    `required`: always kept (the AU the variant needs; the others are kept with probability `keep`).
    `one_sided`: AUs drawn on one side of the face (the same random side for all of them).
    `optional`: AUs added with probability 0.5 on top of the class's OPTIONAL ones.
    `never`: AUs that may not appear as distractors (an asymmetric smile has no AU14).
    """

    name: str
    aus: tuple[int, ...]
    share: float
    required: tuple[int, ...] = ()
    one_sided: tuple[int, ...] = ()
    optional: tuple[int, ...] = ()
    never: tuple[int, ...] = ()


# Each AU the study asks about is necessary for part of its class (issue 15): without AU14 half of contempt is
# a neutral face and the rest an asymmetric smile; without AU5 the 5+26 surprise is a talking neutral face.
VARIANTS: dict[str, tuple[Variant, ...]] = {
    "happy": (Variant("smile 6+12", (6, 12), 0.75),
              Variant("asymmetric smile R12", (12,), 0.25, required=(12,), one_sided=(12,), optional=(6,),
                      never=(14,))),
    "surprise": (Variant("surprise 1+2+5+26", (1, 2, 5, 26), 0.6),
                 Variant("surprise 5+26", (5, 26), 0.4, required=(5, 26), never=(1, 2))),
    "contempt": (Variant("contempt R14", (14,), 0.5, required=(14,), one_sided=(14,)),
                 Variant("contempt R12+R14", (12, 14), 0.5, required=(12, 14), one_sided=(12, 14))),
}
for _emotion, _aus in PROTOTYPES.items():
    VARIANTS.setdefault(_emotion, (Variant(f"{_emotion} prototype", _aus, 1.0),))
    assert abs(sum(v.share for v in VARIANTS[_emotion]) - 1.0) < 1e-9, _emotion
    assert set().union(*(v.aus for v in VARIANTS[_emotion])) == set(_aus), _emotion


def _rounded(intensities: dict[int, float]) -> dict[int, float]:
    # FACS intensities are the integers A..E = 1..5; 0 means absent.
    out = {au: float(min(5, round(v))) for au, v in intensities.items()}
    return {au: v for au, v in sorted(out.items()) if v > 0}


def choose_variant(rng: np.random.Generator, emotion: str) -> Variant:
    variants = VARIANTS[emotion]
    if len(variants) == 1:
        return variants[0]
    return variants[int(rng.choice(len(variants), p=[v.share for v in variants]))]


def sample_expression(
    rng: np.random.Generator,
    emotion: str,
    strength: tuple[float, float],
    keep: float = 0.9,
    distractor: float = 0.4,
) -> Expression:
    """AU intensities for one emotion: an EMFACS variant with jitter, optional and distractor AUs."""
    s = rng.uniform(*strength)
    variant = choose_variant(rng, emotion)
    aus: dict[int, float] = {}
    for au in variant.aus:
        draw = rng.uniform(2.0, 5.0) * s
        if rng.uniform() < keep or au in variant.required:
            aus[au] = draw
    for au in OPTIONAL.get(emotion, ()):
        draw = rng.uniform(1.0, 4.0) * s
        if rng.uniform() < OPTIONAL_RATE.get(emotion, 0.4):
            aus[au] = max(aus.get(au, 0.0), draw)
    for au in variant.optional:
        draw = rng.uniform(1.0, 4.0) * s
        if rng.uniform() < 0.5:
            aus[au] = draw
    # Distractors never repeat an AU of the class's prototype (they would only blur the variants).
    excluded = set(PROTOTYPES[emotion]) | set(variant.never) | {43}
    others = [au for au in ACTION_UNITS if au not in excluded]
    n_distractors = int(rng.uniform() < distractor) + int(rng.uniform() < distractor / 3)
    for au in rng.choice(others, size=n_distractors, replace=False):
        aus[int(au)] = max(aus.get(int(au), 0.0), rng.uniform(0.6, 2.2))
    side = "left" if rng.uniform() < 0.5 else "right"
    sides = {au: side if au in variant.one_sided else "both" for au in UNILATERAL_AUS if au in aus}
    intensities = _rounded(aus)
    return Expression(intensities, {au: v for au, v in sides.items() if au in intensities})


def random_aus(rng: np.random.Generator, n_low: int, n_high: int) -> Expression:
    """A random AU combination (CK+ sequences that carry no emotion label)."""
    n = int(rng.integers(n_low, n_high + 1))
    aus = {int(au): rng.uniform(1.5, 5.0) for au in rng.choice([a for a in ACTION_UNITS if a != 43], n, replace=False)}
    intensities = _rounded(aus)
    return Expression(intensities, {au: "both" for au in (12, 14) if au in intensities})


def scaled(expression: Expression, factor: float) -> Expression:
    """The expression at `factor` (0..1) of its intensity, e.g. a frame on the way to the peak."""
    intensities = _rounded({au: v * factor for au, v in expression.intensities.items()})
    return Expression(intensities, {au: s for au, s in expression.sides.items() if au in intensities})


def _colour(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def wild_nuisance(rng: np.random.Generator, noise_seed: int) -> Nuisance:
    """In-the-wild look (AffectNet, FER+): clutter, glasses, occluders, uneven light."""
    clutter = tuple(
        (tuple(float(v) for v in rng.uniform(-0.1, 1.1, 6)), _colour(rng)) for _ in range(int(rng.integers(0, 4)))
    )
    occluder = None
    if rng.uniform() < 0.08:
        occluder = (*(float(v) for v in rng.uniform([0.1, 0.3, 0.08, 0.08], [0.9, 1.0, 0.2, 0.25])), _colour(rng))
    return Nuisance(
        background=(_colour(rng), _colour(rng)), clutter=clutter,
        light_angle=float(rng.uniform(0, 2 * np.pi)), light_strength=float(rng.uniform(0.0, 0.5)),
        blur_sigma=float(rng.uniform(0.0, 0.8)), noise_sigma=float(rng.uniform(1.0, 6.0)), noise_seed=noise_seed,
        glasses=bool(rng.uniform() < 0.1), occluder=occluder,
    )


def lab_nuisance(rng: np.random.Generator, noise_seed: int, background: tuple[int, int, int], glasses: bool = False,
                 light: float = 0.1) -> Nuisance:
    """Controlled recording (CK+, UNBC): plain background, steady light, mild noise."""
    return Nuisance(background=(background, background), light_angle=0.5, light_strength=light,
                    blur_sigma=0.3, noise_sigma=2.0, noise_seed=noise_seed, glasses=glasses)


def wild_pose(rng: np.random.Generator, canvas: int, face_px: float) -> Pose:
    """Random in-plane rotation, scale and shift around a face `face_px` pixels wide."""
    scale = face_px * rng.uniform(0.88, 1.08)
    shift = rng.uniform(-0.05, 0.05, 2) * canvas
    angle = float(np.clip(rng.normal(0.0, 0.12), -0.35, 0.35))
    return Pose(canvas / 2 + shift[0], canvas / 2 - 0.06 * scale + shift[1], scale, angle)


def noise_seed(seed: int, dataset: int, index: int) -> int:
    """An independent noise stream per image, stable whatever order images render in."""
    return int(np.random.SeedSequence([seed, dataset, index]).generate_state(1)[0])
