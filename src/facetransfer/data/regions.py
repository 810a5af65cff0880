"""Where each action unit acts on a face, computed from its 68 landmarks.

One region per AU: the convex hull of the landmarks the AU moves (and their
drawn neighbours), plus points offset from landmarks where its texture cues sit
(wrinkles, furrows, dimples), grown by a margin. Offsets and margins are in
face units (jaw width, landmark 0 to 16, is about 1), rotated with the face,
so the same code serves the synthetic benchmark and real landmarks.

The synthetic renderer is tested to change pixels only inside these regions
(tests/data/test_synth.py), which is what makes them ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import ConvexHull

from facetransfer.data.labels import ACTION_UNITS

_MOUTH = tuple(range(48, 68))
_LEFT_EYE = tuple(range(36, 42))
# Moving one brow point reshapes the whole smoothed brow, so brow AUs own the whole brow.
_LEFT_BROW = tuple(range(17, 22))
# Forehead wrinkles of AU1/AU2 sit up to ~0.2 face units above the brows.
_FOREHEAD = ((17, -0.03, -0.22), (19, 0.0, -0.27), (21, 0.02, -0.27), (17, 0.0, 0.06), (19, 0.0, 0.05), (21, 0.0, 0.06))


@dataclass(frozen=True)
class Region:
    """Image-left half of one AU's region; the right half is its mirror image.

    points: landmark indices in the hull. offsets: (landmark, dx, dy) extra hull
    points. margin: growth in face units. per_side: one hull per side (eyes,
    brows, cheeks) instead of one hull across the face (mouth, nose, jaw).
    """

    points: tuple[int, ...]
    offsets: tuple[tuple[int, float, float], ...] = ()
    margin: float = 0.05
    per_side: bool = True


AU_REGIONS: dict[int, Region] = {
    1: Region(_LEFT_BROW, _FOREHEAD + ((21, 0.03, 0.03),), 0.06, per_side=False),
    2: Region(_LEFT_BROW, _FOREHEAD, 0.07),
    4: Region(_LEFT_BROW + (27,), ((21, 0.03, 0.07), (21, 0.0, -0.07), (19, 0.0, -0.05)), 0.05, per_side=False),
    5: Region(_LEFT_EYE, ((37, 0.0, -0.05), (38, 0.0, -0.05)), 0.04),
    6: Region(_LEFT_EYE, ((36, -0.1, 0.0), (36, -0.08, 0.06), (41, 0.0, 0.14), (40, 0.02, 0.14)), 0.04),
    7: Region(_LEFT_EYE, ((37, 0.0, -0.05), (38, 0.0, -0.05), (40, 0.0, 0.03), (41, 0.0, 0.03)), 0.04),
    9: Region((27, 28, 29, 30, 31, 32, 33), ((31, -0.04, -0.02), (28, -0.06, 0.0)), 0.07, per_side=False),
    10: Region((31, 32, 33, 48, 49, 50, 51, 60, 61, 62), ((31, -0.07, 0.0), (48, -0.06, -0.04), (48, -0.1, 0.0)),
               0.1, per_side=False),
    12: Region((31, 48, 49, 50, 58, 59, 60, 61, 67), ((31, -0.08, 0.0), (48, -0.07, -0.06), (48, -0.05, 0.04)), 0.07),
    # The dimple and its bulge sit up to 0.16 beyond the corner, which other AUs move by up to 0.05.
    14: Region((48, 49, 58, 59, 60, 61, 67), ((48, -0.17, -0.1), (48, -0.17, 0.1), (48, -0.1, -0.13), (48, -0.1, 0.14)),
               0.06),
    15: Region((48, 49, 50, 57, 58, 59, 60, 61, 67), ((48, -0.03, 0.09), (48, -0.04, -0.02)), 0.07),
    17: Region((5, 6, 7, 8, 48, 49, 55, 56, 57, 58, 59, 60, 61, 65, 66, 67), ((57, -0.09, 0.03), (57, -0.09, 0.15)),
               0.08, per_side=False),
    20: Region(_MOUTH, ((48, -0.08, 0.02), (48, -0.06, -0.03)), 0.07, per_side=False),
    23: Region(_MOUTH, ((48, -0.04, 0.0),), 0.06, per_side=False),
    25: Region(_MOUTH, (), 0.05, per_side=False),
    26: Region((2, 3, 4, 5, 6, 7, 8) + _MOUTH, ((8, 0.0, 0.03),), 0.07, per_side=False),
    43: Region(_LEFT_EYE, ((37, 0.0, -0.07), (38, 0.0, -0.07), (40, 0.0, 0.02)), 0.05),
}
assert tuple(AU_REGIONS) == ACTION_UNITS

# iBUG-68 mirror map (image left <-> right); midline points map to themselves.
_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)
MIRROR = np.arange(68)
for _a, _b in _PAIRS:
    MIRROR[_a], MIRROR[_b] = _b, _a

# Extra growth in output pixels: anti-aliasing spreads an edge over one pixel
# and the renderer's blur over one more.
PIXEL_MARGIN = 1.5


def landmarks_66_to_68(lm66: np.ndarray) -> np.ndarray:
    """UNBC's 66-point AAM layout is iBUG-68 without the inner mouth corners 60 and 64.

    They are put back at the outer corners (48, 54), which is where they sit
    on a closed mouth.
    """
    if lm66.shape != (66, 2):
        raise ValueError(f"expected (66, 2) landmarks, got {lm66.shape}")
    lm = np.insert(lm66, 60, lm66[48], axis=0)  # 60 goes before old 60
    return np.insert(lm, 64, lm66[54], axis=0)


def face_frame(lm: np.ndarray) -> tuple[float, np.ndarray]:
    """Face unit in pixels and the 2x2 rotation of the face (from the jaw line 0 -> 16)."""
    axis = lm[16] - lm[0]
    unit = float(np.hypot(*axis))
    if unit <= 0:
        raise ValueError("landmarks 0 and 16 coincide; cannot size the face")
    c, s = axis / unit
    return unit, np.array([[c, -s], [s, c]])


def _side_points(region: Region, lm: np.ndarray, unit: float, rot: np.ndarray, mirror: bool) -> np.ndarray:
    idx = MIRROR[list(region.points)] if mirror else np.array(region.points)
    pts = [lm[idx]]
    for i, dx, dy in region.offsets:
        j, dx = (MIRROR[i], -dx) if mirror else (i, dx)
        pts.append(lm[j] + unit * (rot @ np.array([dx, dy])))
    return np.vstack([p.reshape(-1, 2) for p in pts])


def region_polygons(au: int, lm: np.ndarray) -> list[np.ndarray]:
    """Grown hull polygons (K, 2) in pixels for one AU (one per side, or one across the face)."""
    region = AU_REGIONS[au]
    unit, rot = face_frame(lm)
    sides = [_side_points(region, lm, unit, rot, False), _side_points(region, lm, unit, rot, True)]
    if not region.per_side:
        sides = [np.vstack(sides)]
    grow = (region.margin * unit + PIXEL_MARGIN) * _DISK
    # Hull of (points + a disk) = the hull grown by the margin (a Minkowski sum), as one polygon.
    return [_hull((pts[:, None, :] + grow[None]).reshape(-1, 2)) for pts in sides]


def _circumscribed_disk(n: int = 16) -> np.ndarray:
    """(n, 2) polygon around the unit disk (radius 1/cos(pi/n)), so grown regions never fall short."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1) / np.cos(np.pi / n)


_DISK = _circumscribed_disk()


def _hull(pts: np.ndarray) -> np.ndarray:
    return pts[ConvexHull(pts).vertices]


def au_region_masks(lm: np.ndarray, height: int, width: int, aus: tuple[int, ...] = ACTION_UNITS) -> np.ndarray:
    """(len(aus), height, width) bool masks of where each AU acts, from (68, 2) pixel landmarks."""
    lm = np.asarray(lm, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected finite (68, 2) landmarks, got shape {lm.shape}")
    masks = np.zeros((len(aus), height, width), dtype=bool)
    for k, au in enumerate(aus):
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for polygon in region_polygons(au, lm):
            # Landmarks are in pixel-edge coordinates; PIL draws at pixel centres.
            draw.polygon([(float(x) - 0.5, float(y) - 0.5) for x, y in polygon], fill=255)
        masks[k] = np.asarray(canvas) > 0
    return masks
