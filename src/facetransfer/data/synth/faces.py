"""The face model of the synthetic benchmark: 68 landmarks, identities, action units.

Coordinates are "face units": origin between the eyes, x to the image right,
y down, jaw width (landmark 0 to 16) about 1.0. Landmarks follow the iBUG-68
order used by AffectNet and CK+. "Left" below means the IMAGE left (the
subject's right side).

Each action unit is data: which landmarks it moves and how far at intensity 5
(`AU_MOVES`). Texture cues (wrinkles, furrows, dimples) are drawn by
`render.py`; where each AU acts is `regions.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.regions import MIRROR

N_LANDMARKS = 68

MIDLINE = frozenset(int(i) for i in np.flatnonzero(MIRROR == np.arange(N_LANDMARKS)))

# Landmark displacements at intensity 5, in face units, for the image-LEFT side
# (mirrored automatically; midline points are moved once). (indices, dx, dy).
AU_MOVES: dict[int, list[tuple[tuple[int, ...], float, float]]] = {
    1: [((21,), 0.0, -0.07), ((20,), 0.0, -0.05), ((19,), 0.0, -0.025)],
    2: [((17,), 0.0, -0.07), ((18,), 0.0, -0.055), ((19,), 0.0, -0.03)],
    4: [((21,), 0.03, 0.045), ((20,), 0.02, 0.035), ((19,), 0.01, 0.02)],
    5: [((37, 38), 0.0, -0.03)],
    6: [((40, 41), 0.0, -0.015)],
    7: [((40, 41), 0.0, -0.02), ((37, 38), 0.0, 0.008)],
    9: [((31,), 0.0, -0.025), ((32,), 0.0, -0.015), ((33,), 0.0, -0.01)],
    10: [((50,), 0.0, -0.035), ((49,), 0.0, -0.025), ((51,), 0.0, -0.03), ((61, 62), 0.0, -0.03)],
    12: [((48,), -0.035, -0.05), ((49, 59), -0.012, -0.025), ((60,), -0.03, -0.045), ((61, 67), -0.01, -0.02)],
    # AU14 tightens the lip corner and pulls it inward (AU12 pulls it outward and up); the dimple is texture.
    14: [((48,), 0.05, -0.012), ((60,), 0.045, -0.01), ((49, 59), 0.018, 0.0)],
    15: [((48,), 0.0, 0.045), ((60,), 0.0, 0.04), ((59,), 0.0, 0.02), ((49,), 0.0, 0.015)],
    17: [((57, 66), 0.0, -0.03), ((58, 67), 0.0, -0.022), ((59,), 0.0, -0.012)],
    20: [((48,), -0.045, 0.012), ((60,), -0.04, 0.01), ((49, 59), -0.015, 0.0), ((50,), 0.0, 0.01),
         ((58,), 0.0, -0.01)],
    23: [((49, 50, 51), 0.0, 0.012), ((57, 58, 59), 0.0, -0.012), ((48, 60), 0.012, 0.0)],
    25: [((61, 62), 0.0, -0.006), ((66, 67), 0.0, 0.012), ((57, 58, 59), 0.0, 0.008)],
    26: [
        ((57, 58), 0.0, 0.08), ((59,), 0.0, 0.06), ((66,), 0.0, 0.07), ((67,), 0.0, 0.06),
        ((8,), 0.0, 0.1), ((7,), 0.0, 0.095), ((6,), 0.0, 0.08), ((5,), 0.0, 0.055), ((4,), 0.0, 0.03),
    ],
    # AU43 closes the upper lid onto the lower one; see `close_eyes`.
    43: [],
}
assert set(AU_MOVES) == set(ACTION_UNITS)
UNILATERAL_AUS = (12, 14)
SIDES = ("both", "left", "right")


@dataclass(frozen=True)
class Identity:
    """Shape and appearance of one person (all sampled once per subject)."""

    jaw_width: float = 0.5
    jaw_height: float = 0.66
    jaw_power: float = 2.2  # superellipse exponent: 2 round, 3 square
    eye_spacing: float = 0.2
    eye_width: float = 0.09
    eye_height: float = 0.04
    brow_height: float = 0.27
    brow_arch: float = 0.03
    brow_thickness: float = 0.028
    nose_length: float = 0.3
    nose_width: float = 0.1
    mouth_y: float = 0.38
    mouth_width: float = 0.16
    lip_upper: float = 0.025
    lip_lower: float = 0.032
    skin: tuple[int, int, int] = (224, 180, 150)
    lips: tuple[int, int, int] = (180, 95, 95)
    hair: tuple[int, int, int] = (60, 40, 25)
    iris: tuple[int, int, int] = (70, 50, 30)
    hair_style: int = 1  # 0 bald, 1 short, 2 long
    beard: float = 0.0  # stubble opacity 0..1


_SKIN_TONES = np.array([[250, 215, 190], [230, 185, 150], [200, 150, 110], [150, 105, 75], [95, 65, 45]], float)
_HAIR_COLOURS = np.array([[20, 15, 10], [60, 40, 25], [120, 80, 40], [200, 170, 110], [150, 150, 150]], float)
_IRIS_COLOURS = np.array([[60, 40, 25], [90, 110, 60], [60, 90, 140], [40, 30, 20]], float)


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[int, int, int]:
    # Interpolate between two neighbouring palette entries, then jitter each channel.
    t = rng.uniform(0, len(palette) - 1)
    lo = int(t)
    hi = min(lo + 1, len(palette) - 1)
    rgb = palette[lo] + (t - lo) * (palette[hi] - palette[lo]) + rng.normal(0, jitter, 3)
    return tuple(int(v) for v in np.clip(np.round(rgb), 0, 255))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one random person; the draw order is fixed so seeds stay stable."""
    u = rng.uniform
    skin = _colour(rng, _SKIN_TONES, 6)
    lips = tuple(int(np.clip(c * f, 0, 255)) for c, f in zip(skin, (0.85, 0.6, 0.62), strict=True))
    return Identity(
        jaw_width=u(0.46, 0.54), jaw_height=u(0.6, 0.72), jaw_power=u(1.9, 3.0),
        eye_spacing=u(0.17, 0.23), eye_width=u(0.075, 0.1), eye_height=u(0.032, 0.046),
        brow_height=u(0.24, 0.3), brow_arch=u(0.01, 0.045), brow_thickness=u(0.018, 0.036),
        nose_length=u(0.26, 0.34), nose_width=u(0.08, 0.12),
        mouth_y=u(0.35, 0.41), mouth_width=u(0.13, 0.18),
        lip_upper=u(0.016, 0.032), lip_lower=u(0.022, 0.04),
        skin=skin, lips=lips, hair=_colour(rng, _HAIR_COLOURS, 8), iris=_colour(rng, _IRIS_COLOURS, 8),
        hair_style=int(rng.integers(0, 3)), beard=float(u(0.0, 0.5)) if u() < 0.15 else 0.0,
    )


