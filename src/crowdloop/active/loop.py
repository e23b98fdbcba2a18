"""The active-learning loop on a pool whose answers are known (a simulation, or labels bought
round by round): fit, evaluate, select, label, again; a learning curve comes out.

Each round fits a fresh model (``model_factory()``, default ``TextClassifier``) on the labelled
items, records its accuracy on the test items, predicts a stop set for the stopping rule, and
asks the strategy for the next batch from the unlabelled pool (scored in chunks). The first batch
is a cold start (no labels, so no model): ``cold_start`` is random or a diverse batch on the
pool's TF-IDF features. The curve is a plain frame with columns ``labels, accuracy`` (plus
``round``, the stopping rule's measurements such as ``kappa``, ``stop``, ``stop_rule`` naming what
said stop, ``fit_s, select_s``), the input a learning-curve forecast needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.active.committee import Committee
from crowdloop.active.features import TextFeatures
from crowdloop.active.pool import CHUNK_SIZE, select_from_pool
from crowdloop.active.stopping import StabilizingPredictions, StoppingRule
from crowdloop.active.strategies import DiverseBatch, QueryByCommittee, Strategy, make_strategy
from crowdloop.errors import ConfigError, InputError
from crowdloop.models import TextClassifier
from crowdloop.models.text import check_texts_labels


@dataclass
class LearningCurve:
    """What a run produced: ``curve`` (one row per round) and ``order`` (pool rows in the order
    they were labelled)."""

    strategy: str
    curve: pd.DataFrame
    order: np.ndarray

    def labels_to_reach(self, accuracy: float) -> float:
        """Labels at which the curve first reaches ``accuracy`` (linear between rounds; nan if never)."""
        return labels_to_reach(self.curve, accuracy)

    @property
    def stop_round(self) -> int | None:
        """The first round at which the stopping rule said stop (None if it never did)."""
        stops = np.flatnonzero(self.curve["stop"].to_numpy(bool))
        return int(self.curve["round"].iloc[stops[0]]) if len(stops) else None

    @property
    def stop_rule(self) -> str:
        """What said stop at ``stop_round`` ('' if nothing did)."""
        return "" if self.stop_round is None else str(self.curve["stop_rule"].iloc[self.stop_round])


def labels_to_reach(curve: pd.DataFrame, accuracy: float) -> float:
    """Labels at which a ``labels, accuracy`` curve first reaches ``accuracy``, interpolating
    linearly between its points; nan when it never does."""
    labels, acc = curve["labels"].to_numpy(float), curve["accuracy"].to_numpy(float)
    hit = np.flatnonzero(acc >= accuracy)
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(labels[0])
    share = (accuracy - acc[i - 1]) / (acc[i] - acc[i - 1])
    return float(labels[i - 1] + share * (labels[i] - labels[i - 1]))


def check_schedule(schedule: Sequence[int], pool_size: int) -> np.ndarray:
    schedule = np.asarray(schedule)
    if schedule.ndim != 1 or len(schedule) == 0 or not np.issubdtype(schedule.dtype, np.integer):
        raise ConfigError("the schedule must be a non-empty list of label counts, e.g. 500,1000,2000")
    if schedule[0] < 2 or (np.diff(schedule) <= 0).any():
        raise ConfigError(f"the schedule must increase from at least 2 labels, got {schedule.tolist()}")
    if schedule[-1] > pool_size:
        raise ConfigError(f"the schedule asks for {schedule[-1]} labels but the pool has {pool_size} items")
    return schedule.astype(np.int64)


def cold_start_batch(
    batch_size: int,
    pool_size: int,
    *,
    method: str = "random",
    features: np.ndarray | sp.spmatrix | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """The first batch, before any label exists: ``random``, or ``coreset`` / ``kmeans++`` on features."""
    rng = np.random.default_rng(random_state)
    if method == "random":
        return rng.choice(pool_size, size=min(batch_size, pool_size), replace=False)
    if method not in ("coreset", "kmeans++"):
        raise ConfigError(f"unknown cold start {method!r}; use random, coreset or kmeans++")
    if features is None:
        raise InputError(f"a {method} cold start needs the pool's features")
    rows, _ = select_from_pool(DiverseBatch(method), features, batch_size, random_state=rng)
    return rows


def run_active_learning(
    texts: Sequence[str] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
    strategy: Strategy | str,
    schedule: Sequence[int],
    *,
    test_texts: Sequence[str] | np.ndarray,
    test_labels: Sequence[Hashable] | np.ndarray,
    model_factory: Callable[[], object] = TextClassifier,
    cold_start: str = "random",
    features: np.ndarray | sp.spmatrix | None = None,
    stopping: StoppingRule | None = None,
    stop_early: bool = False,
    stop_set_size: int = 2000,
    chunk_size: int = CHUNK_SIZE,
    random_state: int = 0,
) -> LearningCurve:
    """Run rounds until ``schedule[-1]`` labels; ``schedule`` gives the labelled count after each round
    (the first entry is the cold-start batch). ``labels`` are the answers the pool will get.

    ``features`` (pool rows, e.g. ``TextFeatures().fit_transform(texts)``) are computed when the
    strategy or the cold start needs them and none are given. The stop set is a random sample of
    ``stop_set_size`` pool items; ``stopping`` (any ``StoppingRule``: ``StabilizingPredictions()``, the
    default, ``LearningCurveForecast`` or a ``CombinedStopping`` of both) sees every round; with
    ``stop_early`` the run ends at the first round it says stop, otherwise it only records it.
    """
    texts, labels = check_texts_labels(texts, labels, source="pool")
    test_texts, test_labels = check_texts_labels(test_texts, test_labels, source="test items")
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    schedule = check_schedule(schedule, len(texts))
    stopping = StabilizingPredictions() if stopping is None else stopping
    rng = np.random.default_rng(random_state)
    needs_features = "features" in strategy.needs or cold_start != "random"
    if features is None and needs_features:
        features = TextFeatures().fit_transform(texts)
    if features is not None and features.shape[0] != len(texts):
        raise InputError(f"{features.shape[0]} feature rows for a pool of {len(texts)} items")
    features = features.tocsr() if features is not None and sp.issparse(features) else features
    stop_set = texts[rng.choice(len(texts), size=min(stop_set_size, len(texts)), replace=False)]

    labeled = np.zeros(len(texts), dtype=bool)
    order = cold_start_batch(int(schedule[0]), len(texts), method=cold_start, features=features, random_state=rng)
    labeled[order] = True
    rows = []
    select_s = 0.0
    for round_ in range(len(schedule)):
        started = time.perf_counter()
        train = np.flatnonzero(labeled)
        model = model_factory().fit(texts[train], labels[train])
        fit_s = time.perf_counter() - started
        accuracy = float((np.asarray(model.predict(test_texts), dtype=object) == test_labels).mean())
        last = round_ + 1 == len(schedule)
        stop = stopping.update(
            model.predict(stop_set), labels=int(labeled.sum()), accuracy=accuracy, n_eval=len(test_labels),
            next_batch=None if last else int(schedule[round_ + 1] - schedule[round_]),
        )  # fmt: skip
        rows.append(
            {
                "labels": int(labeled.sum()),
                "accuracy": accuracy,
                "round": round_,
                **stopping.record(),
                "stop": stop,
                "stop_rule": stopping.fired,
                "fit_s": fit_s,
                "select_s": select_s,
            }
        )
        if last or (stop and stop_early):
            break
        started = time.perf_counter()
        pool = np.flatnonzero(~labeled)
        batch = int(schedule[round_ + 1]) - int(labeled.sum())
        predict = model.predict_proba
        if isinstance(strategy, QueryByCommittee):
            committee = Committee(model_factory(), strategy.n_members, random_state=int(rng.integers(2**31)))
            predict = committee.fit(texts[train], labels[train]).predict_proba
        predict_rows, featurize_rows = _by_row(pool, texts, predict, features)
        pick, _ = select_from_pool(
            strategy,
            np.arange(len(pool)),
            batch,
            predict_proba=predict_rows,
            featurize=featurize_rows,
            labeled_features=features[train] if features is not None else None,
            chunk_size=chunk_size,
            random_state=rng,
        )
        chosen = pool[pick]
        labeled[chosen] = True
        order = np.concatenate([order, chosen])
        select_s = time.perf_counter() - started
    return LearningCurve(strategy.name, pd.DataFrame(rows), order)


def _by_row(pool: np.ndarray, texts: np.ndarray, predict: Callable, features) -> tuple[Callable, Callable | None]:
    """Functions of positions in ``pool`` (the unlabelled rows): their probabilities and features."""

    def predict_rows(positions: np.ndarray) -> np.ndarray:
        return predict(texts[pool[positions]])

    def featurize_rows(positions: np.ndarray):
        return features[pool[positions]]

    return predict_rows, featurize_rows if features is not None else None
