"""Typed, validated params: one frozen model per `params.yaml` section.

pydantic does the checking: wrong types (strict mode: no "3" for 3), unknown
keys and out-of-range values are rejected, and `load_section` turns the first
problem into a one-line `ConfigError` naming the file, the key path and what
was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.fsutil import read_yaml
from facetransfer.names import MASKING_METHODS


class ConfigError(ValueError):
    """A params file is missing, unreadable, or has a bad value."""


class TrainingDiverged(ConfigError):
    """Training reached a non-finite loss: the section's settings (the learning rate, most often) do not suit
    the data. Raised by `training.loop.fit` before the epoch is checkpointed, so nothing of it is kept."""


class Frozen(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `.nan` would train a NaN model whose metrics look finished (issue 18)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class IntRange(Frozen):
    """An inclusive integer range [low, high]."""

    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class AffectNetSynth(Frozen):
    train_per_class: dict[str, int] = Field(
        default_factory=lambda: {"neutral": 2200, "happy": 2800, "sad": 900, "surprise": 800,
                                 "fear": 600, "disgust": 450, "anger": 800, "contempt": 450})
    validation_per_class: int = Field(100, gt=0)
    label_noise: float = Field(0.08, ge=0.0, lt=1.0)
    no_emotion_rows: int = Field(40, ge=0)  # expression ids 8-10, dropped by the reader
    conflicting_duplicates: int = Field(150, ge=0)  # images listed again with another label
    negative_box_rows: int = Field(5, ge=0)  # face_width < 0, dropped by the reader
    # wild: AffectNet's look (clutter, uneven light, tilt, occluders; expressions of any strength); lab: as
    # CK+ is recorded (frontal, plain background, steady light, posed strength). The smoke profile uses lab,
    # so that its few images are enough for a model to learn.
    look: Literal["wild", "lab"] = "wild"

    @model_validator(mode="after")
    def _all_classes(self) -> "AffectNetSynth":
        if sorted(self.train_per_class) != sorted(EMOTIONS):
            raise ValueError(f"train_per_class must have exactly the keys {list(EMOTIONS)}")
        if min(self.train_per_class.values()) < 1:
            raise ValueError("train_per_class counts must be >= 1")
        return self


class UnbcSynth(Frozen):
    subjects: int = Field(25, ge=2)
    # ~9,000 frames: enough non-consecutive pain frames for the paper's 500/500 selection.
    sequences_per_subject: int = Field(10, gt=0)
    frames_per_sequence: IntRange = IntRange(low=24, high=48)
    pain_episode_rate: float = Field(0.5, ge=0.0)  # mean pain episodes per sequence


class CkplusSynth(Frozen):
    subjects: int = Field(123, gt=0)
    sequences_per_subject: IntRange = IntRange(low=1, high=4)
    frames_per_sequence: IntRange = IntRange(low=6, high=16)
    emotion_fraction: float = Field(0.55, ge=0.0, le=1.0)
    intensity_not_given: float = Field(0.25, ge=0.0, le=1.0)  # FACS intensity written as 0


class FerplusSynth(Frozen):
    images: int = Field(5000, gt=0)
    not_a_face: float = Field(0.005, ge=0.0, le=1.0)
    removed_rows: float = Field(0.004, ge=0.0, le=1.0)  # empty "Image name" in fer2013new.csv


class SynthConfig(Frozen):
    """`synth`: the synthetic FACS benchmark."""

    seed: int = Field(2022, ge=0)
    image_size: int = Field(64, ge=32, le=512)  # face crop side the renderer aims at
    supersample: int = Field(3, ge=1, le=8)
    workers: int = Field(2, ge=1)
    suppress_aus: tuple[int, ...] = ()
    benchmark: Literal["full", "smoke"] = "full"  # full: the sizes of this section; smoke: `synth --smoke`'s tiny one
    affectnet: AffectNetSynth = AffectNetSynth()
    unbc: UnbcSynth = UnbcSynth()
    ckplus: CkplusSynth = CkplusSynth()
    ferplus: FerplusSynth = FerplusSynth()

    @model_validator(mode="after")
    def _known_aus(self) -> "SynthConfig":
        unknown = sorted(set(self.suppress_aus) - set(ACTION_UNITS))
        if unknown:
            raise ValueError(f"suppress_aus has unknown AUs {unknown}; rendered AUs are {list(ACTION_UNITS)}")
        return self

    def smoke(self) -> "SynthConfig":
        """A tiny benchmark for unit tests: same seed, size and behaviour, few images (models stay at chance)."""
        return self.model_copy(update={
            "benchmark": "smoke",
            "affectnet": AffectNetSynth(train_per_class={c: 12 for c in EMOTIONS}, validation_per_class=6,
                                        no_emotion_rows=3, conflicting_duplicates=4, negative_box_rows=1),
            "unbc": UnbcSynth(subjects=8, sequences_per_subject=2, frames_per_sequence=IntRange(low=14, high=20),
                              pain_episode_rate=1.2),
            "ckplus": CkplusSynth(subjects=16, sequences_per_subject=IntRange(low=1, high=2),
                                  frames_per_sequence=IntRange(low=4, high=6)),
            "ferplus": FerplusSynth(images=120, not_a_face=0.02, removed_rows=0.02),
        })


class AffectNetPrepare(Frozen):
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)


class UnbcPrepare(Frozen):
    test_subjects: tuple[str, ...] = ("101-sy101", "102-sy102", "103-sy103", "104-sy104")
    train_frames: int = Field(900, gt=0)  # split evenly between pain and no pain
    val_frames: int = Field(100, gt=0)

    @model_validator(mode="after")
    def _even(self) -> "UnbcPrepare":
        if (self.train_frames + self.val_frames) % 2:
            raise ValueError("train_frames + val_frames must be even (half pain, half no pain)")
        return self


class CkplusPrepare(Frozen):
    # The upper-face variant blanks everything below this fraction of the way
    # from the nose tip (landmark 33) to the upper lip (landmark 51).
    upper_face_cut: float = Field(0.5, ge=0.0, le=1.0)


class PrepareConfig(Frozen):
    """`prepare`: decode, crop, resize once, split."""

    seed: int = Field(2022, ge=0)
    image_size: int = Field(64, ge=16, le=512)
    # AU region masks are stored for these splits only: training never needs
    # them, and at 224 px they would cost ~107 kB per image.
    mask_splits: tuple[Literal["train", "val", "test", "all"], ...] = ("test", "all")
    missing_images: Literal["error", "skip"] = "error"
    affectnet: AffectNetPrepare = AffectNetPrepare()
    unbc: UnbcPrepare = UnbcPrepare()
    ckplus: CkplusPrepare = CkplusPrepare()


SECTIONS: dict[str, type[Frozen]] = {"synth": SynthConfig, "prepare": PrepareConfig}
T = TypeVar("T", bound=Frozen)


def read_params(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; expected a params YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; expected a params YAML file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_section(path: str | Path, section: str, model: type[T] | None = None) -> T:
    """Load and validate one section of a params file -> frozen config object."""
    model = model or SECTIONS[section]
    data = read_params(path)
    if section not in data:
        raise ConfigError(f"{path}: missing section '{section}'")
    if data[section] is None:  # `section:` with nothing under it: an edit gone wrong, not a wish for defaults
        raise ConfigError(f"{path}: section '{section}' is empty; expected its keys, or `{section}: {{}}` for every "
                          "default")
    if not isinstance(data[section], dict):
        raise ConfigError(f"{path}: section '{section}' is a {type(data[section]).__name__}; "
                          "expected a mapping of keys")
    return parse_section(data[section], model, f"{path}: {section}")


def parse_section(values: dict, model: type[T], where: str) -> T:
    try:
        return model.model_validate(_lists_to_tuples(values))
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        value = first.get("input")
        got = "" if first["type"] == "missing" or isinstance(value, dict) else f" (got {value!r})"
        raise ConfigError(f"{where}.{key}: {first['msg']}{got}".replace(".: ", ": ")) from None


def _lists_to_tuples(value):
    # YAML has lists; frozen configs hold tuples (strict mode will not convert).
    if isinstance(value, list):
        return tuple(_lists_to_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _lists_to_tuples(v) for k, v in value.items()}
    return value


# --- types several sections share, defined once --------------------------------------------

# A FreezeBk's k: how many of VGG16's five conv blocks were kept frozen from the emotion model.
FreezeBlock = Annotated[int, Field(ge=0, le=5)]
# Where a stage computes; auto: CUDA when torch sees a GPU, else the CPU (training.loop.resolve_device).
Device = Literal["auto", "cpu", "cuda"]
# A statistical test's settings: the level a corrected p-value is judged at, and an interval's coverage.
Alpha = Annotated[float, Field(gt=0.0, lt=1.0)]
Confidence = Annotated[float, Field(gt=0.0, lt=1.0)]


# --- training (issue: the transfer sweep) ---------------------------------------------------


class ModelSpec(Frozen):
    """Architecture of the source model; pain and retrained models inherit it from the checkpoint."""

    name: Literal["vgg16"] = "vgg16"
    width: float = Field(0.125, gt=0.0, le=1.0)  # channel multiplier; 1.0 is the paper's VGG16
    # Plain VGG16 at reduced width does not train from scratch here (validation
    # macro recall stayed at chance for 4 epochs); VGG16-BN does.
    batch_norm: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class OptimizerSpec(Frozen):
    """SGD, as in the paper (learning rate 0.01), with an optional learning-rate cut on a validation plateau."""

    lr: float = Field(0.01, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0005, ge=0.0)
    # Multiply the learning rate by lr_decay once validation macro recall has not improved for lr_patience
    # epochs (torch's ReduceLROnPlateau); 1.0 keeps it constant.
    lr_decay: float = Field(1.0, gt=0.0, le=1.0)
    lr_patience: int = Field(3, ge=1)


class LossSpec(Frozen):
    """Focal loss (gamma) with class-balanced weights (Cui et al. 2019, beta; 0 = unweighted)."""

    gamma: float = Field(5.0, ge=0.0)
    class_balance_beta: float = Field(0.99998, ge=0.0, lt=1.0)


class AugmentSpec(Frozen):
    """Random augmentation of training images (Keras ImageDataGenerator terms of the paper)."""

    hflip: bool = True
    rotation: float = Field(0.0, ge=0.0, le=180.0)  # degrees, +-
    shift: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of width/height, +-
    shear: float = Field(0.0, ge=0.0, lt=1.0)  # shear factor (tan of the angle), +-
    zoom: float = Field(0.0, ge=0.0, lt=1.0)  # scale in [1 - zoom, 1 + zoom]
    # Probability of turning a training image grey (not in the paper's list): the CK+ and
    # FER+ images the models are probed and tested on are greyscale, AffectNet is mostly colour.
    grayscale: float = Field(0.0, ge=0.0, le=1.0)

    @property
    def geometric(self) -> bool:
        return not self.rotation == self.shift == self.shear == self.zoom == 0.0

    @property
    def flip_only(self) -> bool:
        return not self.geometric and self.grayscale == 0.0


# Precision of training steps (forward + backward; predictions stay float32 on the CPU). auto: bf16 autocast
# on CUDA, and on a CPU with native bf16 (AMX or AVX512-BF16: 1.6-2x faster VGG16 steps, bench/cpu_kernels.py),
# else float32. The precision used is recorded in each model's payload and run.
Precision = Literal["auto", "float32", "bfloat16"]


class TrainSettings(Frozen):
    """What every training stage shares: seed, device, the loop's knobs."""

    seed: int = Field(2022, ge=0)
    device: Device = "auto"
    precision: Precision = "auto"
    # DataLoader worker processes; auto: none on the CPU (they would take the cores the steps use),
    # min(8, CPU count) with pinned memory on CUDA. Results do not depend on it (data.sample_seed).
    loader_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    # torch CPU threads of the training steps: fixed, because the count changes a CPU run's numbers (the
    # committed results are 2-thread runs); more than the machine's cores is slower, not different.
    threads: int = Field(2, gt=0)
    epochs: int = Field(10, gt=0)  # the most epochs; fewer when `patience` stops the run
    # Stop once validation macro recall has not improved for this many epochs (0: run every epoch);
    # the best epoch is kept either way.
    patience: int = Field(0, ge=0)
    batch_size: int = Field(64, gt=0)
    optimizer: OptimizerSpec = OptimizerSpec()
    loss: LossSpec = LossSpec()
    augment: AugmentSpec = AugmentSpec()