def neutral_landmarks(idn: Identity) -> np.ndarray:
    """(68, 2) landmarks of the identity's neutral face, in face units."""
    lm = np.zeros((N_LANDMARKS, 2))
    # Jaw 0..16: a superellipse from the image-left ear down round the chin.
    phi = np.linspace(0.0, np.pi, 17)
    cos, sin = np.cos(phi), np.sin(phi)
    p = 2.0 / idn.jaw_power
    lm[0:17, 0] = -idn.jaw_width * np.sign(cos) * np.abs(cos) ** p
    lm[0:17, 1] = -0.02 + idn.jaw_height * np.abs(sin) ** p
    # Brows 17..21 (outer -> inner) with an arch.
    t = np.linspace(0.0, 1.0, 5)
    lm[17:22, 0] = -0.42 + 0.32 * t
    lm[17:22, 1] = -idn.brow_height + 0.02 - idn.brow_arch * np.sin(np.pi * (0.3 + 0.7 * t))
    # Nose bridge 27..30 and base 31..35.
    lm[27:31, 0] = 0.0
    lm[27:31, 1] = np.linspace(-0.12, -0.12 + idn.nose_length * 0.85, 4)
    base_y = -0.12 + idn.nose_length
    lm[31:36, 0] = idn.nose_width * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    lm[31:36, 1] = base_y + np.array([-0.02, 0.005, 0.015, 0.005, -0.02])
    # Image-left eye 36..41: outer corner, upper lid x2, inner corner, lower lid x2.
    ex, ew = -idn.eye_spacing, idn.eye_width
    lm[36:42, 0] = ex + ew * np.array([-1.0, -0.35, 0.35, 1.0, 0.35, -0.35])
    lm[36:42, 1] = np.array([0.0, -idn.eye_height, -idn.eye_height, 0.0, idn.eye_height * 0.8, idn.eye_height * 0.8])
    # Mouth: outer lip 48..59 (clockwise from the left corner), inner lip 60..67.
    my, mw, ul, ll = idn.mouth_y, idn.mouth_width, idn.lip_upper, idn.lip_lower
    lm[48:55, 0] = mw * np.array([-1.0, -0.55, -0.2, 0.0, 0.2, 0.55, 1.0])
    lm[48:55, 1] = my - ul * np.array([0.0, 0.8, 1.0, 0.8, 1.0, 0.8, 0.0])
    lm[55:60, 0] = mw * np.array([0.55, 0.2, 0.0, -0.2, -0.55])
    lm[55:60, 1] = my + ll * np.array([0.85, 1.0, 1.0, 1.0, 0.85])
    lm[60:68, 0] = mw * np.array([-0.85, -0.3, 0.0, 0.3, 0.85, 0.3, 0.0, -0.3])
    lm[60:68, 1] = my
    _mirror_left_to_right(lm, left=list(range(17, 22)) + list(range(36, 42)))
    return lm


