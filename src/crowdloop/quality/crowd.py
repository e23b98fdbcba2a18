r"""Label errors seen through the crowd model: consensus against the model, and annotators who are off.

*Consensus against the model.* With the crowd's posterior $q_i$ (``crowdloop.aggregation``) and a
model's out-of-fold probabilities $p_i$, item $i$ is suspicious when the two lead with different
labels $c_i \ne m_i$ and both are sure: the score is $q_{i c_i} \cdot p_{i m_i}$ (the chance that
the crowd is right about $c_i$ *and* the model about $m_i$, were they independent, which cannot
both hold). Either the crowd made a confident mistake or the model did: a reviewer settles it.

*Annotators who are systematically off* (the checks a crowd platform runs on honeypots, here on
the items the crowd itself is sure of, posterior $\ge$ ``confident``). Per annotator $w$ with $n_w$
answers on such items, $k_w$ of them agreeing with the consensus:

- agreement $k_w / n_w$ with a Wilson 95% interval (Wilson, JASA 1927);
- *below the crowd*: the binomial p-value $P(X \le k_w)$, $X \sim \mathrm{Bin}(n_w, p_0)$, with $p_0$
  the pooled agreement of all answers on confident items;
- *no better than chance*: $P(X \ge k_w)$ under $\mathrm{Bin}(n_w, \chi_w)$ with
  $\chi_w = \sum_k f_{wk} \pi_k$ the agreement of someone answering at random with $w$'s own label
  frequencies $f_w$ (consensus frequencies $\pi$): a spammer, or someone who always gives one label;
- *one confusion*: the most frequent pair (consensus $a$, answer $b \ne a$) among $w$'s disagreements
  and the binomial p-value of $w$ saying $b$ that often on items whose consensus is $a$, against the
  crowd's rate of that confusion: a biased annotator.

p-values are adjusted for the number of annotators (Benjamini & Hochberg, JRSS-B 1995).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import binom, false_discovery_control, norm

from crowdloop.aggregation.posterior import Posterior
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError


def _top(probs: np.ndarray | sp.spmatrix | Posterior) -> tuple[np.ndarray, np.ndarray]:
    posterior = probs if isinstance(probs, Posterior) else Posterior(probs)
    codes, values = posterior.top(1)
    return codes[:, 0], values[:, 0]


def _value_at(probs: np.ndarray | sp.spmatrix | Posterior, codes: np.ndarray) -> np.ndarray:
    matrix = probs.probs if isinstance(probs, Posterior) else probs
    rows = np.arange(len(codes))
    safe = np.maximum(codes, 0)
    values = np.asarray(matrix[rows, safe]).ravel() if sp.issparse(matrix) else np.asarray(matrix)[rows, safe]
    return np.where(codes >= 0, values, 0.0)


def consensus_model_disagreements(
    consensus: np.ndarray | sp.spmatrix | Posterior,
    model_probs: np.ndarray | sp.spmatrix,
    *,
    items: Sequence[Hashable] | pd.Index,
    classes: Sequence[Hashable] | np.ndarray,
    min_model_confidence: float = 0.5,
) -> pd.DataFrame:
    """Items whose consensus label and model label differ, the model being at least
    ``min_model_confidence`` sure; strongest disagreement (score, see the module doc) first.

    Columns: ``item, consensus_label, consensus_confidence, model_label, model_confidence,
    model_on_consensus, score, reason``. Both inputs are (n_items, K) over the same ``classes``.
    """
    if not 0 <= min_model_confidence <= 1:
        raise ConfigError(f"min_model_confidence must be in [0, 1], got {min_model_confidence!r}")
    shape_c = consensus.shape
    if tuple(shape_c) != tuple(model_probs.shape):
        raise InputError(f"consensus has shape {tuple(shape_c)} but the model's probabilities {model_probs.shape}")
    items, classes = pd.Index(items), np.asarray(classes, dtype=object)
    if len(items) != shape_c[0] or len(classes) != shape_c[1]:
        raise InputError(f"expected {shape_c[0]} items and {shape_c[1]} classes, got {len(items)} and {len(classes)}")
    c_label, c_conf = _top(consensus)
    m_label, m_conf = _top(model_probs)
    on_consensus = _value_at(model_probs, c_label)
    keep = np.flatnonzero((c_label >= 0) & (m_label != c_label) & (m_conf >= min_model_confidence))
    score = c_conf[keep] * m_conf[keep]
    keep, score = keep[np.argsort(-score, kind="stable")], np.sort(score)[::-1]
    c_names, m_names = classes[c_label[keep]].astype(str), classes[m_label[keep]].astype(str)
    reason = (
        "crowd says " + c_names.astype(object) + " (" + np.char.mod("%.2f", c_conf[keep]) + "), model says "
        + m_names.astype(object) + " (" + np.char.mod("%.2f", m_conf[keep]) + ") and gives the crowd's label "
        + np.char.mod("%.2f", on_consensus[keep])
    )  # fmt: skip
    return pd.DataFrame(
        {
            "item": items[keep],
            "consensus_label": classes[c_label[keep]],
            "consensus_confidence": np.round(c_conf[keep], 6),
            "model_label": classes[m_label[keep]],
            "model_confidence": np.round(m_conf[keep], 6),
            "model_on_consensus": np.round(on_consensus[keep], 6),
            "score": np.round(score, 6),
            "reason": reason.astype(str),
        }
    )


def wilson_interval(successes: np.ndarray, trials: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (vectorised; (0, 1) where ``trials`` is 0).

    >>> low, high = wilson_interval(np.array([8]), np.array([10]))
    >>> round(float(low[0]), 3), round(float(high[0]), 3)
    (0.49, 0.943)
    """
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    z = norm.ppf(0.5 + level / 2)
    safe = np.maximum(n, 1)
    p = k / safe
    centre = (p + z**2 / (2 * safe)) / (1 + z**2 / safe)
    half = z * np.sqrt(p * (1 - p) / safe + z**2 / (4 * safe**2)) / (1 + z**2 / safe)
    return np.where(n > 0, centre - half, 0.0), np.where(n > 0, centre + half, 1.0)


