r"""Informativeness scores of pool items from a model's probabilities (higher: ask first).

For a probability row $p$ over $K$ classes, with $p_{(1)} \ge p_{(2)}$ its two largest entries
(Settles, *Active Learning Literature Survey*, 2009, section 3.1):

- least confidence (Lewis & Gale, SIGIR 1994): $1 - p_{(1)}$;
- margin (Scheffer et al., IDA 2001): $1 - (p_{(1)} - p_{(2)})$, so a small margin scores high;
- entropy (Shannon): $-\sum_k p_k \log p_k$ (natural log, $0 \log 0 = 0$).

For a committee of $M$ models with probabilities $p^{(m)}$ (query by committee, Seung et al., COLT
1992), with $V_k$ the number of members whose top class is $k$:

- vote entropy (Dagan & Engelson, ICML 1995): $-\sum_k \frac{V_k}{M} \log \frac{V_k}{M}$;
- KL to the consensus (McCallum & Nigam, ICML 1998):
  $\frac{1}{M} \sum_m \mathrm{KL}(p^{(m)} \,\|\, \bar p)$ with $\bar p = \frac{1}{M}\sum_m p^{(m)}$.

Every function is row-wise, so scores of a pool computed chunk by chunk equal the whole pool's.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr, rel_entr

from crowdloop.errors import InputError


def check_probs(probs: np.ndarray, *, ndim: int = 2, source: str = "probabilities") -> np.ndarray:
    """``probs`` as a float array of ``ndim`` dimensions with non-negative entries."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != ndim or probs.shape[-1] == 0:
        shape = "(n, K)" if ndim == 2 else "(members, n, K)"
        raise InputError(f"probabilities have shape {probs.shape}, expected {shape}", source=source)
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise InputError("probabilities must be finite and non-negative", source=source)
    return probs


def top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second largest probability of every row (the second is 0 when K = 1)."""
    probs = check_probs(probs)
    if probs.shape[1] == 1:
        return probs[:, 0], np.zeros(len(probs))
    part = np.partition(probs, probs.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """$1 - \\max_k p_k$ per row.

    >>> least_confidence(np.array([[0.5, 0.3, 0.2], [0.9, 0.1, 0.0]])).round(2).tolist()
    [0.5, 0.1]
    """
    return 1.0 - top_two(probs)[0]


def margin(probs: np.ndarray) -> np.ndarray:
    """$1 - (p_{(1)} - p_{(2)})$ per row.

    >>> margin(np.array([[0.5, 0.3, 0.2], [0.9, 0.1, 0.0]])).round(2).tolist()
    [0.8, 0.2]
    """
    first, second = top_two(probs)
    return 1.0 - (first - second)


def entropy(probs: np.ndarray) -> np.ndarray:
    """$-\\sum_k p_k \\log p_k$ per row (nats).

    >>> entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    return entr(check_probs(probs)).sum(axis=1)


def vote_entropy(committee_probs: np.ndarray) -> np.ndarray:
    """Entropy of the members' top-class votes per item; ``committee_probs`` is (members, n, K).

    >>> p = np.array([[[0.9, 0.1], [0.6, 0.4]], [[0.8, 0.2], [0.3, 0.7]]])  # 2 members, 2 items
    >>> vote_entropy(p).round(4).tolist()
    [0.0, 0.6931]
    """
    committee_probs = check_probs(committee_probs, ndim=3)
    n_members, n_items, n_classes = committee_probs.shape
    votes = committee_probs.argmax(axis=2)  # (members, n)
    counts = np.zeros((n_items, n_classes))
    np.add.at(counts, (np.tile(np.arange(n_items), n_members), votes.ravel()), 1.0)
    return entr(counts / n_members).sum(axis=1)


def kl_to_consensus(committee_probs: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each member's row from the members' mean row (nats).

    >>> p = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    >>> kl_to_consensus(p).tolist()
    [0.0]
    """
    committee_probs = check_probs(committee_probs, ndim=3)
    consensus = committee_probs.mean(axis=0)
    # rel_entr(p, q) = p log(p / q), 0 where p = 0; q > 0 wherever some member has p > 0
    return rel_entr(committee_probs, consensus[None]).sum(axis=2).mean(axis=0)
