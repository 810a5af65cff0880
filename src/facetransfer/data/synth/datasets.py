"""What each synthetic dataset contains: one `Item` (scene + labels) per image.

Builders only draw random numbers and describe scenes; `generate.py` renders
them and `writers.py` lays them out in the datasets' native formats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from facetransfer.config import SynthConfig
from facetransfer.data.labels import (
    CKPLUS_TO_AFFECTNET,
    EMOTIONS,
    FER2013_TO_AFFECTNET,
    FERPLUS_TO_AFFECTNET,
    pspi,
)
from facetransfer.data.synth.faces import Expression, Pose, sample_identity
from facetransfer.data.synth.render import Nuisance, Scene
from facetransfer.data.synth.sampling import (
    lab_nuisance,
    noise_seed,
    random_aus,
    sample_expression,
    scaled,
    wild_nuisance,
    wild_pose,
)

DATASET_IDS = {"affectnet": 1, "unbc": 2, "ckplus": 3, "ferplus": 4}


@dataclass(frozen=True)
class Item:
    """One image to render: where it goes, what it shows, and its labels."""

    rel_path: str  # under the dataset root; FER+ images live in a CSV instead
    scene: Scene
    fmt: str  # "jpg", "png" or "pixels" (returned, not written)
    meta: dict = field(default_factory=dict)
    # Where explanations are scored, each AU shown is also switched off alone and the changed pixels
    # recorded (its footprint): "footprints", or "images" to keep the counterfactual images as well.
    counterfactual: str = ""


def _canvas(cfg: SynthConfig) -> int:
    # Native images are larger than the face, so `prepare` has something to crop.
    return int(round(1.5 * cfg.image_size))


def _suppressed(expression: Expression, cfg: SynthConfig) -> Expression:
    return expression.without(frozenset(cfg.suppress_aus)) if cfg.suppress_aus else expression


# --- AffectNet: in-the-wild stills, imbalanced training list, balanced validation list ---

_VALENCE_AROUSAL = {
    "neutral": (0.0, 0.0), "happy": (0.7, 0.3), "sad": (-0.6, -0.3), "surprise": (0.2, 0.7),
    "fear": (-0.6, 0.7), "disgust": (-0.6, 0.3), "anger": (-0.6, 0.6), "contempt": (-0.4, 0.2),
}


def _wild_look(rng: np.random.Generator, size: int, image_noise_seed: int) -> tuple[Pose, Nuisance]:
    """AffectNet's in-the-wild crops: tilted, shifted, cluttered, unevenly lit."""
    return wild_pose(rng, size, 0.55 * size), wild_nuisance(rng, image_noise_seed)


def _lab_look(rng: np.random.Generator, size: int, image_noise_seed: int) -> tuple[Pose, Nuisance]:
    """The same faces recorded as in a lab (CK+-like): frontal, centred, plain background, steady light."""
    face_px = 0.55 * size
    background = tuple(int(v) for v in rng.integers(60, 200, 3))
    return Pose(size / 2, size / 2 - 0.06 * face_px, face_px, 0.0), lab_nuisance(rng, image_noise_seed, background)


def build_affectnet(cfg: SynthConfig) -> list[Item]:
    rng = np.random.default_rng([cfg.seed, DATASET_IDS["affectnet"]])
    a, size = cfg.affectnet, _canvas(cfg)
    plan = [("training", e) for e in EMOTIONS for _ in range(a.train_per_class[e])]
    plan += [("validation", e) for e in EMOTIONS for _ in range(a.validation_per_class)]
    plan += [("training", "none") for _ in range(a.no_emotion_rows)]
    items = []
    for index, (split, emotion) in enumerate(plan):
        identity = sample_identity(rng)
        shown = "neutral" if emotion == "none" else emotion
        # lab: posed at CK+'s strength (the AUs a model must read are clearer). The strength is one uniform draw
        # whichever the range, so both looks consume the stream alike; drawing anything more here would shift
        # every later image of the set (and data.dvc's hash).
        expression = sample_expression(rng, shown, strength=(0.75, 1.0) if a.look == "lab" else (0.45, 1.0))
        pose, nuisance = (_lab_look if a.look == "lab" else _wild_look)(
            rng, size, noise_seed(cfg.seed, DATASET_IDS["affectnet"], index))
        label = EMOTIONS.index(emotion) if emotion != "none" else int(rng.integers(8, 11))
        if emotion != "none" and split == "training" and rng.uniform() < a.label_noise:
            label = int(rng.choice([k for k in range(len(EMOTIONS)) if k != label]))
        va = _VALENCE_AROUSAL.get(emotion, (-2.0, -2.0))
        valence, arousal = (np.clip(np.array(va) + rng.normal(0, 0.15, 2), -1, 1) if emotion != "none" else va)
        name = hashlib.sha1(f"affectnet-{cfg.seed}-{index}".encode()).hexdigest()
        items.append(Item(
            rel_path=f"{1 + index // 250}/{name}.jpg",
            scene=Scene(identity, _suppressed(expression, cfg), pose, nuisance, size, face=label != 10),
            fmt="jpg",
            meta={"split": split, "label": label, "emotion": shown if emotion != "none" else None,
                  "valence": float(valence), "arousal": float(arousal)},
            counterfactual="images" if split == "validation" and label < len(EMOTIONS) else "",
        ))
    return items