def annotator_report(
    answers: Answers,
    consensus: np.ndarray | sp.spmatrix | Posterior,
    *,
    confident: float = 0.9,
    alpha: float = 0.05,
    min_answers: int = 10,
) -> pd.DataFrame:
    """Per annotator: agreement with the consensus on confident items, its interval, the tests of
    the module doc and a ``flag`` (``spammer``, ``biased``, ``low agreement`` or empty) with a
    ``reason``; flagged annotators first, the most clearly off first.

    ``consensus`` is the posterior (n_items, K) of an aggregator fitted on ``answers``
    (e.g. ``DawidSkene().fit(answers).posterior_``). Annotators with fewer than ``min_answers``
    answers on confident items are reported but never flagged.
    """
    if not 0 < confident <= 1 or not 0 < alpha < 1:
        raise ConfigError(f"confident must be in (0, 1] and alpha in (0, 1), got {confident!r} and {alpha!r}")
    if consensus.shape[0] != answers.n_items or consensus.shape[1] != answers.n_labels:
        raise InputError(
            f"consensus has shape {tuple(consensus.shape)}, expected ({answers.n_items}, {answers.n_labels})"
        )
    k, n_workers = answers.n_labels, answers.n_workers
    c_label, c_conf = _top(consensus)
    on_sure = (c_conf >= confident)[answers.item] & (c_label[answers.item] >= 0)
    worker, given, truth = answers.worker[on_sure], answers.label[on_sure], c_label[answers.item[on_sure]]
    agree = given == truth
    n = np.bincount(worker, minlength=n_workers)
    hits = np.bincount(worker, weights=agree, minlength=n_workers).astype(np.int64)
    pooled = agree.mean() if len(agree) else 0.0
    # chance agreement with the worker's own label frequencies against the consensus frequencies
    freq = sp.csr_matrix((np.ones(len(worker)), (worker, given)), shape=(n_workers, k))
    prior = np.bincount(truth, minlength=k) / max(len(truth), 1)
    chance = np.divide(np.asarray(freq @ prior).ravel(), n, out=np.zeros(n_workers), where=n > 0)
    p_below = binom.cdf(hits, n, pooled)
    p_chance = binom.sf(hits - 1, n, np.clip(chance, 1e-12, 1.0))
    pair, pair_count, pair_share, p_pair = _top_confusion(worker, given, truth, agree, n_workers, k)
    low, high = wilson_interval(hits, n)
    enough = n >= min_answers
    q_below, q_pair = _adjust(p_below, enough), _adjust(p_pair, enough)
    spammer = enough & (q_below < alpha) & (p_chance >= alpha)
    biased = enough & ~spammer & (q_pair < alpha) & (pair_share >= 0.5) & (pair_count >= 3)
    low_agreement = enough & ~spammer & ~biased & (q_below < alpha)
    flag = np.select([spammer, biased, low_agreement], ["spammer", "biased", "low agreement"], "")
    labels = np.asarray(answers.labels.labels, dtype=object)
    answer_of, consensus_of = (labels[np.maximum(pair[:, j], 0)].astype(str).astype(object) for j in (1, 0))
    pair_text = np.where(pair[:, 0] >= 0, consensus_of + " -> " + answer_of, "")
    agreement = np.divide(hits, n, out=np.full(n_workers, np.nan), where=n > 0)
    base = "agrees " + np.char.mod("%.2f", agreement) + " on " + n.astype(str).astype(object) + " sure items"
    reason = np.select(
        [spammer, biased, low_agreement],
        [
            base + ", no better than random answering (" + np.char.mod("%.2f", chance) + ")",
            base
            + "; says "
            + answer_of
            + " where the crowd says "
            + consensus_of
            + " ("
            + pair_count.astype(str).astype(object)
            + " of its disagreements)",
            base + ", below the crowd's " + f"{pooled:.2f}",
        ],
        "",
    ).astype(str)
    frame = pd.DataFrame(
        {
            "worker": answers.workers,
            "answers": np.bincount(answers.worker, minlength=n_workers),
            "sure_answers": n,
            "agreement": np.round(agreement, 6),
            "agreement_low": np.round(low, 6),
            "agreement_high": np.round(high, 6),
            "chance_agreement": np.round(chance, 6),
            "q_below_crowd": q_below,
            "top_confusion": pair_text.astype(str),
            "confusion_count": pair_count,
            "confusion_share": np.round(pair_share, 6),
            "q_confusion": q_pair,
            "flag": flag,
            "reason": reason,
        }
    )
    severity = np.where(flag != "", 0, 1)
    return frame.iloc[np.lexsort((np.minimum(q_below, q_pair), severity))].reset_index(drop=True)


