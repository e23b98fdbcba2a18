r"""``auto``: choose a truth-inference model for the data at hand, by cross-fitting.

Large label spaces and taxonomies take the taxonomy-shaped model and one answer per item takes
majority vote (beside a model's probabilities, one-coin Dawid-Skene: one skill per worker, learned
from how often they agree with the model), from the shape of the data alone. Otherwise every
candidate model is fitted and judged on what it did not see:

- without gold, on the held-out likelihood of the answers: the answers are split into folds (an
  item keeps at least one answer in every training set), each candidate is fitted on the other
  folds and scores the held-out answers by their predictive probability
  $P(y_{iw} = l \mid \text{the item's other answers}) = \sum_k P(z_i = k \mid y_{\text{train}})\,
  P(y_{iw} = l \mid z_i = k, w)$; the candidate with the highest total log-probability wins.
  Cross-validated likelihood for model selection: P. Smyth, Model selection for probabilistic
  clustering using cross-validated likelihood, *Statistics and Computing* 10, 2000; the
  predictive score is a proper scoring rule, so a model that merely overfits loses.
- with gold, on the gold itself: the gold items are split into folds, each candidate is fitted
  with the other folds' gold clamped and labels the held-out gold items; the most accurate wins
  (ties: the higher mean log-probability of the true labels, then the simpler model).

Majority vote competes as the model it is the Bayes rule of: every worker shares one symmetric
confusion (a one-coin model fitted on the pooled crowd), so ``auto`` never prefers a model that
explains the crowd worse than majority vote does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from crowdloop.aggregation.base import TrueLabels
from crowdloop.aggregation.dawid_skene import OneCoinDawidSkene
from crowdloop.aggregation.posterior import fits_dense
from crowdloop.aggregation.registry import method_class
from crowdloop.answers import Answers
from crowdloop.labels import Taxonomy

LARGE_LABEL_SPACE = 50
"""From this many labels on, full per-worker confusion matrices have too many cells to estimate."""
CANDIDATES = ("mv", "onecoin", "ccds", "ds")
"""The models ``auto`` chooses among on a small flat label space, simplest first (ties go to the
simpler). Each can score answers it did not see (``answer_log_likelihood``). MACE is left out: on
the public crowds its held-out likelihood is never the best and its ten restarts per fit make
cross-fitting costly."""
N_FOLDS = 5
"""Folds of the cross-fitting: each fit sees 80% of the answers (or of the gold)."""
FULL_CROSS_FIT = 200_000
"""Above this many answers only the first fold is scored (one fit per candidate on 80%)."""


@dataclass(frozen=True)
class Selection:
    """The outcome of ``select_method``: the chosen registry name, the reason in words and each
    candidate's score (held-out log-likelihood per answer, or held-out gold accuracy)."""

    method: str
    reason: str
    scores: dict[str, float]


def choose_method(answers: Answers, gold: TrueLabels = None, *, random_state: int = 0) -> tuple[str, str]:
    """The registry name of the model to use on ``answers`` and the reason, in words (see the
    module docstring; ``gold``: task -> true label, optional)."""
    selection = select_method(answers, gold, random_state=random_state)
    return selection.method, selection.reason


def select_method(
    answers: Answers, gold: TrueLabels = None, *, candidates: tuple[str, ...] = CANDIDATES, random_state: int = 0
) -> Selection:
    """``choose_method`` with every candidate's cross-fitted score."""
    k = answers.n_labels
    if isinstance(answers.labels, Taxonomy) or k >= LARGE_LABEL_SPACE or not fits_dense(answers.n_items, k):
        kind = "a taxonomy" if isinstance(answers.labels, Taxonomy) else f"{k} labels"
        return Selection("taxonomy", f"{kind}: per-worker skill over a pooled, taxonomy-shaped confusion", {})
    per_item = answers.n_answers / max(answers.n_items, 1)
    if per_item < 1.5 and answers.soft is not None:
        reason = f"{per_item:.1f} answers per item and a model: one skill per worker, learned beside the model"
        return Selection("onecoin", reason, {})
    if per_item < 1.5:
        return Selection("mv", f"{per_item:.1f} answers per item: too few to learn worker skills", {})
    gold_items, gold_labels = answers.encode_gold(gold)
    rng = np.random.default_rng(random_state)
    if len(gold_items) >= 2:
        scores, tiebreak = _gold_scores(answers, gold_items, gold_labels, candidates, rng)
        best = max(candidates, key=lambda name: (scores[name], tiebreak[name], -candidates.index(name)))
        listed = ", ".join(f"{name} {scores[name]:.3f}" for name in candidates)
        reason = f"most accurate on held-out gold ({len(gold_items)} items, cross-fitted): {listed}"
        return Selection(best, reason, scores)
    scores = _held_out_likelihood(answers, candidates, rng)
    best = max(candidates, key=lambda name: (scores[name], -candidates.index(name)))
    listed = ", ".join(f"{name} {scores[name]:.4f}" for name in candidates)
    return Selection(best, f"best held-out log-likelihood per answer (cross-fitted): {listed}", scores)


