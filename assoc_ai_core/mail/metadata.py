"""What a trained mail model records about itself: versions, data, choices and cross-validated figures.

The model card, the CLI's summary and the registry read this record; it is
saved beside the model in the file's ``assoc_ai.json`` member, so it can be
read without building the model.
"""

from __future__ import annotations

import base64
import hashlib
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sklearn
from sklearn.metrics import accuracy_score, f1_score

from assoc_ai_core import __version__
from assoc_ai_core.mail.thresholds import Calibration, coverage_at_precision, coverage_curve
from assoc_ai_core.persistence import FORMAT_VERSION
from assoc_ai_core.records.mail import Message

__all__ = [
    "TrainingChoices", "training_metadata", "train_digest", "message_digests", "pack_digests", "unpack_digests",
    "DIGEST_BYTES", "DIGESTS_KEY",
]

DIGEST_BYTES = 8  # 2**64 values: a false match between 100,000 training and 100,000 test messages is ~1e-9 likely
DIGESTS_KEY = "train_message_digests"


@dataclass(frozen=True)
class TrainingChoices:
    """What the training chose or was told to do, as recorded in the metadata."""

    C: float
    block_weights: tuple[float, float]
    label_names: bool
    n_splits: int
    target_precision: float
    sender_key_id: str | None = None  # fingerprint of the key of the sender/recipient tokens (None: none learnt)


def train_digest(texts: Sequence[Any] | np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the cleaned training texts and their categories: tells whether two models saw the same mail."""
    digest = hashlib.sha256()
    for text, label in zip(texts, y, strict=True):
        digest.update(str(label).encode() + b"\x00" + str(text).encode("utf-8", "surrogatepass") + b"\x01")
    return digest.hexdigest()


def _message_text(message: Message | str) -> str:
    """The part of a message the digest covers: its subject and text, whitespace made uniform.

    Line endings and wrapping differ between an .eml, an mbox and a CSV copy of the same mail;
    they must not hide that the message was seen at training.
    """
    if isinstance(message, Message):
        return " ".join(message.subject.split()) + "\x00" + " ".join(message.text.split())
    return "\x00" + " ".join(str(message).split())


def message_digests(messages: Sequence[Message | str]) -> np.ndarray:
    """The first ``DIGEST_BYTES`` bytes of a BLAKE2b of each message's subject and text, as unsigned integers."""
    raw = b"".join(
        hashlib.blake2b(_message_text(m).encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()
        for m in messages)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def pack_digests(digests: np.ndarray) -> str:
    """Sorted, deduplicated digests as one base64 text (about 10.7 characters a message) for the metadata."""
    return base64.b64encode(np.unique(digests).astype(">u8").tobytes()).decode("ascii")


def unpack_digests(packed: str) -> np.ndarray:
    """The digests written by :func:`pack_digests`."""
    return np.frombuffer(base64.b64decode(packed), dtype=">u8").astype(np.uint64)


def training_metadata(
    X: Sequence[Message | str], y: np.ndarray, cleaned: np.ndarray, choices: TrainingChoices, cal: Calibration,
) -> dict[str, Any]:
    """The metadata of a model trained on messages ``X`` (cleaned into ``cleaned``) with categories ``y``."""
    classes, counts = np.unique(y, return_counts=True)
    meta_w, history_w = choices.block_weights
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "assoc_ai_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_train": len(y),
        "train_sha256": train_digest(cleaned[:, 0], y),
        # Lets evaluate() tell mail the model was trained on from mail it has not seen.
        DIGESTS_KEY: pack_digests(message_digests(X)),
        "labels": [str(c) for c in classes],
        "per_class": {str(c): {"examples": int(k)} for c, k in zip(classes, counts, strict=True)},
        "rare_categories": [str(c) for c, k in zip(classes, counts, strict=True) if k < 2],
        "C": float(choices.C),
        "block_weights": {"meta": float(meta_w), "history": float(history_w)},
        "label_names": choices.label_names,
        # Whether who wrote and to whom was learnt, and under which key (its fingerprint, never the key).
        "sender_tokens": "keyed" if choices.sender_key_id else "none",
        "sender_key_id": choices.sender_key_id,
        "temperature": float(cal.temperature),
        "cv_folds": int(choices.n_splits),
        "cv_accuracy": float(accuracy_score(y, cal.predicted)),
        "cv_macro_f1": float(f1_score(y, cal.predicted, average="macro")),
        "target_precision": float(choices.target_precision),
        "threshold": float(cal.threshold),
        "expected_auto_share": float(cal.expected_auto_share),
        "cv_auto_precision": float(cal.auto_precision),
        "coverage_at_precision": coverage_at_precision(cal.confidence, cal.correct),
        "coverage_curve": coverage_curve(cal.confidence, cal.correct),
    }
    dates = [m.date for m in X if isinstance(m, Message) and m.date is not None]
    if dates:
        metadata["data_period"] = [min(dates).isoformat(), max(dates).isoformat()]
    return metadata

