r"""Query strategies: which pool items deserve the next answers (batch mode).

Every strategy has the same two methods:

- ``score(probs=None, features=None, *, n=None, rng=None)``: a row-wise score of pool items,
  higher = ask first. Row-wise means a pool scored chunk by chunk gets the same scores as scored
  whole (``crowdloop.active.pool.score_pool`` relies on it).
- ``select(batch_size, *, probs=None, features=None, labeled_features=None, random_state=None)``:
  the row indices of the next batch, best first (the top scores, unless the strategy is not
  ``rowwise``: a diverse batch, or a selection rule of another library wrapped as a strategy).

``needs`` says what a strategy reads: ``"probs"`` (the model's (n, K) probabilities),
``"committee"`` ((members, n, K) from ``Committee``), ``"features"`` (an (n, d) feature matrix,
e.g. TF-IDF), or nothing. The names in ``STRATEGIES`` are what ``make_strategy`` and the
``crowdloop select`` command take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from crowdloop.active import scores
from crowdloop.active.diversity import k_center_greedy, kmeans_plus_plus
from crowdloop.errors import ConfigError, InputError


def top_batch(values: np.ndarray, batch_size: int) -> np.ndarray:
    """Indices of the ``batch_size`` largest values, largest first (ties: lower index first)."""
    values = np.asarray(values, dtype=np.float64)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise ConfigError(f"batch size must be a non-negative integer, got {batch_size!r}")
    batch_size = min(int(batch_size), len(values))
    if batch_size == 0:
        return np.empty(0, dtype=np.int64)
    keys = np.where(np.isnan(values), -np.inf, values)
    return np.argsort(-keys, kind="stable")[:batch_size].astype(np.int64)


def _rows(probs, features, n) -> int:
    if probs is not None:
        return np.asarray(probs).shape[-2]
    if features is not None:
        return features.shape[0]
    if n is None:
        raise InputError("give probabilities, features or the number of pool items")
    return int(n)


class Strategy:
    """Base class: scores rows, selects the top ``batch_size`` scores."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    rowwise: ClassVar[bool] = True
    """False for a strategy whose ``select`` needs the whole pool at once (it then overrides ``select``)."""

    def score(self, probs=None, features=None, *, n: int | None = None, rng=None) -> np.ndarray:
        raise NotImplementedError

    def select(
        self,
        batch_size: int,
        *,
        probs: np.ndarray | None = None,
        features: np.ndarray | sp.spmatrix | None = None,
        labeled_features: np.ndarray | sp.spmatrix | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """The next batch (row indices, best first)."""
        rng = np.random.default_rng(random_state)
        return top_batch(self.score(probs, features, rng=rng), batch_size)

    def _require(self, probs, features) -> None:
        missing = [what for what, value in (("probs", probs), ("features", features)) if value is None]
        missing = [m for m in missing if m in self.needs or (m == "probs" and "committee" in self.needs)]
        if missing:
            raise InputError(f"strategy {self.name!r} needs {' and '.join(missing)}")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


class RandomSampling(Strategy):
    """Uniform random scores: the baseline every strategy must beat."""

    name = "random"

    def score(self, probs=None, features=None, *, n=None, rng=None) -> np.ndarray:
        return np.random.default_rng(rng).random(_rows(probs, features, n))


class UncertaintySampling(Strategy):
    """Uncertainty sampling (Lewis & Gale 1994): ``measure`` is least_confidence, margin or entropy."""

    needs = frozenset({"probs"})
    MEASURES: ClassVar[dict[str, Callable[[np.ndarray], np.ndarray]]] = {
        "least_confidence": scores.least_confidence,
        "margin": scores.margin,
        "entropy": scores.entropy,
    }

    def __init__(self, measure: str = "margin") -> None:
        if measure not in self.MEASURES:
            raise ConfigError(f"unknown uncertainty measure {measure!r}; use one of {', '.join(self.MEASURES)}")
        self.measure = measure

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.measure

    def score(self, probs=None, features=None, *, n=None, rng=None) -> np.ndarray:
        self._require(probs, features)
        return self.MEASURES[self.measure](probs)


class QueryByCommittee(Strategy):
    """Query by committee (Seung et al. 1992) over a bootstrap committee of the model (``Committee``):
    ``measure`` is vote_entropy (Dagan & Engelson 1995) or kl (McCallum & Nigam 1998)."""

    needs = frozenset({"committee"})
    MEASURES: ClassVar[dict[str, Callable[[np.ndarray], np.ndarray]]] = {
        "vote_entropy": scores.vote_entropy,
        "kl": scores.kl_to_consensus,
    }

    def __init__(self, measure: str = "vote_entropy", n_members: int = 5) -> None:
        if measure not in self.MEASURES:
            raise ConfigError(f"unknown committee measure {measure!r}; use one of {', '.join(self.MEASURES)}")
        if not isinstance(n_members, (int, np.integer)) or n_members < 2:
            raise ConfigError(f"a committee needs n_members >= 2, got {n_members!r}")
        self.measure = measure
        self.n_members = int(n_members)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "qbc" if self.measure == "vote_entropy" else "qbc_kl"

    def score(self, probs=None, features=None, *, n=None, rng=None) -> np.ndarray:
        """``probs`` is the committee's (members, n, K) array. Vote entropy ties (common with few
        members) are broken by the KL disagreement, scaled below the smallest vote-entropy step."""
        self._require(probs, features)
        kl = scores.kl_to_consensus(probs)
        if self.measure == "kl":
            return kl
        return scores.vote_entropy(probs) + 1e-3 * kl / (1.0 + kl)


class DensityWeighted(Strategy):
    r"""Information density (Settles & Craven, EMNLP 2008): $\phi(x) \cdot \mathrm{sim}(x)^\beta$ with
    $\phi$ an uncertainty measure and $\mathrm{sim}(x) = \frac{1}{U}\sum_u \cos(x, x_u)$ the mean cosine
    similarity to the pool, computed in O(nnz) as $\hat x \cdot c$ with $c$ the mean of the pool's
    L2-normalised rows (``partial_fit`` accumulates it chunk by chunk; without it ``score`` takes
    the given rows as the pool)."""

    needs = frozenset({"probs", "features"})
    name = "density"

    def __init__(self, measure: str = "entropy", beta: float = 1.0) -> None:
        self.base = UncertaintySampling(measure)
        if not (np.isfinite(beta) and beta >= 0):
            raise ConfigError(f"beta must be a non-negative number, got {beta!r}")
        self.beta = float(beta)
        self.reset()

    def reset(self) -> None:
        self.sum_: np.ndarray | None = None
        self.count_ = 0

    def partial_fit(self, features: np.ndarray | sp.spmatrix) -> DensityWeighted:
        total = np.asarray(_normalized(features).sum(axis=0), dtype=np.float64).ravel()
        self.sum_ = total if self.sum_ is None else self.sum_ + total
        self.count_ += features.shape[0]
        return self

    def similarity(self, features: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Mean cosine similarity of each row to the fitted pool (to ``features`` themselves when
        nothing was fitted)."""
        normalized = _normalized(features)
        if self.sum_ is None:
            centroid = np.asarray(normalized.sum(axis=0), dtype=np.float64).ravel() / features.shape[0]
        else:
            centroid = self.sum_ / self.count_
        return np.clip(np.asarray(normalized @ centroid, dtype=np.float64).ravel(), 0.0, None)

    def score(self, probs=None, features=None, *, n=None, rng=None) -> np.ndarray:
        self._require(probs, features)
        return self.base.score(probs) * self.similarity(features) ** self.beta


class DiverseBatch(Strategy):
    """A batch spread over the feature space: ``method`` coreset (greedy k-center, Sener & Savarese
    2018) or kmeans++ (D² seeding). ``prefilter`` (an uncertainty measure or None) first keeps the
    ``n_candidates`` most uncertain items (default ``candidate_factor`` x the batch), so the batch is
    both informative and diverse and the greedy pass stays cheap on a large pool; without it every
    pool item is a candidate (capped by a random sample of ``max_candidates``)."""

    rowwise = False

    def __init__(
        self,
        method: str = "coreset",
        prefilter: str | None = None,
        candidate_factor: int = 10,
        max_candidates: int = 50_000,
    ) -> None:
        if method not in ("coreset", "kmeans++"):
            raise ConfigError(f"unknown diversity method {method!r}; use coreset or kmeans++")
        self.method = method
        self.prefilter = None if prefilter is None else UncertaintySampling(prefilter)
        self.candidate_factor = int(candidate_factor)
        self.max_candidates = int(max_candidates)

    @property
    def name(self) -> str:  # type: ignore[override]
        base = "coreset" if self.method == "coreset" else "kmeans++"
        return base if self.prefilter is None else f"{self.prefilter.measure}+{base}"

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"features"} | ({"probs"} if self.prefilter is not None else set()))

    def score(self, probs=None, features=None, *, n=None, rng=None) -> np.ndarray:
        """The prefilter's score (zeros without a prefilter): ranks the candidates."""
        if self.prefilter is None:
            return np.zeros(_rows(probs, features, n))
        return self.prefilter.score(probs)

    def candidates(self, pool_scores: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Rows eligible for the diverse pass, from the row-wise scores of the whole pool."""
        n = len(pool_scores)
        if self.prefilter is None:
            return np.sort(rng.choice(n, self.max_candidates, replace=False)) if n > self.max_candidates else None
        return top_batch(pool_scores, min(max(self.candidate_factor * batch_size, batch_size), self.max_candidates))

    def spread(self, features, batch_size: int, labeled_features, rng: np.random.Generator) -> np.ndarray:
        pick = k_center_greedy if self.method == "coreset" else kmeans_plus_plus
        return pick(features, batch_size, labeled_features, rng)

    def select(self, batch_size, *, probs=None, features=None, labeled_features=None, random_state=None) -> np.ndarray:
        self._require(probs, features)
        rng = np.random.default_rng(random_state)
        rows = self.candidates(self.score(probs, features), batch_size, rng)
        if rows is None:
            return self.spread(features, batch_size, labeled_features, rng)
        return rows[self.spread(features[rows], batch_size, labeled_features, rng)]


def _normalized(features: np.ndarray | sp.spmatrix):
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    if sp.issparse(features):
        norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
        return sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ features
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "random": RandomSampling,
    "least_confidence": lambda: UncertaintySampling("least_confidence"),
    "margin": lambda: UncertaintySampling("margin"),
    "entropy": lambda: UncertaintySampling("entropy"),
    "qbc": lambda: QueryByCommittee("vote_entropy"),
    "qbc_kl": lambda: QueryByCommittee("kl"),
    "density": DensityWeighted,
    "coreset": lambda: DiverseBatch("coreset"),
    "kmeans++": lambda: DiverseBatch("kmeans++"),
    "margin+coreset": lambda: DiverseBatch("coreset", prefilter="margin"),
    "margin+kmeans++": lambda: DiverseBatch("kmeans++", prefilter="margin"),
}
"""Strategy names and how to build each with its default parameters."""


def make_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (see ``STRATEGIES``), with default parameters."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