class TrainEmotionConfig(TrainSettings):
    """`train_emotion`: the source model on AffectNet(-like) train, 8 classes."""

    model: ModelSpec = ModelSpec()
    init: Literal["scratch", "imagenet"] = "scratch"
    epochs: int = Field(60, gt=0)
    patience: int = Field(8, ge=0)
    optimizer: OptimizerSpec = OptimizerSpec(lr_decay=0.1)
    augment: AugmentSpec = AugmentSpec(grayscale=0.2)


class StudyConfig(Frozen):
    """`study`: the training seeds every pain model and retrained head is replicated over (a DVC matrix).

    A verdict such as "FreezeB0 forgot contempt" must survive a new seed: the forgetting stage tests
    across these seeds (the seed is the unit of replication). The single-seed detail analyses (LRP
    grids, necessity, units, probes) read the models of `detail_seed`.
    """

    seeds: tuple[int, ...] = (2022, 2023, 2024)
    detail_seed: int = Field(2022, ge=0)

    @model_validator(mode="after")
    def _seeds(self) -> "StudyConfig":
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, at least one, got {list(self.seeds)}")
        if self.detail_seed not in self.seeds:
            raise ValueError(f"detail_seed {self.detail_seed} must be one of seeds {list(self.seeds)}")
        return self


