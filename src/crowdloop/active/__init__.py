"""Active learning: which item, new or already labelled, is worth the next paid answer.

Strategies score a pool from a model's probabilities and/or the pool's features and pick a batch
(``strategies``); large pools are scored in chunks (``pool``); ``relabel`` weighs relabelling a
weakly agreed item against labelling a new one; ``stopping`` says when more labels stop changing
the model or stop paying for themselves (a learning-curve forecast); ``loop`` runs rounds and
records a learning curve (``labels, accuracy``).
"""

from crowdloop.active.committee import Committee
from crowdloop.active.diversity import k_center_greedy, kmeans_plus_plus
from crowdloop.active.features import TextFeatures
from crowdloop.active.loop import LearningCurve, cold_start_batch, labels_to_reach, run_active_learning
from crowdloop.active.pool import score_pool, select_from_pool
from crowdloop.active.relabel import relabel_or_new, relabel_or_new_scores
from crowdloop.active.scores import entropy, kl_to_consensus, least_confidence, margin, vote_entropy
from crowdloop.active.stopping import (
    CombinedStopping,
    LearningCurveForecast,
    StabilizingPredictions,
    StoppingRule,
    cohen_kappa,
)
from crowdloop.active.strategies import (
    STRATEGIES,
    DensityWeighted,
    DiverseBatch,
    QueryByCommittee,
    RandomSampling,
    Strategy,
    UncertaintySampling,
    make_strategy,
    top_batch,
)

__all__ = [
    "STRATEGIES",
    "CombinedStopping",
    "Committee",
    "DensityWeighted",
    "DiverseBatch",
    "LearningCurve",
    "LearningCurveForecast",
    "QueryByCommittee",
    "RandomSampling",
    "StabilizingPredictions",
    "StoppingRule",
    "Strategy",
    "TextFeatures",
    "UncertaintySampling",
    "cohen_kappa",
    "cold_start_batch",
    "entropy",
    "k_center_greedy",
    "kl_to_consensus",
    "kmeans_plus_plus",
    "labels_to_reach",
    "least_confidence",
    "make_strategy",
    "margin",
    "relabel_or_new",
    "relabel_or_new_scores",
    "run_active_learning",
    "score_pool",
    "select_from_pool",
    "top_batch",
    "vote_entropy",
]