def _adjust(p: np.ndarray, tested: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values over the tested annotators (1 for the others)."""
    q = np.ones(len(p))
    if tested.any():
        q[tested] = false_discovery_control(np.clip(p[tested], 0.0, 1.0))
    return q


def _top_confusion(
    worker: np.ndarray, given: np.ndarray, truth: np.ndarray, agree: np.ndarray, n_workers: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per worker its most frequent (consensus, answer) disagreement: the pair, its count, its share of
    the worker's disagreements and the binomial p-value of that count against the crowd's rate."""
    pair = np.full((n_workers, 2), -1, dtype=np.int64)
    count, share, p_value = np.zeros(n_workers, dtype=np.int64), np.zeros(n_workers), np.ones(n_workers)
    wrong = ~agree
    if not wrong.any():
        return pair, count, share, p_value
    w, a, b = worker[wrong].astype(np.int64), truth[wrong].astype(np.int64), given[wrong].astype(np.int64)
    keys, counts = np.unique((w * k + a) * k + b, return_counts=True)
    kw, ka, kb = keys // (k * k), (keys // k) % k, keys % k
    best = np.lexsort((-counts, kw))  # per worker, largest count first
    first = best[np.r_[True, kw[best][1:] != kw[best][:-1]]]
    ws = kw[first]
    pair[ws, 0], pair[ws, 1], count[ws] = ka[first], kb[first], counts[first]
    share[ws] = counts[first] / np.bincount(w, minlength=n_workers)[ws]
    # the rest of the crowd's rate of a -> b on items whose consensus is a, and the worker's trials
    all_pairs, all_counts = np.unique(truth.astype(np.int64) * k + given, return_counts=True)
    per_truth = np.bincount(truth, minlength=k)
    worker_truth, wt_counts = np.unique(worker.astype(np.int64) * k + truth, return_counts=True)
    trials = wt_counts[np.searchsorted(worker_truth, ws * k + ka[first])]
    others = all_counts[np.searchsorted(all_pairs, ka[first] * k + kb[first])] - counts[first]
    rate = (others + 0.5) / (per_truth[ka[first]] - trials + 1.0)
    p_value[ws] = binom.sf(counts[first] - 1, trials, np.clip(rate, 1e-12, 1.0))
    return pair, count, share, p_value
