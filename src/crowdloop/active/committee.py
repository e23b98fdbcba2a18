"""A bootstrap committee of one model, for query by committee (Abe & Mamitsuka, ICML 1998: query
by bagging): ``n_members`` clones, each fitted on a bootstrap resample of the labelled items."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.base import clone

from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace
from crowdloop.models import align_proba
from crowdloop.models.text import check_texts_labels


class Committee:
    """Clones of ``model`` on bootstrap resamples; ``predict_proba`` gives (members, n, K) with the
    columns of ``label_space_`` (every label seen in ``fit``; a member that missed a class gives it 0).

    A resample that misses every class but one is drawn again (up to 10 times), so each member can
    tell classes apart.
    """

    def __init__(self, model, n_members: int = 5, random_state: int | None = 0) -> None:
        if not isinstance(n_members, (int, np.integer)) or n_members < 2:
            raise ConfigError(f"a committee needs n_members >= 2, got {n_members!r}")
        self.model = model
        self.n_members = int(n_members)
        self.random_state = random_state

    def fit(self, texts: Sequence[str] | np.ndarray, labels: Sequence[Hashable] | np.ndarray) -> Committee:
        texts, labels = check_texts_labels(texts, labels)
        self.label_space_ = LabelSpace.from_values(labels)
        codes = self.label_space_.encode(labels)
        rng = np.random.default_rng(self.random_state)
        self.members_ = []
        for _ in range(self.n_members):
            for _attempt in range(10):
                rows = rng.integers(len(texts), size=len(texts))
                if len(np.unique(codes[rows])) >= min(2, len(self.label_space_)):
                    break
            self.members_.append(clone(self.model).fit(texts[rows], labels[rows]))
        return self

    def predict_proba(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        return np.stack([align_proba(m.predict_proba(texts), m.classes_, self.label_space_) for m in self.members_])
