"""AU regions from landmarks: shape, placement, rotation, the UNBC 66-point layout."""

from __future__ import annotations

import numpy as np
import pytest

from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.regions import au_region_masks, landmarks_66_to_68
from facetransfer.data.synth.faces import Identity, Pose, neutral_landmarks

SIZE = 96


def _landmarks(angle: float = 0.0) -> np.ndarray:
    return Pose(48, 46, 55, angle).apply(neutral_landmarks(Identity()))


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = (int(v) for v in point)
    return bool(mask[y, x])


def test_masks_have_one_plane_per_au():
    masks = au_region_masks(_landmarks(), SIZE, SIZE)
    assert masks.shape == (len(ACTION_UNITS), SIZE, SIZE) and masks.dtype == bool
    assert all(0 < m.mean() < 0.35 for m in masks)  # local: each region a part of the image


@pytest.mark.parametrize("au, inside, outside", [
    (14, (48, 54), (19, 24, 8)),   # dimpler: lip corners, not brows or chin tip
    (5, (37, 44), (48, 33)),       # upper lid raiser: eyes, not mouth or nose
    (1, (21, 22), (57,)),          # inner brow raiser
    (26, (8, 57), (36, 45)),       # jaw drop: chin and lower lip, not eyes
])
def test_regions_sit_on_their_landmarks(au, inside, outside):
    lm = _landmarks()
    mask = au_region_masks(lm, SIZE, SIZE, (au,))[0]
    assert all(_inside(mask, lm[i]) for i in inside)
    assert not any(_inside(mask, lm[i]) for i in outside)


def test_regions_rotate_with_the_face():
    upright, turned = _landmarks(0.0), _landmarks(np.pi / 2)
    a = au_region_masks(upright, SIZE, SIZE, (14,))[0]
    b = au_region_masks(turned, SIZE, SIZE, (14,))[0]
    # A quarter turn about (48, 46): same area, and the turned corners are inside.
    assert abs(int(a.sum()) - int(b.sum())) < 0.05 * a.sum()
    assert _inside(b, turned[48]) and _inside(b, turned[54])


def test_bad_landmarks_are_rejected():
    with pytest.raises(ValueError, match="68, 2"):
        au_region_masks(np.zeros((66, 2)), SIZE, SIZE)
    with pytest.raises(ValueError, match="finite"):
        au_region_masks(np.full((68, 2), np.nan), SIZE, SIZE)


def test_66_point_layout_gets_inner_mouth_corners_back():
    lm68 = _landmarks()
    lm66 = np.delete(lm68, [60, 64], axis=0)
    back = landmarks_66_to_68(lm66)
    keep = [i for i in range(68) if i not in (60, 64)]
    np.testing.assert_array_equal(back[keep], lm68[keep])
    np.testing.assert_array_equal(back[60], lm68[48])
    np.testing.assert_array_equal(back[64], lm68[54])
