"""Features for the strategies that look at the pool itself (density, diverse batches): TF-IDF rows.

Word 1-2 grams with sublinear tf, L2-normalised, float32 (Salton & Buckley 1988), so the cosine
similarity of two titles is a dot product. The vocabulary is learned once, on at most
``max_fit_items`` texts (a sample of a large pool), and ``transform`` then works chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from crowdloop.models.text import check_texts_labels


class TextFeatures:
    """TF-IDF word 1-2 grams of texts (``fit`` then ``transform``; ``fit_transform`` for both)."""

    def __init__(self, max_features: int | None = 2**18, max_fit_items: int = 200_000, random_state: int = 0) -> None:
        self.max_features = max_features
        self.max_fit_items = max_fit_items
        self.random_state = random_state

    def fit(self, texts: Sequence[str] | np.ndarray) -> TextFeatures:
        texts = _texts(texts)
        if len(texts) > self.max_fit_items:
            rows = np.random.default_rng(self.random_state).choice(len(texts), self.max_fit_items, replace=False)
            texts = texts[np.sort(rows)]
        self.vectorizer_ = TfidfVectorizer(
            ngram_range=(1, 2),
            token_pattern=r"(?u)\b\w+\b",
            sublinear_tf=True,
            max_features=self.max_features,
            dtype=np.float32,
        ).fit(texts)
        return self

    def transform(self, texts: Sequence[str] | np.ndarray) -> sp.csr_matrix:
        return self.vectorizer_.transform(_texts(texts)).tocsr()

    def fit_transform(self, texts: Sequence[str] | np.ndarray) -> sp.csr_matrix:
        return self.fit(texts).transform(texts)


def _texts(texts) -> np.ndarray:
    return check_texts_labels(texts, np.zeros(len(np.asarray(texts, dtype=object).ravel())))[0]