class _SeedFromCommandLine(Frozen):
    """A section whose `seed` field comes from the command line (`--seed`, one run per `study.seeds`)."""

    @model_validator(mode="after")
    def _no_seed_key(self):
        if "seed" in self.model_fields_set:
            raise ValueError("seed is not a key of this section: each run's seed is one of study.seeds "
                             "(given as --seed)")
        return self

    def with_seed(self, seed: int):
        return self.model_copy(update={"seed": seed})


class _SeedPerRun(TrainSettings, _SeedFromCommandLine):
    """A training section whose seed comes from the command line (`--seed`, one run per `study.seeds`)."""


class TrainPainConfig(_SeedPerRun):
    """`train_pain`: copy the emotion model, freeze the first k conv blocks, fine-tune to pain."""

    freeze_blocks: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4, 5)
    epochs: int = Field(15, gt=0)
    batch_size: int = Field(32, gt=0)
    loss: LossSpec = LossSpec(gamma=2.0, class_balance_beta=0.0)
    augment: AugmentSpec = AugmentSpec(rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)

    @model_validator(mode="after")
    def _blocks(self) -> "TrainPainConfig":
        if not self.freeze_blocks or any(not 0 <= k <= 5 for k in self.freeze_blocks):
            raise ValueError(f"freeze_blocks must list block counts in 0..5, got {list(self.freeze_blocks)}")
        return self


