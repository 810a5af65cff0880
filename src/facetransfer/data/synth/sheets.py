"""Contact sheets: a grid of samples per class, a panel of AU-region overlays, and one of AU footprints.

They exist so a person can see what the data is before trusting any number
computed on it.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facetransfer.data.labels import ACTION_UNITS
from facetransfer.data.regions import au_region_masks
from facetransfer.data.synth.datasets import Item

PER_CLASS = 8
TILE = 96
LABEL_W = 90
OVERLAY_AUS = (1, 4, 5, 6, 9, 12, 14, 15, 17, 26)
_TINT = np.array([255, 40, 40], float)


def _class_of(name: str, item: Item) -> str | None:
    m = item.meta
    if name == "unbc":
        return "pain" if m["pspi"] > 0 else "no pain"
    if name == "ckplus":
        return (m["emotion"] or "no label") if m["peak"] else None
    if name == "affectnet" and m["split"] != "validation":
        return None
    return m.get("emotion") or "no face"


def _load(item: Item, root: Path, name: str, pixels: np.ndarray | None) -> np.ndarray:
    if pixels is not None:
        image = pixels
    else:
        base = root / "Manually_Annotated_Images" if name == "affectnet" else root
        image = np.asarray(Image.open(base / item.rel_path))
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


def _tile(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((TILE, TILE), Image.Resampling.NEAREST)


def _grid(rows: list[tuple[str, list[Image.Image]]], title: str, columns: int = PER_CLASS) -> Image.Image:
    font = ImageFont.load_default(size=12)
    sheet = Image.new("RGB", (LABEL_W + columns * TILE, 24 + len(rows) * TILE), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 5), title, fill=(0, 0, 0), font=font)
    for r, (label, tiles) in enumerate(rows):
        lines = textwrap.wrap(label, 12)
        draw.multiline_text((6, 24 + r * TILE + TILE // 2 - 7 * len(lines)), "\n".join(lines), fill=(0, 0, 0),
                            font=font)
        for c, tile in enumerate(tiles):
            sheet.paste(tile, (LABEL_W + c * TILE, 24 + r * TILE))
    return sheet


def class_sheet(name: str, items: list[Item], root: Path, pixels: list) -> Image.Image:
    by_class: dict[str, list[int]] = defaultdict(list)
    for k, item in enumerate(items):
        label = _class_of(name, item)
        if label is not None:
            by_class[label].append(k)
    # Evenly spaced picks, so the sheet spans subjects and sequences, not the first few frames.
    picks = {label: [idx[int(j)] for j in np.linspace(0, len(idx) - 1, min(PER_CLASS, len(idx)))]
             for label, idx in by_class.items()}
    rows = [(label, [_tile(_load(items[k], root, name, pixels[k])) for k in idx])
            for label, idx in sorted(picks.items())]
    return _grid(rows, f"{name}: {PER_CLASS} samples per class (true class)")


def region_sheet(name: str, items: list[Item], landmarks: list, root: Path, pixels: list) -> Image.Image:
    """Rows: sample images; columns: the image, then each AU's region tinted red (bold if the AU is active)."""
    candidates = [k for k, item in enumerate(items) if item.scene.face and len(item.scene.expression.intensities) >= 2]
    picks = [candidates[int(j)] for j in np.linspace(0, len(candidates) - 1, min(4, len(candidates)))]
    rows = []
    for k in picks:
        image = _load(items[k], root, name, pixels[k]).astype(float)
        masks = au_region_masks(landmarks[k], image.shape[0], image.shape[1], OVERLAY_AUS)
        tiles = [_tile(image.astype(np.uint8))]
        for au, mask in zip(OVERLAY_AUS, masks, strict=True):
            strength = 0.55 if items[k].scene.expression.intensity(au) > 0 else 0.2
            tinted = image.copy()
            tinted[mask] = (1 - strength) * tinted[mask] + strength * _TINT
            tiles.append(_tile(tinted.astype(np.uint8)))
        active = ",".join(str(au) for au in ACTION_UNITS if items[k].scene.expression.intensity(au) > 0)
        rows.append((f"AUs {active}", tiles))
    columns = "image | " + " | ".join(f"AU{au}" for au in OVERLAY_AUS)
    return _grid(rows, f"{name} AU regions: {columns}", columns=1 + len(OVERLAY_AUS))


FOOTPRINT_COLUMNS = 6


def footprint_sheet(name: str, items: list[Item], counterfactuals: list, root: Path,
                    pixels: list) -> Image.Image | None:
    """Rows: images with counterfactuals, one per class; columns: the image, then each AU it shows with its
    footprint (the pixels that change when that AU alone is off) tinted red. None when no item has any."""
    rows, seen = [], set()
    for k, (item, found) in enumerate(zip(items, counterfactuals, strict=True)):
        label = item.meta.get("emotion") or "no label"
        if not found or label in seen:
            continue
        seen.add(label)
        image = _load(item, root, name, pixels[k]).astype(float)
        tiles = [_tile(image.astype(np.uint8))]
        for cf in found[:FOOTPRINT_COLUMNS - 1]:
            footprint = np.unpackbits(cf.footprint, axis=-1, count=image.shape[1]).astype(bool)
            tinted = image.copy()
            tinted[footprint] = 0.35 * tinted[footprint] + 0.65 * _TINT
            tile = _tile(tinted.astype(np.uint8))
            ImageDraw.Draw(tile).text((3, 2), f"AU{cf.au}", fill=(255, 255, 0), font=ImageFont.load_default(size=11))
            tiles.append(tile)
        rows.append((label, tiles))
    if not rows:
        return None
    return _grid(rows, f"{name}: where each AU is (red: pixels that change when that AU alone is switched off)",
                 columns=FOOTPRINT_COLUMNS)


def write_contact_sheets(folder: Path, name: str, items: list[Item], landmarks: list, pixels: list, root: Path,
                         counterfactuals: list | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    class_sheet(name, items, root, pixels).save(folder / "classes.png", compress_level=6)
    region_sheet(name, items, landmarks, root, pixels).save(folder / "regions.png", compress_level=6)
    sheet = footprint_sheet(name, items, counterfactuals or [()] * len(items), root, pixels)
    if sheet is not None:
        sheet.save(folder / "footprints.png", compress_level=6)
