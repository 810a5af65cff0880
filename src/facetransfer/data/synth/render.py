"""Rasterise a face (identity + expression + pose + nuisance) to an image.

Everything is drawn as polygons and lines in face units, transformed by the
pose and drawn `supersample` times larger, then box-reduced: that is the
anti-aliasing. Texture cues of an AU are anchored at the neutral landmarks
plus that AU's own displacement, so switching one AU off changes pixels only
near that AU (the causal ground truth tested in tests/data/test_synth.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from facetransfer.data.regions import MIRROR
from facetransfer.data.synth.faces import (
    Expression,
    Identity,
    Pose,
    au_displacement,
    expressed_landmarks,
    neutral_landmarks,
)

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Nuisance:
    """Everything about an image that is not the face: all sampled before rendering."""

    background: tuple[Colour, Colour] = ((90, 100, 110), (140, 150, 160))
    clutter: tuple[tuple[tuple[float, ...], Colour], ...] = ()  # (x0, y0, x1, y1, ...) in [0, 1] image coords
    light_angle: float = 0.0
    light_strength: float = 0.0  # multiplicative gradient, +-strength/2 across the image
    blur_sigma: float = 0.0  # output pixels; the kernel is cut at 1 pixel
    noise_sigma: float = 0.0  # grey levels
    noise_seed: int = 0
    glasses: bool = False
    occluder: tuple[float, float, float, float, Colour] | None = None  # cx, cy, rx, ry in [0, 1] image coords


@dataclass(frozen=True)
class Scene:
    identity: Identity
    expression: Expression
    pose: Pose
    nuisance: Nuisance
    size: int
    grey: bool = False
    face: bool = True  # False: background and nuisance only (AffectNet "Non-Face", FER+ "NF")


def render(scene: Scene, supersample: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Draw a scene -> (image uint8 (H, W, 3), or (H, W) if grey; landmarks (68, 2) in pixels)."""
    neutral = neutral_landmarks(scene.identity)
    lm = expressed_landmarks(neutral, scene.expression)
    canvas = Image.new("RGB", (scene.size * supersample,) * 2, scene.nuisance.background[0])
    pen = _Pen(ImageDraw.Draw(canvas, "RGBA"), scene.pose, supersample)
    _draw_background(pen, scene.nuisance, scene.size * supersample)
    if scene.face:
        _draw_face(pen, scene, lm, neutral)
    image = np.asarray(canvas.reduce(supersample), dtype=np.float64)
    # Landmarks in pixel-edge coordinates (pixel i spans [i, i+1)); PIL draws at pixel centres.
    return _finish(image, scene), scene.pose.apply(lm) + 0.5 / supersample


def _draw_face(pen: "_Pen", scene: Scene, lm: np.ndarray, neutral: np.ndarray) -> None:
    _draw_head(pen, scene.identity, lm, neutral)
    _draw_textures(pen, scene, neutral)
    for eye in (slice(36, 42), slice(42, 48)):
        _draw_eye(pen, scene.identity, lm[eye])
    _draw_brows(pen, scene.identity, lm)
    _draw_nose(pen, scene.identity, lm)
    _draw_mouth(pen, scene.identity, lm)
    _draw_accessories(pen, scene, neutral)


