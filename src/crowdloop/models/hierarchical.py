r"""Hierarchical mode for taxonomies: per-level heads combined by path scoring.

A flat model over 1,000 leaves spreads its doubt over siblings; a head trained on the 30 top-level
branches alone sees 30 well-filled classes and is surer and more often right about the branch. The
``HierarchicalClassifier`` trains one head per chosen depth $d_1 < \dots < d_m$ (labels cut to
their ancestor at that depth; a shallower label keeps itself) plus the leaf head, and scores a path
by the chain rule (the top-down "local classifier per level" of Silla & Freitas, DMKD 2011, with
probabilistic path scores as in Ramírez-Corona et al., Pattern Recognition Letters 2016):

$$P(c \mid x) = P_1(a_{d_1}(c)) \prod_{j \ge 2} \frac{P_j(a_{d_j}(c))}{\sum_{b:\,a_{d_{j-1}}(b) = a_{d_{j-1}}(c)}
P_j(b)}$$

where $P_j$ is head $j$'s (calibrated) distribution and $a_d(c)$ the ancestor of $c$ at depth $d$.
Each factor is head $j$'s opinion *within* the branch the earlier heads chose, so the result is a
distribution over the leaves whose marginal at depth $d_1$ is exactly the top head's: an unsure
leaf (two siblings at 0.5) still carries a sure branch (their parent at 0.99), and
``ancestor_proba`` or ``deepest_confident`` reads it off.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from crowdloop.errors import ConfigError
from crowdloop.labels import Taxonomy
from crowdloop.models.oof import align_proba
from crowdloop.models.protocol import fit_model
from crowdloop.models.text import TextClassifier, check_sample_weight, check_texts_labels


class HierarchicalClassifier(ClassifierMixin, BaseEstimator):
    """Per-level heads (clones of ``base``) over a taxonomy, combined by chain-rule path scoring.

    Parameters
    ----------
    base : the model cloned for every head (default ``TextClassifier()``); any estimator with
        ``fit`` / ``predict_proba`` / ``classes_``.
    depths : depths of the branch heads (1 = top level); the leaf head (all labels) is always
        added. ``None``: every depth of the taxonomy (cost grows with the classes of all heads).
    separator : the path separator of the labels (``A > B > C``).

    Fitted: ``classes_`` (the training labels, sorted), ``taxonomy_`` (built from them),
    ``depths_`` (depths of the heads used, the leaf head last as the maximum depth), ``heads_``.

    >>> texts = ["red shirt", "blue shirt", "shirt tee", "tee shirt", "oak lamp", "lamp bulb"] * 3
    >>> labels = ["Wear > Shirt", "Wear > Shirt", "Wear > Tee", "Wear > Tee", "Home > Lamp", "Home > Lamp"] * 3
    >>> model = HierarchicalClassifier(TextClassifier(cv=2)).fit(texts, labels)
    >>> model.depths_, model.predict(["lamp"]).tolist()
    ([1, 2], ['Home > Lamp'])
    """

    def __init__(self, base: object | None = None, depths: Sequence[int] | None = (1,), separator: str = " > ") -> None:
        self.base = base
        self.depths = depths
        self.separator = separator

    def fit(
        self,
        texts: Sequence[str] | np.ndarray,
        labels: Sequence[Hashable] | np.ndarray,
        sample_weight: Sequence[float] | np.ndarray | None = None,
    ) -> HierarchicalClassifier:
        """Fit one head per depth on the labels cut to that depth, and the leaf head on the labels."""
        texts, labels = check_texts_labels(texts, labels)
        weight = check_sample_weight(sample_weight, len(texts))
        names = pd.Series(labels).astype(str)
        self.taxonomy_ = Taxonomy.from_paths(sorted(names.unique()), separator=self.separator)
        codes = self.taxonomy_.encode(names.to_numpy(dtype=object))
        self.classes_ = np.asarray(sorted(names.unique()), dtype=object)
        leaf_depth = int(self.taxonomy_.depth[codes].max())
        wanted = range(1, leaf_depth + 1) if self.depths is None else self.depths
        if any(not isinstance(d, (int, np.integer)) or d < 1 for d in wanted):
            raise ConfigError(f"depths must be integers >= 1, got {list(wanted)!r}")
        depths = [*sorted({int(d) for d in wanted if d < leaf_depth}), leaf_depth]
        base = self.base if self.base is not None else TextClassifier()
        self.depths_, self.heads_ = [], []
        previous = None
        for depth in depths:
            cut = self.taxonomy_.ancestor_at(codes, depth)
            if previous is not None and np.array_equal(cut, previous):
                continue  # same classes as the head above: it would add nothing
            head_labels = self.taxonomy_.decode(cut)
            head = fit_model(clone(base), texts, head_labels, weight)
            self.depths_.append(depth)
            self.heads_.append(head)
            previous = cut
        self._leaf_codes = self.taxonomy_.encode(self.classes_)
        return self

    def level_proba(self, texts: Sequence[str] | np.ndarray) -> list[np.ndarray]:
        """Each head's own distribution, columns on the taxonomy's codes (n, K_tax), in ``depths_`` order."""
        return [align_proba(h.predict_proba(texts), h.classes_, self.taxonomy_) for h in self.heads_]

    def predict_proba(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """Path-scored probabilities (n, len(classes_)); the marginal at the first head's depth is that head's."""
        texts = np.asarray(texts, dtype=object).ravel()
        n_tax = len(self.taxonomy_)
        log_p = np.zeros((len(texts), len(self._leaf_codes)))
        above = None
        for depth, probs in zip(self.depths_, self.level_proba(texts), strict=True):
            node = self.taxonomy_.ancestor_at(self._leaf_codes, depth)
            if above is None:
                factor = probs[:, node]
            else:  # the head's mass within the branch chosen above
                parent = self.taxonomy_.ancestor_at(np.arange(n_tax), above)
                to_parent = sp.csr_matrix((np.ones(n_tax), (np.arange(n_tax), parent)), shape=(n_tax, n_tax))
                branch_mass = np.asarray(probs @ to_parent)
                mass = branch_mass[:, self.taxonomy_.ancestor_at(self._leaf_codes, above)]
                factor = np.divide(probs[:, node], mass, out=np.zeros_like(mass), where=mass > 0)
            with np.errstate(divide="ignore"):
                log_p += np.log(factor)
            above = depth
        peak = log_p.max(axis=1, keepdims=True, initial=-np.inf, where=np.isfinite(log_p))
        log_p -= np.where(np.isfinite(peak), peak, 0.0)
        out = np.exp(log_p)
        sums = out.sum(axis=1, keepdims=True)
        return np.divide(out, sums, out=np.full_like(out, 1.0 / out.shape[1]), where=sums > 0)

    def predict(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]