class HeadSettings(TrainSettings):
    """A new 8-class head trained on a frozen model's features (retrain_emotion, controls.head)."""

    cached_features: bool = True  # exact when hflip is the only augmentation (see training/cached.py)


class RetrainEmotionConfig(_SeedPerRun, HeadSettings):
    """`retrain_emotion`: conv of a pain model frozen, a new 8-class head trained on emotions."""


class DistributedConfig(Frozen):
    """`distributed`: how many processes train one model (data parallel: torch DistributedDataParallel under
    torchrun; docs/scaling.md). The training commands rerun themselves under torchrun when more than one is
    asked for. Each process takes batch_size / (nproc_per_node x nnodes) images of every batch: the global
    batch, and the images of each epoch, stay those of the one-process run."""

    nproc_per_node: int = Field(1, ge=1)  # processes per machine: one per GPU (or a few CPU processes)
    # Machines; above 1, every one runs the same command with the same params, and its environment says which
    # it is: PET_NODE_RANK=0 on the machine that writes the outputs (and runs dvc), 1.. on the others.
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: str = ""  # host:port on machine 0 where the others meet it, when nnodes > 1

    @model_validator(mode="after")
    def _endpoint(self) -> "DistributedConfig":
        if self.nnodes > 1 and ":" not in self.rdzv_endpoint:
            raise ValueError(f"rdzv_endpoint must be host:port when nnodes is {self.nnodes}, got "
                             f"{self.rdzv_endpoint!r}")
        return self


SECTIONS.update({"study": StudyConfig, "train_emotion": TrainEmotionConfig, "train_pain": TrainPainConfig,
                 "retrain_emotion": RetrainEmotionConfig, "distributed": DistributedConfig})


class ForgettingConfig(Frozen):
    """`forgetting`: recall table, McNemar per class against the reference, the trade-off."""

    freeze_blocks: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4, 5)
    reference: FreezeBlock = 5  # FreezeB5 kept all emotion conv blocks
    confidence: Confidence = 0.95
    trade_off_classes: int = Field(2, ge=0, le=8)  # most forgotten emotions drawn beside the macro trade-off

    @model_validator(mode="after")
    def _reference_listed(self) -> "ForgettingConfig":
        if self.reference not in self.freeze_blocks:
            raise ValueError(f"reference {self.reference} must be one of freeze_blocks {list(self.freeze_blocks)}")
        return self


