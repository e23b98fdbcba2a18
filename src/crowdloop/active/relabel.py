r"""Relabel or label a new item? One score for both (in the spirit of ActiveLab, Goh & Mueller 2023).

When answers are noisy, the next paid answer may do more good on an item that is already labelled
but whose consensus is weak than on a new item. Both kinds get a *consensus quality* $q$ in [0, 1]
and compete on $1 - q$ (higher: ask first):

- a labelled item $i$ with consensus $\hat y_i$ (the argmax of crowdloop's aggregation posterior)
  and answers $y_{ij}$ from workers with weights $w_j$:
  $q_i = \dfrac{w_m\, p_i(\hat y_i) + n_i w_a\, a_i}{w_m + n_i w_a}$, with
  $a_i = \sum_j w_j [y_{ij} = \hat y_i] / \sum_j w_j$ the weighted agreement with the consensus;
- an unlabelled item, whose only opinion is the model's, plus one imaginary annotator who knows
  nothing (agreement $1/K$):
  $q_i = \dfrac{w_m \max_k p_i(k) + w_a / K}{w_m + w_a}$.

$p_i$ are the model's probabilities (out-of-fold for labelled items, so the model does not echo
their labels back); the weights are skill above chance,
$w = \max\!\left(\frac{\text{acc} - 1/K}{1 - 1/K}, 0.01\right)$: $w_j$ from each worker's accuracy
as the aggregation posterior sees it (``expected_accuracy``), $w_a$ their mean over answers, $w_m$
from the model's agreement with the consensus labels. The agreement $a_i$, not the posterior's
own confidence, measures a labelled item's consensus: an EM posterior is often sure of an item
its three workers split on (each worker's skill, learned elsewhere, breaks the tie). The more
answers and the better the annotators, the more $q_i$ rests on them; an unlabelled item is worth
asking about when the model is unsure.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from crowdloop.active.scores import check_probs
from crowdloop.aggregation.base import Aggregator, expected_accuracy
from crowdloop.answers import Answers
from crowdloop.errors import InputError


def skill_weight(accuracy: float | np.ndarray, n_classes: int) -> float | np.ndarray:
    """Accuracy above chance rescaled to [0.01, 1]: 1/K (chance) gives 0.01, 1.0 gives 1."""
    chance = 1.0 / max(n_classes, 2)
    weight = np.clip((np.asarray(accuracy, dtype=np.float64) - chance) / (1.0 - chance), 0.01, 1.0)
    return float(weight) if weight.ndim == 0 else weight


def relabel_or_new_scores(
    consensus: np.ndarray,
    agreement: np.ndarray,
    labeled_model_probs: np.ndarray,
    pool_model_probs: np.ndarray,
    answers_per_item: np.ndarray,
    annotator_weight: float,
    model_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores $1 - q$ of the labelled items (consensus codes, weighted agreement $a_i$ in [0, 1]) and of
    the pool (unlabelled) items. Both probability arrays have the same K label columns."""
    labeled_model_probs = check_probs(labeled_model_probs, source="model probabilities of labelled items")
    pool_model_probs = check_probs(pool_model_probs, source="model probabilities of the pool")
    consensus = np.asarray(consensus, dtype=np.int64)
    agreement = np.asarray(agreement, dtype=np.float64)
    answers_per_item = np.asarray(answers_per_item, dtype=np.float64)
    n_classes = labeled_model_probs.shape[1]
    if not (len(consensus) == len(agreement) == len(answers_per_item) == len(labeled_model_probs)) or (
        pool_model_probs.shape[1] != n_classes
    ):
        raise InputError(
            f"shapes do not match: {len(consensus)} consensus labels, {len(agreement)} agreements, "
            f"{len(answers_per_item)} answer counts, labelled model probabilities {labeled_model_probs.shape}, "
            f"pool model probabilities {pool_model_probs.shape}"
        )
    crowd = answers_per_item * annotator_weight
    model_says = labeled_model_probs[np.arange(len(consensus)), consensus]
    labeled_quality = (model_weight * model_says + crowd * agreement) / (model_weight + crowd)
    pool_quality = (model_weight * pool_model_probs.max(axis=1) + annotator_weight / n_classes) / (
        model_weight + annotator_weight
    )
    return 1.0 - labeled_quality, 1.0 - pool_quality


def relabel_or_new(
    aggregator: Aggregator,
    answers: Answers,
    labeled_model_probs: np.ndarray,
    pool_items: Sequence[Hashable] | pd.Index,
    pool_model_probs: np.ndarray,
) -> pd.DataFrame:
    """Every labelled and pool item ranked by the value of its next answer, best first.

    ``aggregator`` is fitted on ``answers``; ``labeled_model_probs`` (rows in the order of
    ``aggregator.items_``) and ``pool_model_probs`` (rows of ``pool_items``) have the columns of
    ``answers.labels``. Returns columns ``task, kind (relabel | new), score, answers, consensus``.
    """
    posterior = aggregator.posterior_.dense()
    labeled_model_probs = check_probs(labeled_model_probs, source="model probabilities of labelled items")
    if labeled_model_probs.shape[0] != posterior.shape[0]:
        raise InputError(f"{labeled_model_probs.shape[0]} model rows for {posterior.shape[0]} labelled items")
    n_classes = posterior.shape[1]
    consensus = posterior.argmax(axis=1)
    worker_weight = skill_weight(np.nan_to_num(expected_accuracy(answers, posterior), nan=1.0 / n_classes), n_classes)
    weight = worker_weight[answers.worker]
    agrees = weight * (answers.label == consensus[answers.item])
    total = np.bincount(answers.item, weights=weight, minlength=answers.n_items)
    agreement = np.divide(
        np.bincount(answers.item, weights=agrees, minlength=answers.n_items), total, out=np.zeros(len(total)),
        where=total > 0,
    )  # fmt: skip
    model_accuracy = float((labeled_model_probs.argmax(axis=1) == consensus).mean())
    per_item = answers.answers_per_item()
    labeled, pool = relabel_or_new_scores(
        consensus,
        agreement,
        labeled_model_probs,
        pool_model_probs,
        per_item,
        float(weight.mean()) if len(weight) else 0.01,
        skill_weight(model_accuracy, n_classes),
    )
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "task": np.asarray(aggregator.items_, dtype=object),
                    "kind": "relabel",
                    "score": labeled,
                    "answers": per_item,
                    "consensus": answers.labels.decode(consensus),
                }
            ),
            pd.DataFrame(
                {"task": np.asarray(pool_items, dtype=object), "kind": "new", "score": pool, "answers": 0}
            ).assign(consensus=None),
        ],
        ignore_index=True,
    )
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
