"""The next batch for a labelling project: items (id -> text), the labels so far, a strategy.

``next_batch`` is what ``crowdloop select`` runs: with no usable labels yet (fewer than two
classes) it is a cold start (a k-means++ spread over the items' TF-IDF features, or random);
otherwise it trains the default model on the labelled items (or takes given probabilities) and
scores the unlabelled ones in chunks. ``strategy="relabel"`` needs crowd answers: labelled items
with a weak consensus then compete with new ones (``relabel_or_new``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crowdloop.active.committee import Committee
from crowdloop.active.features import TextFeatures
from crowdloop.active.loop import cold_start_batch
from crowdloop.active.pool import CHUNK_SIZE, select_from_pool
from crowdloop.active.relabel import relabel_or_new
from crowdloop.active.strategies import STRATEGIES, QueryByCommittee, make_strategy
from crowdloop.aggregation.base import Aggregator
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace
from crowdloop.models import TextClassifier, align_proba, out_of_fold_proba

SELECT_STRATEGIES: tuple[str, ...] = (*STRATEGIES, "relabel")
COLD_STARTS: tuple[str, ...] = ("kmeans++", "coreset", "random")


@dataclass
class ModelProbabilities:
    """Precomputed probabilities: ``probs[r]`` is the row of item ``items[r]`` over ``labels``."""

    items: pd.Index
    probs: np.ndarray
    labels: LabelSpace

    def rows(self, ids: pd.Index, what: str) -> np.ndarray:
        where = self.items.get_indexer(ids)
        if (where < 0).any():
            missing = ids[where < 0]
            raise InputError(
                f"{len(missing)} {what} have no probabilities (first: {missing[0]!r})",
                source="probabilities",
                hint="Give a probability row for every item to score.",
            )
        return self.probs[where]


@dataclass
class Selection:
    """The batch (``batch``: task, score, rank, and kind for relabel) and how it was chosen."""

    batch: pd.DataFrame
    notes: list[tuple[str, str]] = field(default_factory=list)


def next_batch(
    items: pd.Series,
    labels: pd.Series | None,
    strategy: str,
    batch_size: int,
    *,
    answers: Answers | None = None,
    probabilities: ModelProbabilities | None = None,
    model_factory: Callable[[], object] = TextClassifier,
    cold_start: str = "kmeans++",
    chunk_size: int = CHUNK_SIZE,
    random_state: int = 0,
) -> Selection:
    """The ``batch_size`` unlabelled items (or, with ``relabel``, labelled ones too) to ask about next.

    ``items`` maps item id -> text; ``labels`` maps labelled item id -> label; with ``answers``
    (crowd answers) and no ``labels`` the labels are the crowd's consensus. Labelled items that are
    not in ``items`` raise ``InputError``.
    """
    if strategy not in SELECT_STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; use one of {', '.join(SELECT_STRATEGIES)}")
    if cold_start not in COLD_STARTS:
        raise ConfigError(f"unknown cold start {cold_start!r}; use one of {', '.join(COLD_STARTS)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"the batch size must be a positive integer, got {batch_size!r}")
    ids = pd.Index(items.index)
    texts = items.to_numpy(dtype=object)
    aggregator = None
    if answers is not None and labels is None:  # the crowd's consensus labels train the model
        aggregator = consensus_of(answers)
        labels = aggregator.labels_.dropna()
    labels = pd.Series(dtype=object) if labels is None else labels
    unknown = ~pd.Index(labels.index).isin(ids)
    if unknown.any():
        first = labels.index[unknown][0]
        raise InputError(f"{int(unknown.sum())} labelled items are not among the items (first: {first!r})",
                         source="labels", hint="Label only items listed in the items file.")  # fmt: skip
    labeled = ids.isin(labels.index)
    pool = np.flatnonzero(~labeled)
    if strategy == "relabel" and answers is None:
        raise InputError("strategy 'relabel' needs crowd answers (a labels file with a worker column)")
    if not len(pool) and strategy != "relabel":
        raise InputError("every item is labelled already: nothing to select")
    counts = f"{len(ids):,} / {labeled.sum():,} / {len(pool):,}"
    notes: list[tuple[str, str]] = [("items / labelled / unlabelled", counts)]
    rng = np.random.default_rng(random_state)
    train_labels = labels.reindex(ids[labeled]).to_numpy(dtype=object)
    if probabilities is None and len(pd.unique(train_labels)) < 2:
        features = TextFeatures().fit_transform(texts[pool]) if cold_start != "random" else None
        rows = cold_start_batch(batch_size, len(pool), method=cold_start, features=features, random_state=rng)
        notes.append(("cold start", f"{cold_start} (fewer than 2 labelled classes: no model yet)"))
        batch = pd.DataFrame({"task": ids[pool[rows]], "score": np.nan, "rank": np.arange(1, len(rows) + 1)})
        return Selection(batch, notes)

    if probabilities is not None:
        notes.append(("model", f"given probabilities over {len(probabilities.labels):,} labels"))
        predict_pool = None
    else:
        model = model_factory().fit(texts[labeled], train_labels)
        notes.append(("model", f"{type(model).__name__} on {labeled.sum():,} labels, {len(model.classes_):,} classes"))

        def predict_pool(part: np.ndarray) -> np.ndarray:
            return model.predict_proba(texts[pool[part]])

    if strategy == "relabel":
        aggregator = consensus_of(answers) if aggregator is None else aggregator
        batch = _relabel(ids, texts, pool, aggregator, answers, probabilities, model_factory, batch_size)
        return Selection(batch, notes)

    chosen = make_strategy(strategy)
    if isinstance(chosen, QueryByCommittee) and probabilities is not None:
        raise ConfigError("query by committee trains its own committee: drop --probs or pick another strategy")
    if isinstance(chosen, QueryByCommittee):
        committee = Committee(model_factory(), chosen.n_members, random_state=random_state)
        committee.fit(texts[labeled], train_labels)

        def predict_pool(part: np.ndarray) -> np.ndarray:
            return committee.predict_proba(texts[pool[part]])

        notes.append(("committee", f"{chosen.n_members} bootstrap fits"))
    if probabilities is not None:
        pool_probs = probabilities.rows(ids[pool], "unlabelled items")

        def predict_pool(part: np.ndarray) -> np.ndarray:
            return pool_probs[part]

    featurize = None
    if "features" in chosen.needs:
        vectorizer = TextFeatures().fit(texts)

        def featurize(part: np.ndarray):
            return vectorizer.transform(texts[pool[part]])

    rows, scores = select_from_pool(
        chosen,
        np.arange(len(pool)),
        batch_size,
        predict_proba=predict_pool,
        featurize=featurize,
        labeled_features=vectorizer.transform(texts[labeled]) if featurize is not None else None,
        chunk_size=chunk_size,
        random_state=rng,
    )
    batch = pd.DataFrame({"task": ids[pool[rows]], "score": scores[rows], "rank": np.arange(1, len(rows) + 1)})
    return Selection(batch, notes)


def consensus_of(answers: Answers) -> Aggregator:
    """The aggregator ``crowdloop aggregate --method auto`` would pick, fitted on ``answers``."""
    from crowdloop.aggregation.auto import choose_method
    from crowdloop.aggregation.registry import method_class

    name, _ = choose_method(answers)
    return method_class(name)().fit(answers)


def _relabel(ids, texts, pool, aggregator, answers: Answers, probabilities, model_factory, batch_size) -> pd.DataFrame:
    """Labelled items (with out-of-fold model probabilities) and pool items ranked together."""
    answered = pd.Index(aggregator.items_)
    if probabilities is not None:
        space = answers.labels
        labeled_probs = align_proba(probabilities.rows(answered, "labelled items"), probabilities.labels.labels, space)
        pool_probs = align_proba(probabilities.rows(ids[pool], "unlabelled items"), probabilities.labels.labels, space)
    else:
        text_of = pd.Series(texts, index=ids)
        consensus = aggregator.labels_.reindex(answered).to_numpy(dtype=object)
        n_folds = min(5, len(answered))
        if n_folds < 2:
            raise InputError("relabelling needs answers on at least 2 items")
        labeled_probs = out_of_fold_proba(model_factory(), text_of.reindex(answered).to_numpy(dtype=object),
                                          consensus, n_folds=n_folds, label_space=answers.labels)  # fmt: skip
        model = model_factory().fit(text_of.reindex(answered).to_numpy(dtype=object), consensus)
        pool_probs = (
            align_proba(model.predict_proba(texts[pool]), model.classes_, answers.labels)
            if len(pool)
            else np.zeros((0, len(answers.labels)))
        )
    ranked = relabel_or_new(aggregator, answers, labeled_probs, ids[pool], pool_probs).head(batch_size)
    return ranked.assign(rank=np.arange(1, len(ranked) + 1))[["task", "kind", "score", "rank", "answers", "consensus"]]
