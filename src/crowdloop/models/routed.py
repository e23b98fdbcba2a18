"""Cross-fitted models that label every text with the model that never saw its fold of the gold.

``K`` models are fitted, model ``f`` on everything but the gold whose text falls in fold ``f``
(``text_folds``: a stable hash of the normalized text, so copies of a title share a fold). A text,
gold or not, is labelled by the model of its own fold. Every gold item is then predicted by a model
that never trained on it, by the very rule that labels the open items: the whole gold is a
held-out sample of the labelling procedure (cross-fitting, Chernozhukov et al. 2018, "Double/debiased
machine learning"), where serving one fold's model would leave only its own fold as evidence.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdloop.models.text import normalize_text


def text_folds(texts: Sequence[str] | np.ndarray, n_folds: int) -> np.ndarray:
    """The fold (0..n_folds-1) of each text: CRC-32 of its normalized form, modulo ``n_folds``
    (the same in every process and version, unlike Python's salted ``hash``)."""
    keys = normalize_text(texts)
    return np.array([zlib.crc32(str(k).encode()) % n_folds for k in keys], dtype=np.int64)


@dataclass
class FoldRouted:
    """The fold models (model ``f`` fitted without the gold of fold ``f``), each text predicted by
    the model of its own fold (module docstring)."""

    models: list[Any]

    def folds(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """The fold, and so the model, of each text."""
        return text_folds(texts, len(self.models))