class _Pen:
    """Draws shapes given in face units onto the supersampled canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, pose: Pose, supersample: int):
        self.draw, self.pose, self.ss = draw, pose, supersample
        self.px_per_unit = pose.scale * supersample

    def _xy(self, pts: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in (self.pose.apply(np.asarray(pts, float)) * self.ss).tolist()]

    def polygon(self, pts: np.ndarray, fill: Colour, alpha: int = 255) -> None:
        self.draw.polygon(self._xy(pts), fill=(*fill, alpha))

    def line(self, pts: np.ndarray, fill: Colour, width: float, alpha: int = 255) -> None:
        w = max(1, int(round(width * self.px_per_unit)))
        self.draw.line(self._xy(pts), fill=(*fill, alpha), width=w, joint="curve")

    def raw_polygon(self, xy01: np.ndarray, fill: Colour, alpha: int, size: int) -> None:
        """A polygon in [0, 1] image coordinates (background, occluders)."""
        self.draw.polygon([tuple(p) for p in (np.asarray(xy01) * size).tolist()], fill=(*fill, alpha))


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, a0: float = 0.0,
            a1: float = 2 * np.pi) -> np.ndarray:
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=-1)


def smooth(pts: np.ndarray, closed: bool = False, steps: int = 4) -> np.ndarray:
    """Catmull-Rom spline through `pts` (K, 2) -> denser (M, 2) curve."""
    pts = np.asarray(pts, float)
    ext = np.vstack([pts[-1:], pts, pts[:2]]) if closed else np.vstack([pts[:1], pts, pts[-1:]])
    p0, p1, p2, p3 = (ext[i : len(ext) - 3 + i, None, :] for i in range(4))  # each (segments, 1, 2)
    t = np.linspace(0, 1, steps, endpoint=False)[None, :, None]
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    curve = curve.reshape(-1, 2)
    return curve if closed else np.vstack([curve, pts[-1:]])


def _shade(c: Colour, f: float) -> Colour:
    return tuple(int(min(255, max(0, v * f))) for v in c)


def _draw_background(pen: _Pen, nz: Nuisance, size: int) -> None:
    # Vertical gradient in 8 bands, then clutter shapes.
    c0, c1 = np.array(nz.background[0], float), np.array(nz.background[1], float)
    for k in range(8):
        col = tuple(int(v) for v in c0 + (c1 - c0) * k / 7)
        pen.raw_polygon(np.array([[0, k / 8], [1, k / 8], [1, (k + 1) / 8], [0, (k + 1) / 8]]), col, 255, size)
    for coords, colour in nz.clutter:
        pen.raw_polygon(np.array(coords).reshape(-1, 2), colour, 200, size)


def _draw_head(pen: _Pen, idn: Identity, lm: np.ndarray, neutral: np.ndarray) -> None:
    skin = idn.skin
    # Neck hangs from jaw points 3 and 13, which no AU moves.
    if idn.hair_style == 2:
        pen.polygon(np.vstack([ellipse(0, -0.15, idn.jaw_width + 0.12, 0.72, 28, np.pi, 2 * np.pi),
                               [[idn.jaw_width + 0.14, 0.75], [-idn.jaw_width - 0.14, 0.75]]]), idn.hair)
    pen.polygon(np.array([lm[3] + (0.06, 0), lm[13] - (0.06, 0), (0.32, 1.6), (-0.32, 1.6)]), _shade(skin, 0.82))
    for sx in (-1, 1):
        pen.polygon(ellipse(sx * (idn.jaw_width + 0.015), 0.07, 0.055, 0.11, 16), _shade(skin, 0.9))
    forehead = ellipse(0.0, lm[0, 1], abs(lm[16, 0] - lm[0, 0]) / 2, 0.62, 24, 0.0, -np.pi)
    pen.polygon(np.vstack([smooth(lm[0:17]), forehead[1:-1]]), skin)
    if idn.hair_style >= 1:
        outer = ellipse(0.0, -0.02, idn.jaw_width + 0.03, 0.67, 20, -0.03 * np.pi, -0.97 * np.pi)
        inner = ellipse(0.0, -0.02, idn.jaw_width - 0.02, 0.5, 20, -0.97 * np.pi, -0.03 * np.pi)
        pen.polygon(np.vstack([outer, inner]), idn.hair)
    if idn.beard > 0:
        top = neutral[48, 1] - 0.04  # neutral: lip-corner AUs must not move the beard line
        pen.polygon(np.vstack([smooth(lm[3:14]), [[lm[13, 0], top], [lm[3, 0], top]]]), (40, 30, 25),
                    int(120 * idn.beard))


def _texture_anchor(neutral: np.ndarray, expr: Expression, au: int) -> np.ndarray:
    # Neutral face moved by this AU only: other AUs do not drag this AU's wrinkles around.
    return neutral + au_displacement(au, expr.intensity(au), expr.side(au))


def _sides(expr: Expression, au: int) -> tuple[int, ...]:
    side = expr.side(au)
    return {"both": (-1, 1), "left": (-1,), "right": (1,)}[side]


def _draw_textures(pen: _Pen, scene: Scene, neutral: np.ndarray) -> None:
    expr, skin = scene.expression, scene.identity.skin
    dark, light = _shade(skin, 0.55), _shade(skin, 1.18)
    for au in sorted(expr.intensities):
        v = expr.intensity(au)
        if v <= 0 or au not in _TEXTURES:
            continue
        alpha = int(255 * min(1.0, 0.25 + 0.15 * v))
        _TEXTURES[au](pen, _texture_anchor(neutral, expr, au), _sides(expr, au), dark, light, alpha)


def _mirror(sx: int, i: int) -> int:
    # Landmark index on side sx (-1 image left, +1 image right) for a left-side index.
    return i if sx < 0 else int(MIRROR[i])


def _au1(pen, a, sides, dark, light, alpha):
    mid = (a[21] + a[22]) / 2
    for k in range(2):
        y = mid[1] - 0.08 - 0.045 * k
        pen.line(smooth(np.array([[mid[0] - 0.09, y + 0.01], [mid[0], y - 0.008], [mid[0] + 0.09, y + 0.01]])),
                 dark, 0.008, alpha)


def _au2(pen, a, sides, dark, light, alpha):
    for sx in sides:
        c = a[_mirror(sx, 18)]
        for k in range(2):
            y = c[1] - 0.07 - 0.045 * k
            pen.line(np.array([[c[0] - 0.055, y + 0.008], [c[0], y], [c[0] + 0.055, y + 0.008]]), dark, 0.008, alpha)


def _au4(pen, a, sides, dark, light, alpha):
    mid = (a[21] + a[22]) / 2
    for dx in (-0.025, 0.025):
        pen.line(np.array([[mid[0] + dx, mid[1] - 0.02], [mid[0] + dx * 0.7, mid[1] + 0.06]]), dark, 0.01, alpha)


def _au6(pen, a, sides, dark, light, alpha):
    for sx in sides:
        lid = (a[_mirror(sx, 40)] + a[_mirror(sx, 41)]) / 2
        pen.polygon(ellipse(lid[0], lid[1] + 0.075, 0.075, 0.032, 16), light, alpha // 2)
        pen.line(ellipse(lid[0], lid[1] + 0.08, 0.07, 0.035, 9, 0.15 * np.pi, 0.85 * np.pi), dark, 0.008, alpha)
        corner = a[_mirror(sx, 36)]
        for dy in (-0.03, 0.0, 0.03):
            pen.line(np.array([corner + (sx * -0.015, 0.0), corner + (sx * -0.075, dy)]), dark, 0.006, alpha)


def _au7(pen, a, sides, dark, light, alpha):
    for sx in sides:
        lower = a[[_mirror(sx, i) for i in (39, 40, 41, 36)]] + (0.0, 0.01)
        pen.line(smooth(lower), dark, 0.01, alpha)


def _au9(pen, a, sides, dark, light, alpha):
    for y in np.linspace(a[28, 1], a[29, 1], 3):
        pen.line(np.array([[-0.035, y + 0.006], [0.0, y], [0.035, y + 0.006]]) + (a[28, 0], 0), dark, 0.007, alpha)


def _au10(pen, a, sides, dark, light, alpha):
    for sx in sides:
        wing, corner = a[_mirror(sx, 31)], a[_mirror(sx, 48)]
        pen.line(np.array([wing + (sx * 0.025, 0.0), corner + (sx * 0.015, -0.03)]), dark, 0.01, alpha)


def _au12(pen, a, sides, dark, light, alpha):
    for sx in sides:
        wing, corner = a[_mirror(sx, 31)], a[_mirror(sx, 48)]
        curve = np.array([wing + (sx * 0.035, -0.01), wing + (sx * 0.065, 0.06), corner + (sx * 0.04, 0.01)])
        pen.line(smooth(curve), dark, 0.012, alpha)


def _au14(pen, a, sides, dark, light, alpha):
    # The dimpler: a deep crescent just beyond the tightened lip corner, a pit in it, and the bulge of
    # skin pressed out beside it. As large as AU5's lid cue (issue 15), and unlike AU12 it pulls nothing up.
    for sx in sides:
        corner = a[_mirror(sx, 48)]
        pen.polygon(ellipse(corner[0] + sx * 0.105, corner[1] + 0.005, 0.055, 0.085, 16), light, int(alpha * 0.9))
        c = corner + (sx * 0.055, 0.0)
        start = -0.5 * np.pi if sx > 0 else 0.5 * np.pi  # the crescent opens towards the lip corner
        pen.line(ellipse(c[0], c[1], 0.028, 0.075, 11, start, start + np.pi), dark, 0.022, alpha)
        pen.polygon(ellipse(c[0], c[1], 0.016, 0.018, 8), dark, alpha)


def _au15(pen, a, sides, dark, light, alpha):
    for sx in sides:
        c = a[_mirror(sx, 48)]
        pen.line(np.array([c + (0.0, 0.012), c + (sx * 0.015, 0.065)]), dark, 0.01, alpha)


def _au17(pen, a, sides, dark, light, alpha):
    c = a[57] + (0.0, 0.075)
    pen.line(ellipse(c[0], c[1], 0.045, 0.02, 9, 1.15 * np.pi, 1.85 * np.pi), dark, 0.008, alpha)
    for dx in (-0.02, 0.0, 0.02):
        pen.polygon(ellipse(c[0] + dx, c[1] + 0.025, 0.006, 0.006, 6), dark, alpha)


def _au20(pen, a, sides, dark, light, alpha):
    for sx in sides:
        c = a[_mirror(sx, 48)]
        pen.line(np.array([c + (sx * 0.015, 0.0), c + (sx * 0.065, 0.004)]), dark, 0.008, alpha)


def _au23(pen, a, sides, dark, light, alpha):
    pen.line(smooth(a[48:55]), dark, 0.008, alpha)
    pen.line(smooth(np.vstack([a[54:60], a[48:49]])), dark, 0.008, alpha)


# Texture cue per AU; AU5, 25, 26 and 43 are pure geometry.
_TEXTURES = {1: _au1, 2: _au2, 4: _au4, 6: _au6, 7: _au7, 9: _au9, 10: _au10, 12: _au12, 14: _au14,
             15: _au15, 17: _au17, 20: _au20, 23: _au23}


def _lid_y(lid: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(lid[:, 0])
    return np.interp(x, lid[order, 0], lid[order, 1])


def _draw_eye(pen: _Pen, idn: Identity, eye: np.ndarray) -> None:
    # eye: (6, 2) = outer/inner corners and lids in iBUG order for that eye.
    upper, lower = eye[[0, 1, 2, 3]], eye[[3, 4, 5, 0]]
    outline = np.vstack([smooth(upper), smooth(lower)[1:]])
    pen.polygon(outline, (236, 234, 228))
    # Iris centred between the corners (no AU moves them), clipped between the lids.
    centre = (eye[0] + eye[3]) / 2
    for radius, colour in ((idn.eye_height * 1.0, idn.iris), (idn.eye_height * 0.45, (15, 12, 12))):
        circle = ellipse(centre[0], centre[1] + 0.002, radius, radius, 20)
        up, lo = _lid_y(smooth(upper), circle[:, 0]), _lid_y(smooth(lower), circle[:, 0])
        circle[:, 1] = np.clip(circle[:, 1], up, np.maximum(up, lo))
        pen.polygon(circle, colour)
    pen.line(smooth(upper), (25, 20, 20), 0.011)
    pen.line(smooth(lower), _shade(idn.skin, 0.7), 0.005)
    pen.line(smooth(upper[1:3]) + (0.0, -0.02), _shade(idn.skin, 0.7), 0.006, 160)


def _draw_brows(pen: _Pen, idn: Identity, lm: np.ndarray) -> None:
    for brow in (lm[17:22], lm[22:27]):
        pen.line(smooth(brow), idn.hair, idn.brow_thickness)


def _draw_nose(pen: _Pen, idn: Identity, lm: np.ndarray) -> None:
    pen.line(lm[27:31] + (0.02, 0.0), _shade(idn.skin, 0.85), 0.012, 140)
    pen.line(smooth(lm[31:36]), _shade(idn.skin, 0.6), 0.01)
    for i in (32, 34):
        pen.polygon(ellipse(lm[i, 0], lm[i, 1] - 0.004, 0.018, 0.01, 10), (50, 30, 30))


def _draw_mouth(pen: _Pen, idn: Identity, lm: np.ndarray) -> None:
    pen.polygon(smooth(lm[48:60], closed=True), idn.lips)
    inner = lm[60:68]
    # No "is the mouth open?" switch: a global switch would let a lip AU change the whole mouth.
    # A closed mouth gives a zero-area opening and zero-height teeth.
    pen.polygon(smooth(inner, closed=True), (55, 20, 25))
    top = smooth(inner[0:5])
    bottom = top.copy()  # the teeth's lower edge, kept inside the opening
    bottom[:, 1] = np.minimum(top[:, 1] + 0.022, _lid_y(smooth(np.vstack([inner[4:8], inner[0:1]])), top[:, 0]))
    pen.polygon(np.vstack([top, bottom[::-1]]), (232, 228, 215))
    pen.line(smooth(inner[0:5]), _shade(idn.lips, 0.5), 0.007)
    pen.line(smooth(np.vstack([inner[4:8], inner[0:1]])), _shade(idn.lips, 0.6), 0.005)


def _draw_accessories(pen: _Pen, scene: Scene, neutral: np.ndarray) -> None:
    nz = scene.nuisance
    if nz.glasses:
        for eye in (slice(36, 42), slice(42, 48)):
            c = neutral[eye][[0, 3]].mean(axis=0)
            pen.line(ellipse(c[0], c[1], 0.12, 0.085, 24), (30, 30, 35), 0.014)
        pen.line(np.array([neutral[39] + (0.03, -0.01), neutral[42] - (0.03, 0.01)]), (30, 30, 35), 0.012)
    if nz.occluder is not None:
        cx, cy, rx, ry, colour = nz.occluder
        pen.raw_polygon(ellipse(cx, cy, rx, ry, 20), colour, 255, scene.size * pen.ss)


def _finish(image: np.ndarray, scene: Scene) -> np.ndarray:
    """Lighting gradient, blur, grey conversion and sensor noise on the (H, W, 3) float image."""
    nz, n = scene.nuisance, scene.size
    if nz.light_strength:
        y, x = np.mgrid[0:n, 0:n] / max(n - 1, 1)
        ramp = x * np.cos(nz.light_angle) + y * np.sin(nz.light_angle)
        image = image * (1.0 + nz.light_strength * (ramp - ramp.mean()))[..., None]
    if scene.grey:
        image = image @ np.array([0.299, 0.587, 0.114])
    if nz.blur_sigma > 0:
        sigma = (nz.blur_sigma, nz.blur_sigma) + ((0.0,) if image.ndim == 3 else ())
        image = gaussian_filter(image, sigma=sigma, radius=(1, 1) + ((0,) if image.ndim == 3 else ()))
    if nz.noise_sigma > 0:
        image = image + np.random.default_rng(nz.noise_seed).normal(0.0, nz.noise_sigma, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
