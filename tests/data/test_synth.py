"""The synthetic benchmark: causal ground truth, determinism, AU suppression, native readability."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facetransfer.config import SynthConfig
from facetransfer.data import affectnet, ckplus, ferplus, unbc
from facetransfer.data.labels import ACTION_UNITS, pspi
from facetransfer.data.regions import au_region_masks
from facetransfer.data.synth.datasets import build_affectnet
from facetransfer.data.synth.faces import AU_MOVES, MIDLINE, MIRROR, SIDES, Expression, Pose, sample_identity
from facetransfer.data.synth.generate import generate
from facetransfer.data.synth.render import Nuisance, Scene, render


def _scene(rng: np.random.Generator, aus: dict[int, float], sides: dict[int, str] | None = None) -> Scene:
    # Every nuisance on (rotation, blur, noise, light, glasses): they must not leak AU changes.
    pose = Pose(48 + rng.uniform(-4, 4), 46 + rng.uniform(-4, 4), rng.uniform(45, 62), rng.uniform(-0.3, 0.3))
    nuisance = Nuisance(blur_sigma=0.6, noise_sigma=4, noise_seed=7, light_strength=0.4,
                        glasses=bool(rng.uniform() < 0.3))
    return Scene(sample_identity(rng), Expression(aus, sides or {}), pose, nuisance, 96)


def _changed_outside_region(scene: Scene, au: int) -> tuple[int, int]:
    """(changed pixels outside AU's region, changed pixels inside) when `au` is switched off."""
    with_au, landmarks = render(scene)
    without_au, _ = render(Scene(scene.identity, scene.expression.without((au,)), scene.pose, scene.nuisance,
                                 scene.size))
    changed = np.any(with_au != without_au, axis=-1)
    region = au_region_masks(landmarks, 96, 96, (au,))[0]
    return int((changed & ~region).sum()), int((changed & region).sum())


@pytest.mark.parametrize("au", [14, 5])
def test_au_changes_pixels_only_inside_its_region(au):
    rng = np.random.default_rng(au)
    for _ in range(6):
        others = {a: float(rng.integers(1, 6)) for a in ACTION_UNITS if a != au and rng.uniform() < 0.4}
        sides = {14: str(rng.choice(SIDES))} if au == 14 else {}
        outside, inside = _changed_outside_region(_scene(rng, {au: 4.0, **others}, sides), au)
        assert outside == 0
        assert inside > 10  # the AU is visible, so the test cannot pass vacuously


def test_every_au_is_local_in_busy_faces():
    rng = np.random.default_rng(0)
    for _ in range(8):
        aus = {a: float(rng.integers(1, 6)) for a in ACTION_UNITS if rng.uniform() < 0.5}
        scene = _scene(rng, aus, {a: str(rng.choice(SIDES)) for a in (12, 14) if a in aus})
        for au in aus:
            assert _changed_outside_region(scene, au)[0] == 0, f"AU{au} changed pixels outside its region"


def test_au_moves_never_list_a_landmark_and_its_mirror():
    # Both would be moved twice (the left entry is mirrored automatically).
    for au, moves in AU_MOVES.items():
        listed = [i for indices, _, _ in moves for i in indices]
        assert len(listed) == len(set(listed)), au
        assert not [i for i in listed if i not in MIDLINE and MIRROR[i] in listed], au


def test_unilateral_au_moves_one_side_only():
    rng = np.random.default_rng(3)
    scene = _scene(rng, {14: 5.0}, {14: "left"})
    image, lm = render(scene)
    plain, _ = render(Scene(scene.identity, Expression(), scene.pose, scene.nuisance, 96))
    changed_cols = np.flatnonzero(np.any(image != plain, axis=(0, 2)))
    assert changed_cols.max() < (lm[48, 0] + lm[54, 0]) / 2  # all change left of the mouth centre


def test_pspi_formula():
    assert pspi({4: 2, 6: 1, 7: 3, 9: 0, 10: 2, 43: 1}) == 2 + 3 + 2 + 1
    assert pspi({43: 5}) == 1  # eye closure counts as present/absent
    assert pspi({}) == 0


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def smoke_data(smoke_benchmark) -> Path:
    return smoke_benchmark


def test_same_seed_same_bytes_whatever_the_worker_count(smoke_data, tmp_path):
    generate(tmp_path, SynthConfig().smoke().model_copy(update={"workers": 1}))
    assert _tree_digest(tmp_path) == _tree_digest(smoke_data)


def test_another_seed_other_bytes(smoke_data, tmp_path):
    generate(tmp_path, SynthConfig().smoke().model_copy(update={"seed": 7}), datasets=("ferplus",))
    assert (tmp_path / "ferplus" / "fer2013.csv").read_bytes() != (smoke_data / "ferplus" / "fer2013.csv").read_bytes()


def test_native_readers_accept_the_synthetic_data(smoke_data):
    cfg = SynthConfig().smoke()
    train = affectnet.read(smoke_data / "affectnet", "training")
    test = affectnet.read(smoke_data / "affectnet", "validation")
    assert (test["label"].value_counts() == cfg.affectnet.validation_per_class).all()
    # Quirks the reader has to handle: conflicting duplicates are listed, ids 8-10 and negative boxes dropped.
    assert train["rel_path"].duplicated().sum() == cfg.affectnet.conflicting_duplicates
    lines = (smoke_data / "affectnet/Manually_Annotated_file_lists/training.csv").read_text().splitlines()
    assert len(lines) - 1 == len(train) + cfg.affectnet.no_emotion_rows + cfg.affectnet.negative_box_rows
    frames = unbc.read(smoke_data / "unbc")
    assert frames["subject"].nunique() == cfg.unbc.subjects
    assert 0.05 < (frames["pspi"] > 0).mean() < 0.6
    assert all(lm.shape == (66, 2) for lm in frames["landmarks"])
    peaks = ckplus.read(smoke_data / "ckplus")
    assert peaks["emotion"].isna().any() and peaks["emotion"].notna().any()
    fer = ferplus.read(smoke_data / "ferplus")
    assert len(fer) <= cfg.ferplus.images and fer["pixels"].iloc[0].shape == (48, 48)


def test_pain_frames_are_smooth_in_time(smoke_data):
    frames = unbc.read(smoke_data / "unbc")
    jumps = frames.groupby(["subject", "sequence"])["pspi"].diff().abs().dropna()
    assert jumps.quantile(0.9) <= 4  # onset/offset ramps, not noise


def test_groundtruth_regions_match_the_written_landmarks(smoke_data):
    gt = pd.read_csv(smoke_data / "ckplus" / "groundtruth.csv")
    assert len(gt) == len(list((smoke_data / "ckplus" / "cohn-kanade-images").rglob("*.png")))
    peaks = ckplus.read(smoke_data / "ckplus")
    first = Path(peaks["path"].iloc[0]).relative_to((smoke_data / "ckplus").resolve()).as_posix()
    row = gt.set_index("image").loc[first]
    gt_lm = np.array(row["landmarks"].split(";"), float).reshape(68, 2)
    np.testing.assert_allclose(gt_lm, peaks["landmarks"].iloc[0], atol=1e-3)


def test_suppressing_an_au_keeps_everything_else(tmp_path):
    cfg = SynthConfig().smoke()
    plain, suppressed = build_affectnet(cfg), build_affectnet(cfg.model_copy(update={"suppress_aus": (14,)}))
    assert [p.scene.identity for p in plain] == [s.scene.identity for s in suppressed]
    assert [p.meta["label"] for p in plain] == [s.meta["label"] for s in suppressed]
    assert all(s.scene.expression.intensity(14) == 0 for s in suppressed)
    touched = [p for p, s in zip(plain, suppressed, strict=True) if p.scene.expression != s.scene.expression]
    assert touched and all(p.scene.expression.intensity(14) > 0 for p in touched)


def test_contact_sheets_are_written(smoke_data):
    for name in ("affectnet", "unbc", "ckplus", "ferplus"):
        for sheet in ("classes.png", "regions.png"):
            assert (smoke_data / name / "contact_sheets" / sheet).stat().st_size > 10_000


def test_paper_resolution_works_end_to_end(tmp_path):
    # 224 px is the paper's input size: render a native image for it, then crop it as prepare does.
    from facetransfer.data.crops import face_box_from_landmarks
    from facetransfer.data.prepare import Sample, process

    rng = np.random.default_rng(0)
    scene = Scene(sample_identity(rng), Expression({12: 4.0, 6: 3.0}), Pose(168, 160, 185, 0.1), Nuisance(), 336)
    image, lm = render(scene)
    assert image.shape == (336, 336, 3) and (lm > 0).all() and (lm < 336).all()
    out = process(Sample(None, pixels=image, box=face_box_from_landmarks(lm), landmarks=lm, masked=True), 224)
    assert out.image.shape == (224, 224, 3) and out.masks.shape == (17, 224, 28)


def _draws(emotion: str, n: int = 3000) -> list[Expression]:
    from facetransfer.data.synth.sampling import sample_expression

    rng = np.random.default_rng(15)
    return [sample_expression(rng, emotion, strength=(0.45, 1.0)) for _ in range(n)]


def _one_sided(e: Expression, au: int) -> bool:
    return e.intensity(au) > 0 and e.side(au) in ("left", "right")


def test_contempt_needs_au14_half_of_it_alone():
    draws = _draws("contempt")
    assert all(_one_sided(e, 14) for e in draws)  # every contempt face has a one-sided AU14
    alone = np.mean([e.intensity(12) == 0 for e in draws])
    assert 0.45 < alone < 0.55
    with_12 = [e for e in draws if e.intensity(12) > 0]
    assert all(_one_sided(e, 12) and e.side(12) == e.side(14) for e in with_12)


def test_a_one_sided_au12_is_no_shortcut_to_contempt():
    happy = _draws("happy")
    asymmetric = [e for e in happy if _one_sided(e, 12)]
    assert 0.2 <= len(asymmetric) / len(happy) <= 0.3
    assert all(e.intensity(14) == 0 for e in asymmetric)  # an asymmetric smile has no AU14
    assert 0.3 < np.mean([e.intensity(6) > 0 for e in asymmetric]) < 0.7  # AU6 optional
    for emotion in ("neutral", "sad", "surprise", "fear", "disgust", "anger"):
        assert not any(_one_sided(e, 12) or _one_sided(e, 14) for e in _draws(emotion, 500)), emotion


def test_part_of_surprise_has_au5_as_its_only_upper_face_cue():
    draws = _draws("surprise")
    variant = [e for e in draws if e.intensity(1) == 0 and e.intensity(2) == 0]  # 5+26, or 1+2+5+26 that lost both
    assert 0.35 < len(variant) / len(draws) < 0.45
    assert np.mean([e.intensity(5) > 0 and e.intensity(26) > 0 for e in variant]) > 0.97
    upper = {1, 2, 4, 5, 6, 7, 43}
    alone = [set(e.intensities) & upper == {5} for e in variant]
    assert np.mean(alone) > 0.8  # the rest carry a distractor AU4, 6 or 7


def test_pain_data_keep_no_au5_au12_or_au14():
    from facetransfer.data.synth.datasets import build_unbc

    for item in build_unbc(SynthConfig().smoke()):
        assert not {5, 12, 14} & set(item.scene.expression.intensities)


def test_au14_is_as_visible_as_au5():
    # bench/au_footprints.py measures this over 48 identities; here 12 keep the suite fast.
    import importlib.util

    spec = importlib.util.spec_from_file_location("au_footprints",
                                                  Path(__file__).parents[2] / "bench" / "au_footprints.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(5)
    counts: dict[str, list[int]] = {"AU5": [], "AU14": [], "AU12": []}
    for k in range(12):
        identity, pose = sample_identity(rng), bench.wild_pose(rng, 96, 0.55 * 96)
        nuisance = bench.wild_nuisance(rng, k)
        side = "left" if k % 2 else "right"
        for au in counts:
            scene = Scene(identity, Expression({au: 3.0}, {au: side} if au != 5 else {}), pose, nuisance, 96)
            counts[au].append(bench.changed_pixels(scene, (au,)))
    assert np.median(counts["AU14"]) >= 0.8 * np.median(counts["AU5"])
    assert np.median(counts["AU12"]) >= 0.5 * np.median(counts["AU5"])


def test_footprints_are_exactly_the_pixels_that_change(smoke_data):
    from facetransfer.data import counterfactuals
    from facetransfer.data.synth.datasets import build_ckplus

    peaks = [item for item in build_ckplus(SynthConfig().smoke()) if item.meta["peak"]]
    found = counterfactuals.read(smoke_data / "ckplus")
    assert len(found.index) == sum(len(item.scene.expression.intensities) for item in peaks)
    keys = [item.rel_path for item in peaks]
    shown = [set(i.scene.expression.intensities) for i in peaks]
    by_image = dict(zip(keys, found.by_image(pd.Series(keys), shown), strict=True))
    for item in peaks[:6]:
        image, _ = render(item.scene)
        for au, packed in by_image[item.rel_path]:
            without, _ = render(Scene(item.scene.identity, item.scene.expression.without((au,)), item.scene.pose,
                                      item.scene.nuisance, item.scene.size, item.scene.grey))
            footprint = np.unpackbits(packed, axis=-1, count=image.shape[1]).astype(bool)
            np.testing.assert_array_equal(footprint, image != without)


def test_counterfactual_test_images_are_the_test_images_without_one_au(smoke_data):
    from PIL import Image

    from facetransfer.data import counterfactuals

    root = smoke_data / "affectnet"
    found = counterfactuals.read(root)
    test = affectnet.read(root, "validation")
    shows = pd.read_csv(root / "groundtruth.csv").set_index("image").filter(like="au_").gt(0).any(axis=1)
    assert set(found.index["image"]) == {p for p in test["rel_path"] if shows[p]}  # every test image showing an AU
    assert (found.index["path"] != "").all()
    row = found.index.iloc[0]
    original = np.asarray(Image.open(root / "Manually_Annotated_Images" / row["image"]), np.int16)
    without = np.asarray(Image.open(root / counterfactuals.FOLDER / row["path"]), np.int16)
    footprint = np.unpackbits(found.footprints[row["footprint"]], axis=-1, count=original.shape[1]).astype(bool)
    assert footprint.any() and (np.abs(original - without).max(-1)[footprint] > 0).mean() > 0.5
    assert counterfactuals.FOLDER not in {p.name for p in (smoke_data / "unbc").iterdir()}


def test_the_lab_look_is_frontal_plain_and_posed_and_wild_stays_the_default():
    from facetransfer.config import EMOTIONS, AffectNetSynth

    def items(look: str):
        sizes = AffectNetSynth(train_per_class={e: 30 for e in EMOTIONS}, validation_per_class=2, no_emotion_rows=0,
                               label_noise=0.0, look=look)
        return build_affectnet(SynthConfig().model_copy(update={"affectnet": sizes}))

    lab, wild = items("lab"), items("wild")
    assert all(i.scene.pose.angle == 0.0 and not i.scene.nuisance.clutter and i.scene.nuisance.occluder is None
               and i.scene.nuisance.background[0] == i.scene.nuisance.background[1] for i in lab)
    assert np.std([i.scene.pose.angle for i in wild]) > 0.05 and any(i.scene.nuisance.clutter for i in wild)
    # Posed: the AUs of an emotion's prototype come out stronger on average (strength 0.75-1 instead of 0.45-1).
    def mean_intensity(group):
        return np.mean([v for i in group for v in i.scene.expression.intensities.values()])
    assert mean_intensity(lab) > 1.15 * mean_intensity(wild)
    assert all(i.meta["label"] == EMOTIONS.index(i.meta["emotion"]) for i in lab)  # label_noise 0
    assert AffectNetSynth().look == "wild"