# --- UNBC-McMaster: 25 subjects, sequences of frames with pain episodes scored by PSPI ---

def _envelope(n_frames: int, rng: np.random.Generator, episodes: int) -> np.ndarray:
    """(n_frames,) pain level 0..1: onset ramp, apex hold, offset ramp per episode."""
    level = np.zeros(n_frames)
    for _ in range(episodes):
        onset, apex, offset = (int(v) for v in rng.integers([2, 2, 3], [6, 7, 9]))
        start = int(rng.integers(0, max(1, n_frames - onset - apex - offset)))
        shape = np.concatenate([np.linspace(0.2, 1, onset), np.ones(apex), np.linspace(1, 0.1, offset)])
        stop = min(n_frames, start + len(shape))
        level[start:stop] = np.maximum(level[start:stop], shape[: stop - start])
    return level


def _pain_apex(rng: np.random.Generator, style: np.ndarray) -> dict[int, float]:
    # style: (4,) subject weights for AU4, AU6/7, AU9/10 and eye closure.
    return {
        4: 5 * style[0] * rng.uniform(0.4, 1.0), 6: 5 * style[1] * rng.uniform(0.4, 1.0),
        7: 5 * style[1] * rng.uniform(0.2, 1.0), 9: 4 * style[2] * rng.uniform(0.0, 1.0),
        10: 4 * style[2] * rng.uniform(0.0, 1.0), 43: 5.0 if rng.uniform() < style[3] else 0.0,
        25: 3 * rng.uniform(0.0, 1.0),
    }


def build_unbc(cfg: SynthConfig) -> list[Item]:
    rng = np.random.default_rng([cfg.seed, DATASET_IDS["unbc"]])
    u, size, items = cfg.unbc, _canvas(cfg), []
    for s in range(u.subjects):
        subject_no = 101 + s
        subject = f"{subject_no:03d}-sy{subject_no:03d}"
        identity = sample_identity(rng)
        style = rng.uniform([0.2, 0.4, 0.0, 0.1], [1.0, 1.0, 0.8, 0.6])
        background = tuple(int(v) for v in rng.integers(60, 200, 3))
        glasses = bool(rng.uniform() < 0.15)
        face_px = 0.5 * size * rng.uniform(0.92, 1.08)
        for q in range(u.sequences_per_subject):
            sequence = f"sy{subject_no:03d}t{q + 1}aaaff"
            n_frames = int(rng.integers(u.frames_per_sequence.low, u.frames_per_sequence.high + 1))
            level = _envelope(n_frames, rng, int(rng.poisson(u.pain_episode_rate)))
            apex = _pain_apex(rng, style)
            talk = rng.uniform(0, 2.5)
            drift = rng.normal(0, [2.0, 2.0, 0.05], 3)  # slow head motion: dx, dy px and angle
            phase = rng.uniform(0, 2 * np.pi)
            for f in range(n_frames):
                t = np.sin(phase + 2 * np.pi * f / max(n_frames, 8))
                aus = {au: v * level[f] for au, v in apex.items()}
                aus[25] = max(aus.get(25, 0.0), talk * (0.5 + 0.5 * np.sin(phase + f)))
                if aus.get(43, 0) and level[f] < 0.6:
                    aus[43] = 0.0  # eyes close only near the apex
                expression = scaled(Expression(aus), 1.0)
                pose = Pose(size / 2 + drift[0] * t, size / 2 - 0.03 * size + drift[1] * t, face_px, drift[2] * t)
                index = len(items)
                nuisance = lab_nuisance(rng, noise_seed(cfg.seed, DATASET_IDS["unbc"], index), background, glasses, 0.2)
                expression = _suppressed(expression, cfg)
                labels = dict(expression.intensities)
                if 43 in labels:
                    labels[43] = 1.0  # UNBC codes eye closure as present (1) or absent
                items.append(Item(
                    rel_path=f"Images/{subject}/{sequence}/{sequence}{f + 1:03d}.png",
                    scene=Scene(identity, expression, pose, nuisance, size),
                    fmt="png",
                    meta={"subject": subject, "sequence": sequence, "frame": f + 1, "aus": labels,
                          "pspi": pspi(labels)},
                ))
    return items


# --- CK+: posed sequences from neutral to peak, AU-coded peaks, emotion for some ---

_CKPLUS_EMOTION_WEIGHTS = np.array([0, 45, 18, 59, 25, 69, 28, 83], float)  # CK+'s own counts per code


