"""ML in the loop: a default text classifier, cross-fitted probabilities and taxonomy helpers.

A model's opinion enters truth inference as one more (soft) worker: ``out_of_fold_proba`` gives the
probability rows, ``align_proba`` puts them on a ``LabelSpace`` and ``Answers.with_soft`` adds them.
"""

from crowdloop.models.branch_probs import ancestor_proba
from crowdloop.models.hierarchical import HierarchicalClassifier
from crowdloop.models.oof import align_proba, out_of_fold_proba
from crowdloop.models.text import TextClassifier, normalize_text

__all__ = [
    "HierarchicalClassifier",
    "TextClassifier",
    "align_proba",
    "ancestor_proba",
    "normalize_text",
    "out_of_fold_proba",
]