SECTIONS["forgetting"] = ForgettingConfig


class ConceptsConfig(Frozen):
    """`concepts`: linear SVM probes for AUs on CK+ peak frames, FreezeB<reference> vs each compared model."""

    seed: int = Field(2022, ge=0)
    device: Device = "auto"
    aus: tuple[int, ...] = (5, 14, 4, 6, 12)  # the paper's two candidates, then pain-relevant controls
    ranking_top: int = Field(1, ge=0)  # + the top n significant AUs per pair and class of the saliency ranking
    upper_face_aus: tuple[int, ...] = (5,)  # probed on upper.npy (mouth blanked): AU5 apart from AU26
    reference: FreezeBlock = 5
    compare: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4)
    # 2-fold CV: the corrected test's variance factor is 1/J + n_test/n_train = 1/J + ~1, so J = 50 repeats
    # gives 1.02 and J = 500 gives 1.002: intervals 0.9 % narrower for 10x the work. 5x2cv uses the first 5.
    repeats: int = Field(50, ge=5)
    blocks: tuple[int, ...] = (4, 5)  # conv blocks whose output is probed (the paper: 5, its block5_pool)
    svm_c: float = Field(1.0, gt=0.0)
    class_weight: Literal["none", "balanced"] = "none"
    alpha: Alpha = 0.05  # a concept counts as forgotten at this Holm-corrected level
    confidence: Confidence = 0.95
    workers: int = Field(2, ge=1)
    batch_size: int = Field(256, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "ConceptsConfig":
        unknown = sorted(set(self.aus) - set(ACTION_UNITS))
        if unknown or not self.aus:
            raise ValueError(f"aus must be non-empty and among {list(ACTION_UNITS)}, got {list(self.aus)}")
        if not set(self.upper_face_aus) <= set(self.aus):
            raise ValueError(f"upper_face_aus {list(self.upper_face_aus)} must be listed in aus {list(self.aus)}")
        if not self.compare or any(not 0 <= k <= 5 or k == self.reference for k in self.compare):
            raise ValueError(f"compare must list freeze blocks in 0..5 other than the reference {self.reference}, "
                             f"got {list(self.compare)}")
        if not self.blocks or any(not 1 <= b <= 5 for b in self.blocks) or len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"blocks must list distinct conv blocks in 1..5, got {list(self.blocks)}")
        return self


SECTIONS["concepts"] = ConceptsConfig


class SaliencyConfig(Frozen):
    """`saliency`: LRP maps of images the reference got right and FreezeBk wrong, AU ranking, localisation."""

    device: Device = "auto"
    reference: FreezeBlock = 5
    compare: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4)
    max_images_per_class: int = Field(100, gt=0)  # right-by-reference, wrong-by-model images per class and pair
    grid_images: int = Field(6, gt=0)  # rows per figure grid (input | reference | model | difference)
    localisation_images: int = Field(0, ge=0)  # test images scored per model; 0 = all with AU regions
    gradcam_threshold: float = Field(0.5, gt=0.0, le=1.0)  # of each map's maximum, for DICE / IoU
    alpha: Alpha = 0.05  # AU ranking: Holm-corrected Wilcoxon level
    confidence: Confidence = 0.95  # of the across-seed interval of each AU's difference
    # An AU is ranked only on >= this many contrast images showing it. 6 is the smallest n at which
    # an exact two-sided Wilcoxon can reach p < 0.05 (2 / 2**6); at 5 it cannot (0.0625) and would
    # only enlarge the Holm family.
    min_images: int = Field(6, ge=1)
    batch_size: int = Field(64, gt=0)

    @model_validator(mode="after")
    def _pairs(self) -> "SaliencyConfig":
        if not self.compare or any(not 0 <= k <= 5 or k == self.reference for k in self.compare):
            raise ValueError(f"compare must list freeze blocks in 0..5 other than the reference {self.reference}, "
                             f"got {list(self.compare)}")
        return self


SECTIONS["saliency"] = SaliencyConfig