def build_ckplus(cfg: SynthConfig) -> list[Item]:
    rng = np.random.default_rng([cfg.seed, DATASET_IDS["ckplus"]])
    c, size, items = cfg.ckplus, _canvas(cfg), []
    probs = _CKPLUS_EMOTION_WEIGHTS / _CKPLUS_EMOTION_WEIGHTS.sum()
    for s in range(c.subjects):
        subject = f"S{5 + 4 * s:03d}"
        identity = sample_identity(rng)
        background = tuple(int(v) for v in rng.integers(90, 170, 1)) * 3
        n_sequences = int(rng.integers(c.sequences_per_subject.low, c.sequences_per_subject.high + 1))
        for q in range(n_sequences):
            sequence = f"{q + 1:03d}"
            code = int(rng.choice(8, p=probs)) if rng.uniform() < c.emotion_fraction else None
            if code is None:
                peak = random_aus(rng, 2, 4)
            else:
                emotion = EMOTIONS[CKPLUS_TO_AFFECTNET[code]]
                peak = sample_expression(rng, emotion, strength=(0.75, 1.0), keep=0.97, distractor=0.2)
            peak = _suppressed(peak, cfg)
            not_given = {au for au in peak.intensities if rng.uniform() < c.intensity_not_given}
            n_frames = int(rng.integers(c.frames_per_sequence.low, c.frames_per_sequence.high + 1))
            pose = wild_pose(rng, size, 0.5 * size)
            pose = Pose(pose.cx, pose.cy, pose.scale, pose.angle * 0.3)
            for f in range(n_frames):
                is_peak = f == n_frames - 1
                frame = scaled(peak, ((f / (n_frames - 1)) ** 1.5) if n_frames > 1 else 1.0)
                nuisance = lab_nuisance(rng, noise_seed(cfg.seed, DATASET_IDS["ckplus"], len(items)), background)
                stem = f"{subject}_{sequence}_{f + 1:08d}"
                items.append(Item(
                    rel_path=f"cohn-kanade-images/{subject}/{sequence}/{stem}.png",
                    scene=Scene(identity, frame, pose, nuisance, size, grey=True),
                    fmt="png",
                    meta={"subject": subject, "sequence": sequence, "frame": f + 1, "peak": is_peak,
                          "emotion_code": code if is_peak else None, "aus": dict(frame.intensities),
                          "emotion": EMOTIONS[CKPLUS_TO_AFFECTNET[code]] if code is not None else None,
                          "not_given": sorted(not_given) if is_peak else []},
                    counterfactual="footprints" if is_peak else "",
                ))
    return items


# --- FER+: 48x48 grey crops, 10 crowd votes each ---

_FERPLUS_PRIOR = np.array([0.33, 0.27, 0.12, 0.12, 0.08, 0.02, 0.03, 0.03])  # FER+ order
_FERPLUS_CONFUSION = {0: (3, 7), 1: (0, 2), 2: (6, 1), 3: (0, 4), 4: (5, 3), 5: (4, 7), 6: (2, 3), 7: (0, 5)}


def _votes(rng: np.random.Generator, label: int, face: bool) -> np.ndarray:
    """(10,) vote counts over FER+'s 8 emotions + unknown + not-a-face."""
    votes = np.zeros(10, dtype=int)
    if not face:
        votes[9] = 8
        votes[8] = 2
        return votes
    clarity = rng.uniform(0.45, 0.95)
    for _ in range(10):
        r = rng.uniform()
        if r < clarity:
            votes[label] += 1
        elif r < 0.95:
            votes[int(rng.choice(_FERPLUS_CONFUSION[label]))] += 1
        else:
            votes[8] += 1
    return votes


def build_ferplus(cfg: SynthConfig) -> list[Item]:
    rng = np.random.default_rng([cfg.seed, DATASET_IDS["ferplus"]])
    f, size, items = cfg.ferplus, 48, []
    for index in range(f.images):
        fer_label = int(rng.choice(8, p=_FERPLUS_PRIOR))
        emotion = EMOTIONS[FERPLUS_TO_AFFECTNET[fer_label]]
        face = rng.uniform() >= f.not_a_face
        identity = sample_identity(rng)
        expression = sample_expression(rng, emotion, strength=(0.45, 1.0))
        pose = wild_pose(rng, size, 0.75 * size)  # FER crops are tight: the face fills the frame
        nuisance = wild_nuisance(rng, noise_seed(cfg.seed, DATASET_IDS["ferplus"], index))
        old = FER2013_TO_AFFECTNET.index(EMOTIONS.index(emotion)) if emotion != "contempt" else 6
        usage = str(rng.choice(["Training", "PublicTest", "PrivateTest"], p=[0.8, 0.1, 0.1]))
        items.append(Item(
            rel_path="",
            scene=Scene(identity, _suppressed(expression, cfg), pose, nuisance, size, grey=True, face=face),
            fmt="pixels",
            meta={"usage": usage, "fer2013": old, "votes": _votes(rng, fer_label, face),
                  "image_name": "" if rng.uniform() < f.removed_rows else f"fer{index:07d}.png",
                  "emotion": emotion if face else None},
        ))
    return items


BUILDERS = {"affectnet": build_affectnet, "unbc": build_unbc, "ckplus": build_ckplus, "ferplus": build_ferplus}
