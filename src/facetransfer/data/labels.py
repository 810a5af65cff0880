"""Label vocabularies shared by the generator, the readers and `prepare`.

Every emotion dataset is mapped onto the AffectNet class order, which is the
order the whole pipeline uses (DESIGN.md section 8).
"""

# AffectNet expression ids 0..7; 8 None, 9 Uncertain, 10 Non-Face are dropped.
EMOTIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
AFFECTNET_DROPPED_IDS = (8, 9, 10)

# FER+ vote columns in file order; the first 8 are emotions, the last 2 are dropped.
FERPLUS_VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)
# FER+ emotion index (0..7) -> AffectNet emotion index.
FERPLUS_TO_AFFECTNET = (0, 1, 3, 2, 6, 5, 4, 7)

# Original FER2013 `emotion` column: 0 Angry 1 Disgust 2 Fear 3 Happy 4 Sad 5 Surprise 6 Neutral.
FER2013_TO_AFFECTNET = (6, 5, 4, 1, 2, 3, 0)

# CK+ emotion codes: 0 neutral 1 anger 2 contempt 3 disgust 4 fear 5 happy 6 sadness 7 surprise.
CKPLUS_EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CKPLUS_TO_AFFECTNET = (0, 6, 7, 5, 4, 1, 2, 3)

# The action units the synthetic benchmark renders (FACS numbers).
ACTION_UNITS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 43)

PAIN_CLASSES = ("no_pain", "pain")


def pspi(aus: dict[int, float]) -> float:
    """Prkachin-Solomon pain intensity: AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43.

    AU43 (eyes closed) counts as present (1) or absent (0), as UNBC codes it.
    """
    get = lambda au: float(aus.get(au, 0.0))  # noqa: E731
    return get(4) + max(get(6), get(7)) + max(get(9), get(10)) + (1.0 if get(43) > 0 else 0.0)