class NecessityConfig(Frozen):
    """`necessity`: each model's recall per class with one AU switched off (counterfactual test images)."""

    device: Device = "auto"
    freeze_blocks: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4, 5)  # retrained FreezeBk scored beside the source model
    confidence: Confidence = 0.95  # of the drop's paired interval
    alpha: Alpha = 0.05  # a drop counts as real when its Holm-corrected p is below this
    batch_size: int = Field(256, gt=0)


SECTIONS["necessity"] = NecessityConfig


class PerceptiveSpec(Frozen):
    """Perceptive masking (Schiller et al. 2020, after Blignaut 2010), scaled to the 64 px default.

    The paper's set-up: 70 cm from a 27" 2560x1440 screen (59.8 cm wide: 42.8 px/cm), images
    shown at 1200 px, a 5 degree visual angle. Visual span = 2 * 70 cm * tan(2.5 deg) = 6.11 cm
    = 262 screen px = 0.218 of the image = 14.0 px at 64 px. FWHM = 40 % of the span = 5.6 px.
    Threshold: one Gaussian's value at half the span from its centre,
    exp(-(7.0 px)^2 / (2 c^2)) with c = 5.6 / 2.355 = 2.38 px: 0.013 (a pixel counts as
    perceived when it lies within the visual span of some fixation). n: the paper's mean
    number of fixations is not given in its text; 10 is our choice.
    """

    n_points: int = Field(10, gt=0)
    visual_span_px: float = Field(14.0, gt=0.0)
    threshold: float = Field(0.013, gt=0.0)

    @property
    def fwhm_px(self) -> float:
        return 0.4 * self.visual_span_px  # Blignaut (2010): FWHM = 40 % of the visual span


class MaskConfig(Frozen):
    """`mask`: masked copies of the trainee's training split, from the emotion model's LRP maps."""

    device: Device = "auto"
    split: Literal["train", "val", "test"] = "train"
    negative_fraction: float = Field(0.10, gt=0.0, lt=1.0)
    perceptive: PerceptiveSpec = PerceptiveSpec()
    sample_images: int = Field(6, gt=0)  # rows of each method's sample sheet
    batch_size: int = Field(64, gt=0)


SECTIONS["mask"] = MaskConfig


class TraineeModel(Frozen):
    """The trainee architecture (models/trainees.py), from scratch: a ResNet-10 by default, as the paper's
    MobileNetV2 does not leave the class prior on the 64 px benchmark in the epochs a CPU run affords."""

    name: Literal["resnet10", "resnet18", "mobilenet_v2"] = "resnet10"
    width: float = Field(1.0, gt=0.0, le=1.0)  # MobileNetV2's width multiplier; the ResNets take none

    @property
    def title(self) -> str:
        """How figures and reports name it."""
        return {"resnet10": "ResNet-10", "resnet18": "ResNet-18", "mobilenet_v2": "MobileNetV2"}[self.name]

    @model_validator(mode="after")
    def _width(self) -> "TraineeModel":
        if self.width != 1.0 and self.name != "mobilenet_v2":
            raise ValueError(f"width: only mobilenet_v2 takes a width multiplier, got width {self.width} "
                             f"for {self.name}")
        return self


class TraineeConfig(_SeedFromCommandLine):
    """`trainee`: a model of another architecture than the trainer, from scratch on the FER+-like train split,
    plain or masked (Schiller et al. 2020); every variant is trained once per `study.seeds` (the seed comes
    as --seed)."""

    seed: int = Field(2022, ge=0)
    variants: tuple[str, ...] = ("plain", "negative", "mean", "perceptive",
                                 "negative-then-plain", "mean-then-plain", "perceptive-then-plain")
    model: TraineeModel = TraineeModel()
    epochs: int = Field(10, gt=0)
    switch_epoch: int = Field(5, gt=0)  # "-then-plain": masked epochs before plain ones (paper: 9 of its run)
    batch_size: int = Field(32, gt=0)  # the paper's Adam, batch 32, cross-entropy
    lr: float = Field(0.001, gt=0.0)  # the paper's
    hflip: bool = True
    target_f1: float = Field(0.3, gt=0.0, le=1.0)  # "steps to reach" this validation macro F1
    threads: int = Field(1, gt=0)  # torch threads per variant: fixed, so the numbers do not depend on the machine
    # variants trained side by side (results do not depend on it); workers x threads <= cores
    workers: int = Field(2, gt=0)

    @model_validator(mode="after")
    def _known(self) -> "TraineeConfig":
        known = {"plain", *MASKING_METHODS} | {f"{m}-then-plain" for m in MASKING_METHODS}
        unknown = sorted(set(self.variants) - known)
        if unknown or not self.variants:
            raise ValueError(f"variants must be among {sorted(known)}, got {list(self.variants)}")
        return self


