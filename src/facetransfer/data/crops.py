"""Face boxes from landmarks, and cropping a face to a square of a given size."""

from __future__ import annotations

import numpy as np
from PIL import Image


def face_box_from_landmarks(lm: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) square box around 66/68 landmarks, grown upwards to include the forehead."""
    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    top = y0 - 0.3 * (x1 - x0)  # the brows are the highest landmarks; the forehead sits above
    side = 1.08 * max(x1 - x0, y1 - top)
    cx, cy = (x0 + x1) / 2, (top + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side))


def square_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The square (x0, y0, x1, y1) with the box's centre and its longer side."""
    x, y, w, h = box
    side = max(w, h)
    cx, cy = x + w / 2, y + h / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def crop_resize(image: Image.Image, box: tuple[float, float, float, float], size: int) -> Image.Image:
    """Crop the square around `box` (x, y, w, h; outside the image is black) and resize to size x size."""
    x0, y0, x1, y1 = (int(round(v)) for v in square_box(box))
    return image.crop((x0, y0, x1, y1)).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)


def landmarks_in_crop(lm: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Landmarks (K, 2) in the pixel frame of `crop_resize(image, box, size)`."""
    x0, y0, x1, _ = (int(round(v)) for v in square_box(box))
    return (np.asarray(lm, float) - (x0, y0)) * (size / (x1 - x0))