def _held_out_likelihood(answers: Answers, candidates: tuple[str, ...], rng: np.random.Generator) -> dict[str, float]:
    fold = _answer_folds(answers, N_FOLDS, rng)
    folds = range(N_FOLDS) if answers.n_answers <= FULL_CROSS_FIT else range(1)
    total = dict.fromkeys(candidates, 0.0)
    scored = 0
    for f in folds:
        train, test = answers.subset(fold != f), answers.subset(fold == f)
        scored += test.n_answers
        for name in candidates:
            total[name] += _predictive_log_likelihood(name, train, test)
    return {name: value / max(scored, 1) for name, value in total.items()}


def _answer_folds(answers: Answers, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Per answer its fold (-1: never held out): an item's answers, in random order, go to
    consecutive folds from a random start, so no fold holds out all of an item's answers; an
    item with a single answer keeps it in every training set."""
    order = np.lexsort((rng.random(answers.n_answers), answers.item))
    counts = answers.answers_per_item()
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(answers.n_answers, dtype=np.int64)
    rank[order] = np.arange(answers.n_answers) - start[answers.item[order]]
    offset = rng.integers(0, n_folds, answers.n_items)
    fold = (rank + offset[answers.item]) % n_folds
    return np.where(counts[answers.item] >= 2, fold, -1)


def _predictive_log_likelihood(name: str, train: Answers, test: Answers) -> float:
    """Sum over the test answers of ``log sum_k P(z_i = k | train) P(y | z_i = k)``."""
    if name == "mv":  # majority vote's model: one symmetric confusion shared by every worker
        train, test = _pooled(train), _pooled(test)
        model = OneCoinDawidSkene(class_prior="uniform").fit(train)
    else:
        model = method_class(name)().fit(train)
    log_q = np.log(np.maximum(model.posterior_.dense()[test.item], 1e-300))
    return float(logsumexp(log_q + model.answer_log_likelihood(test), axis=1).sum())


def _pooled(answers: Answers) -> Answers:
    """The answers as if one worker gave them all."""
    return replace(answers, worker=np.zeros_like(answers.worker), workers=pd.Index(["crowd"], name="worker"))


def _gold_scores(
    answers: Answers,
    gold_items: np.ndarray,
    gold_labels: np.ndarray,
    candidates: tuple[str, ...],
    rng: np.random.Generator,
) -> tuple[dict[str, float], dict[str, float]]:
    """Per candidate: accuracy on held-out gold and the mean log-probability of the true labels."""
    n_folds = min(N_FOLDS, len(gold_items))
    fold = rng.permutation(len(gold_items)) % n_folds
    items, labels = answers.items, answers.labels
    right = dict.fromkeys(candidates, 0.0)
    log_p = dict.fromkeys(candidates, 0.0)
    for f in range(n_folds):
        known = pd.Series(labels.decode(gold_labels[fold != f]), index=items[gold_items[fold != f]])
        held, truth = gold_items[fold == f], gold_labels[fold == f]
        for name in candidates:
            posterior = method_class(name)().fit(answers, known).posterior_
            right[name] += float((posterior.labels()[held] == truth).sum())
            log_p[name] += float(np.log(np.maximum(posterior.dense()[held, truth], 1e-300)).sum())
    n = len(gold_items)
    return {name: right[name] / n for name in candidates}, {name: log_p[name] / n for name in candidates}