SECTIONS["trainee"] = TraineeConfig


class ReportConfig(Frozen):
    """`report`: what the one-page HTML report embeds."""

    # FreezeBk whose LRP grids (vs the reference) are embedded; ~2.5 MB each
    grid_models: tuple[FreezeBlock, ...] = (0,)
    ranking_top: int = Field(3, gt=0)  # AUs shown per class and model pair from the saliency ranking


SECTIONS["report"] = ReportConfig


class AttentionStudyConfig(Frozen):
    """`attention_study`: VGG16 +- SE / CBAM, scratch vs pretrained, k-fold on CK+ (Arabian et al. 2022)."""

    seed: int = Field(2022, ge=0)
    device: Device = "auto"
    precision: Precision = "auto"  # of training steps, as TrainSettings.precision
    threads: int = Field(2, gt=0)  # torch CPU threads of the training steps, as TrainSettings.threads
    # pretrained = the emotion source model; imagenet = torchvision's weights from the local cache (width 1.0)
    inits: tuple[Literal["scratch", "pretrained", "imagenet"], ...] = ("scratch", "pretrained")
    attentions: tuple[Literal["none", "se", "cbam"], ...] = ("none", "se", "cbam")
    after_blocks: tuple[int, ...] = (2, 3, 4)  # conv blocks (1-based) followed by an attention module
    reduction: int = Field(16, gt=0)  # hidden channels = C // reduction (SE and CBAM papers)
    folds: int = Field(5, ge=2)  # subject-disjoint folds (the paper used 10)
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(50, gt=0)  # the paper's
    lr: float = Field(0.01, gt=0.0)  # the paper's SGD lr is 1e-4 (at 224 px, many more steps)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    augment: AugmentSpec = AugmentSpec()
    gradcam_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # Grad-CAM map >= this -> attended, for DICE / IoU


SECTIONS["attention_study"] = AttentionStudyConfig


class CkaConfig(Frozen):
    """`cka`: representation drift per conv block, linear CKA between the source model and each pain model
    (every seed) and each control, on the same emotion test images (Kornblith et al. 2019)."""

    device: Device = "auto"
    freeze_blocks: tuple[FreezeBlock, ...] = (0, 1, 2, 3, 4, 5)
    max_images: int = Field(800, gt=2)  # AffectNet-like test images compared (the first n, in test-list order)
    confidence: Confidence = 0.95  # of the across-seed interval of each block's CKA
    batch_size: int = Field(128, gt=0)


SECTIONS["cka"] = CkaConfig


