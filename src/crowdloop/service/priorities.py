r"""Which open item next: the pool's order weighted by what an item's label is worth to the model
and to the spread of what is labelled, computed off the request path.

``next_task`` leases the open item with the highest stored ``priority`` (``store.queries.POOL``,
within the gold rate, the overlap and the taxonomy routing). The decision writes it as the
expected information of one more answer (``consensus.priority``) times the item's stored
``learn_weight``; ``prioritize`` sets that weight when a model version's predictions are stored,
when a refit runs and when items are imported, never inside a request. The weight ranks the open
items by the ``active`` strategies and maps rank $r$ (0 = first) of $n$ to $w = 1 + (n - r) / n$
in $(1, 2]$, so the weight orders items the decision finds about equally worth an answer (most of
a fresh pool: no answers, the same expected information), while an item the consensus needs much
more still comes first:

- *worth* $1 - q$ of the relabel-or-new score (``active.relabel_or_new_scores``, after ActiveLab,
  Goh & Mueller 2023): an item with answers that disagree (weighted agreement with its leading
  label, each answer weighed by its annotator's skill above chance) against a new item the model
  is unsure of (its largest probability), the model weighed by its accuracy on gold;
- *spread*: the first $B$ of the order are a k-means++ batch (``active.kmeans_plus_plus``: each
  pick drawn with probability proportional to its squared distance to the nearest labelled item or
  earlier pick, Arthur & Vassilvitskii 2007; the ``margin+kmeans++`` of ``crowdloop select``) over
  the TF-IDF features of the item texts (``active.TextFeatures``; the texts the project's model
  reads, ``service.training.item_texts`` of its ``text_fields``: none without a model), away from
  the labelled items:
  among the $2B$ most worth asking when a model has predicted ($B = n / 4$, at most ``SPREAD``),
  over the whole pool (a sample of at most ``MAX_CANDIDATES``) at the cold start, when no model
  has: a diverse spread instead of the import order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crowdloop.active import TextFeatures, kmeans_plus_plus, relabel_or_new_scores, top_batch
from crowdloop.active.relabel import skill_weight
from crowdloop.consensus import SkillRules
from crowdloop.service.database import Database
from crowdloop.service.item_decisions import skill_book
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, WRITE_PAGE, project_row
from crowdloop.service.training import item_texts
from crowdloop.store import learning as sql
from crowdloop.store import queries as q

SPREAD = 200
"""Largest spread batch at the head of the order (one pass over the candidates per pick)."""
MAX_CANDIDATES = 20_000
"""Open items the cold-start spread is drawn from (a random sample of a larger pool)."""
LABELLED_SAMPLE = 2_000
"""Newest labelled items the spread keeps away from."""
WEIGHT_TOLERANCE = 0.01
"""Change of an item's weight too small to write: a hundredth of the range, the order kept to within
a percent of the pool (the weight of rank $r$ of $n$ moves by $1/n$ a rank)."""
PRIORITIZE_IN_CALL = 10 * PAGE
"""Open items up to which an import weighs the pool itself (larger pools: the next refit or predictions)."""


def pool_weights(
    texts: np.ndarray,
    consensus: np.ndarray,
    agreement: np.ndarray,
    answers: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    annotator_weight: float = 0.01,
    model_weight: float = 0.01,
    labelled_texts: np.ndarray | None = None,
    random_state: int = 0,
) -> np.ndarray:
    """The ``learn_weight`` in (1, 2] of every open item (see the module docstring).

    ``consensus``: each item's leading label as a column of ``probs`` (-1: none); ``agreement``:
    the skill-weighted share of its answers that agree with it; ``answers``: answers per item;
    ``probs``: the model's probabilities (n, columns), None when no model has predicted."""
    n = len(texts)
    if n == 0:
        return np.empty(0)
    rng = np.random.default_rng(random_state)
    scores = np.zeros(n)
    if probs is not None:
        relabel = (answers > 0) & (consensus >= 0)
        scores[relabel], scores[~relabel] = relabel_or_new_scores(
            consensus[relabel],
            agreement[relabel],
            probs[relabel],
            probs[~relabel],
            answers[relabel],
            annotator_weight,
            model_weight,
        )
        size = min(SPREAD, max(1, n // 4))
        candidates = top_batch(scores, 2 * size)
    else:
        size = min(SPREAD, n)
        candidates = np.sort(rng.choice(n, MAX_CANDIDATES, replace=False)) if n > MAX_CANDIDATES else np.arange(n)
    candidates = candidates[_worded(texts[candidates])]  # items without text stay out of the spread
    picks = _spread(texts[candidates], size, labelled_texts, rng)
    order = top_batch(scores, n)
    if picks is not None:
        first = candidates[picks]
        order = np.concatenate([first, order[~np.isin(order, first)]])
    weight = np.empty(n)
    weight[order] = 1.0 + (n - np.arange(n)) / n
    return weight


def _worded(texts: np.ndarray) -> np.ndarray:
    """True for the texts with a word character (what TF-IDF can see)."""
    return pd.Series(texts, dtype=object).str.contains(r"\w", regex=True).fillna(False).to_numpy(bool)


def _spread(
    texts: np.ndarray, size: int, labelled_texts: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray | None:
    """A k-means++ batch of ``size`` rows of ``texts`` (None: no text to spread over)."""
    labelled = np.empty(0, dtype=object) if labelled_texts is None else labelled_texts[_worded(labelled_texts)]
    if not len(texts):
        return None
    try:
        features = TextFeatures().fit(np.concatenate([texts, labelled]))
    except ValueError:  # an empty vocabulary (e.g. one-letter words only): nothing to spread over
        return None
    known = features.transform(labelled) if len(labelled) else None
    return kmeans_plus_plus(features.transform(texts), min(size, len(texts)), known, rng)


def prioritize(db: Database, config: ProjectConfig, project_id: int, *, job: bool = False) -> int:
    """Weigh the project's open items (``pool_weights``) and store the weights, rescaling each
    stored priority; returns the items weighed. A job, never inside an annotator's request: it
    reads a page per transaction, so annotators wait for no more than a page; ``job`` as in
    ``item_decisions.redecide_open``."""
    n_labels, rules, fields, newest, labelled, gold = db.read(lambda s: _read_project(config, s, project_id))
    pages, last = [], 0
    while page := db.read(lambda s, last=last: _read_page(s, project_id, last, newest)):
        pages.append(page)
        last = int(page[0][-1].id)
    if not pages:
        return 0
    items = [r for rows, _, _ in pages for r in rows]
    ids = np.array([r.id for r in items], dtype=np.int64)
    local = {int(i): k for k, i in enumerate(ids)}
    leading = np.array([-1 if r.label is None else r.label for r in items], dtype=np.int64)
    answers = np.array([r.answer_count for r in items], dtype=np.int64)
    agreement = np.zeros(len(ids))
    kwargs: dict[str, Any] = {"labelled_texts": np.array(item_texts(labelled, fields), dtype=object)}
    if newest is not None:
        predicted = [(local[int(r.item_id)], r.labels, r.probs) for _, rows, _ in pages for r in rows]
        votes = [v for _, _, rows in pages for v in rows]
        skill = skill_book(votes, rules).accuracy() if votes else np.empty(0)
        vote_item = np.array([local[int(v.item_id)] for v in votes], dtype=np.int64)
        vote_weight = np.asarray(skill_weight(skill, n_labels), dtype=np.float64).reshape(-1)
        agrees = np.array([v.label for v in votes], dtype=np.int64) == leading[vote_item]
        total = np.bincount(vote_item, weights=vote_weight, minlength=len(ids))
        agreeing = np.bincount(vote_item, weights=vote_weight * agrees, minlength=len(ids))
        right = sum(int(g.labels[int(np.argmax(g.probs))] == g.truth) for g in gold)
        probs, columns = stored_probs(predicted, len(ids), n_labels, leading)
        agreement = np.divide(agreeing, total, out=np.zeros(len(ids)), where=total > 0)
        kwargs.update(
            probs=probs,
            annotator_weight=float(vote_weight.mean()) if votes else skill_weight(rules.prior_mean, n_labels),
            model_weight=skill_weight((right + 1) / (len(gold) + 2), n_labels),  # Laplace: no gold, little trust
        )
        leading = np.where(leading >= 0, np.searchsorted(columns, leading), -1)
    texts = np.array(item_texts([r.payload for r in items], fields), dtype=object)
    weight = pool_weights(texts, leading, agreement, answers, **kwargs)
    # a weight within WEIGHT_TOLERANCE of the stored one is not written: each rewritten row is a new
    # row version to vacuum, and an item that moved a rank or two keeps its place in the order
    changed = np.abs(weight - np.array([r.learn_weight for r in items], dtype=np.float64)) > WEIGHT_TOLERANCE
    new_ids, new_weight = ids[changed].tolist(), weight[changed].tolist()
    for start in range(0, len(new_ids), WRITE_PAGE):
        rows = [
            {"item": i, "weight": w}
            for i, w in zip(new_ids[start : start + WRITE_PAGE], new_weight[start : start + WRITE_PAGE], strict=True)
        ]
        (db.run_page if job else db.run)(lambda s, rows=rows: s.execute(sql.REWEIGH, rows))
    return len(ids)


def _read_project(
    config: ProjectConfig, db: Any, project_id: int
) -> tuple[int, SkillRules, list[str] | None, int | None, list, list]:
    """The project's number of labels, skill rules and text fields, its newest model version, the
    payloads of the newest labelled items, and the newest version's gold predictions."""
    project = project_row(db, project_id)
    newest = db.execute(q.NEWEST_MODEL, {"project": project_id}).scalar()
    labelled = db.execute(sql.LABELLED_TEXTS, {"project": project_id, "size": LABELLED_SAMPLE}).scalars().all()
    gold = db.execute(sql.GOLD_PREDICTED, {"model": newest}).all() if newest is not None else []
    return len(config.labels(project)), config.rules(project), project.text_fields, newest, labelled, gold


def _read_page(db: Any, project_id: int, last: int, newest: int | None) -> tuple[list, list, list] | None:
    """A page of open items after id ``last``, the newest version's predictions for them and the
    answers to those answered (None: no more)."""
    items = db.execute(sql.OPEN_ITEMS, {"project": project_id, "last": last, "size": PAGE}).all()
    if not items:
        return None
    if newest is None:
        return items, [], []
    ids = [r.id for r in items]
    predicted = db.execute(q.ITEM_PREDICTIONS, {"items": ids, "models": [newest]}).all()
    answered = [r.id for r in items if r.answer_count > 0]
    votes = db.execute(q.ITEM_ANSWERS, {"items": answered}).all() if answered else []
    return items, predicted, votes


def stored_probs(
    rows: list[tuple[int, list[int], list[float]]], n: int, n_labels: int, leading: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dense probability rows over the labels that occur (stored top labels and leading labels):
    a stored label's probability, else the rest of the row's mass shared by the labels it does
    not list (an item without a prediction: uniform). Returns (rows, the label code of each column)."""
    item = np.array([i for i, codes, _ in rows for _ in codes], dtype=np.int64)
    code = np.array([c for _, codes, _ in rows for c in codes], dtype=np.int64)
    prob = np.array([p for _, _, ps in rows for p in ps], dtype=np.float64)
    columns = np.unique(np.concatenate([code, leading[leading >= 0]]))
    if not len(columns):
        columns = np.zeros(1, dtype=np.int64)
    listed = np.bincount(item, minlength=n)
    rest = np.maximum(1.0 - np.bincount(item, weights=prob, minlength=n), 0.0) / np.maximum(n_labels - listed, 1)
    dense = np.repeat(rest[:, None], len(columns), axis=1)
    dense[item, np.searchsorted(columns, code)] = prob
    return dense, columns