def _mirror_left_to_right(lm: np.ndarray, left: list[int]) -> None:
    idx = np.array(left)
    lm[MIRROR[idx], 0] = -lm[idx, 0]
    lm[MIRROR[idx], 1] = lm[idx, 1]


def au_displacement(au: int, intensity: float, side: str = "both") -> np.ndarray:
    """(68, 2) landmark offsets of one AU at `intensity` (0..5) on `side`."""
    delta = np.zeros((N_LANDMARKS, 2))
    if intensity <= 0:
        return delta
    s = float(intensity) / 5.0
    for indices, dx, dy in AU_MOVES[au]:
        for i in indices:
            if i in MIDLINE:
                if side == "both":
                    delta[i] += (0.0, dy * s)
                continue
            if side in ("both", "left"):
                delta[i] += (dx * s, dy * s)
            if side in ("both", "right"):
                delta[MIRROR[i]] += (-dx * s, dy * s)
    return delta


@dataclass(frozen=True)
class Expression:
    """AU intensities (0..5) and the side of AU12/AU14 ("both", "left", "right")."""

    intensities: dict[int, float] = field(default_factory=dict)
    sides: dict[int, str] = field(default_factory=dict)

    def intensity(self, au: int) -> float:
        return float(self.intensities.get(au, 0.0))

    def side(self, au: int) -> str:
        return self.sides.get(au, "both")

    def without(self, suppressed: tuple[int, ...] | frozenset[int]) -> "Expression":
        """The same expression with the given AUs switched off (for AU suppression)."""
        keep = {au: v for au, v in self.intensities.items() if au not in suppressed}
        return Expression(keep, {au: s for au, s in self.sides.items() if au in keep})


def expressed_landmarks(neutral: np.ndarray, expression: Expression) -> np.ndarray:
    """(68, 2) landmarks with every AU's displacement added, then AU43 eye closure."""
    lm = neutral.copy()
    for au in ACTION_UNITS:
        lm += au_displacement(au, expression.intensity(au), expression.side(au))
    return close_eyes(lm, expression.intensity(43))


def close_eyes(lm: np.ndarray, intensity: float) -> np.ndarray:
    """AU43: move each upper lid point towards the lower lid point below it."""
    if intensity <= 0:
        return lm
    s = min(float(intensity), 5.0) / 5.0
    out = lm.copy()
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        out[upper, 1] += s * 0.92 * (lm[lower, 1] - lm[upper, 1])
    return out


@dataclass(frozen=True)
class Pose:
    """Similarity transform from face units to image pixels."""

    cx: float
    cy: float
    scale: float  # pixels per face unit
    angle: float  # radians, in-plane

    def apply(self, pts: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        x, y = pts[..., 0], pts[..., 1]
        return np.stack([self.cx + self.scale * (c * x - s * y), self.cy + self.scale * (s * x + c * y)], axis=-1)