class UnitsConfig(Frozen):
    """`units`: last-conv units as AU detectors (Khorrami et al.) in the emotion model and pain models."""

    device: Device = "auto"
    compare: tuple[FreezeBlock, ...] = (0, 5)  # pain models FreezeBk analysed beside the emotion model
    track_aus: tuple[int, ...] = (5, 14)  # AUs whose emotion-model detector units are followed into the pain models
    auc_min: float = Field(0.75, gt=0.5, le=1.0)  # a detector's ROC AUC for AU presence
    lift_min: float = Field(1.5, gt=0.0)  # and its activation's share in the AU region / the region's area share
    top_k: int = Field(6, gt=0)  # top-activating images shown per tracked unit
    patch: int = Field(24, gt=0)  # side of the shown patches (pixels)
    batch_size: int = Field(64, gt=0)

    @field_validator("track_aus")
    @classmethod
    def _known_aus(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        from facetransfer.data.labels import ACTION_UNITS

        unknown = [au for au in value if au not in ACTION_UNITS]
        if unknown:
            raise ValueError(f"unknown AUs {unknown}; the benchmark has {list(ACTION_UNITS)}")
        return value


SECTIONS["units"] = UnitsConfig


# --- planted-forgetting controls (issue 9) ----------------------------------------------------

class ControlFineTune(TrainSettings):
    """How a control is fine-tuned from the emotion model: every block trainable, as train_emotion otherwise."""

    epochs: int = Field(15, gt=0)  # after 5 epochs the AU5 plant took with one seed and not with another
    augment: AugmentSpec = AugmentSpec(grayscale=0.2)
    fresh_head: bool = True  # a new head, so the features must re-adapt to the (suppressed) data


class ControlsConfig(Frozen):
    """`controls`: the study's analyses on models with a known answer (source vs planted / negative controls)."""

    device: Device = "auto"
    suppress_aus: tuple[int, ...] = (14, 5)  # one positive control per AU: AffectNet-like train re-rendered without it
    dependent_class: dict[int, str] = Field(default_factory=lambda: {14: "contempt", 5: "surprise"})
    fine_tune: ControlFineTune = ControlFineTune()
    negative_seed: int = Field(2023, ge=0)  # the negative control: same fine-tuning, unmodified data, this seed
    # More negative controls (negative_seed<s>): how often does each analysis flag something when nothing was planted?
    extra_negative_seeds: tuple[int, ...] = (2024, 2025, 2026, 2027)
    # More fine-tunings of each positive control (suppress_au<N>_seed<s>): its dependent class's recall is tested
    # across seeds against the negatives' (`recall_dropped_across_seeds`); the other checks read suppress_au<N>.
    extra_positive_seeds: tuple[int, ...] = (2028, 2029)
    head: HeadSettings = HeadSettings()  # every model's head retrained on unmodified data, as the study
    probe_aus: tuple[int, ...] = (14, 5, 4, 6, 12)
    upper_face_aus: tuple[int, ...] = (5,)
    repeats: int = Field(50, ge=5)  # as concepts.repeats
    svm_c: float = Field(1.0, gt=0.0)
    max_images_per_class: int = Field(100, gt=0)
    min_images: int = Field(6, ge=1)  # as SaliencyConfig.min_images
    alpha: Alpha = 0.05
    confidence: Confidence = 0.95
    # A line of evidence counts as calibrated when the same check fires on at most this share of the negatives.
    max_false_alarm_rate: float = Field(0.2, ge=0.0, le=1.0)
    workers: int = Field(2, ge=1)
    batch_size: int = Field(64, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "ControlsConfig":
        for field, aus in (("suppress_aus", self.suppress_aus), ("probe_aus", self.probe_aus),
                           ("upper_face_aus", self.upper_face_aus)):
            unknown = sorted(set(aus) - set(ACTION_UNITS))
            if unknown:
                raise ValueError(f"{field} has unknown AUs {unknown}; the benchmark has {list(ACTION_UNITS)}")
        if sorted(self.dependent_class) != sorted(self.suppress_aus):
            raise ValueError(f"dependent_class must name one class for each of suppress_aus {list(self.suppress_aus)}, "
                             f"got keys {sorted(self.dependent_class)}")
        bad = sorted(c for c in self.dependent_class.values() if c not in EMOTIONS)
        if bad:
            raise ValueError(f"dependent_class has unknown classes {bad}; choose from {list(EMOTIONS)}")
        if not set(self.suppress_aus) <= set(self.probe_aus) or not set(self.upper_face_aus) <= set(self.probe_aus):
            raise ValueError(f"probe_aus {list(self.probe_aus)} must include suppress_aus and upper_face_aus")
        if self.negative_seed == self.fine_tune.seed:
            raise ValueError(f"negative_seed must differ from fine_tune.seed ({self.fine_tune.seed})")
        seeds = [self.negative_seed, *self.extra_negative_seeds]
        if len(set(seeds)) != len(seeds) or self.fine_tune.seed in seeds:
            raise ValueError(f"extra_negative_seeds {list(self.extra_negative_seeds)} must be distinct and differ from "
                             f"negative_seed ({self.negative_seed}) and fine_tune.seed ({self.fine_tune.seed})")
        positive = [self.fine_tune.seed, *self.extra_positive_seeds]
        if len(set(positive)) != len(positive) or set(positive) & set(seeds):
            raise ValueError(f"extra_positive_seeds {list(self.extra_positive_seeds)} must be distinct and differ from "
                             f"fine_tune.seed ({self.fine_tune.seed}) and every negative seed {seeds}")
        return self

    def probes(self) -> ConceptsConfig:
        """The concept-probe settings in the form the concepts stage's core takes."""
        return ConceptsConfig(seed=self.fine_tune.seed, device=self.device, aus=self.probe_aus,
                              upper_face_aus=self.upper_face_aus, repeats=self.repeats, svm_c=self.svm_c,
                              alpha=self.alpha, confidence=self.confidence, workers=self.workers, blocks=(5,))


SECTIONS["controls"] = ControlsConfig
