"""Label errors: confident learning on out-of-fold probabilities, and the crowd model's checks
(consensus against the model, annotators who are systematically off). Each returns a ranked
review list with reasons."""

from crowdloop.quality.confident_learning import (
    confident_joint,
    find_label_errors,
    label_quality_scores,
    per_class_thresholds,
    review_list,
)
from crowdloop.quality.crowd import annotator_report, consensus_model_disagreements, wilson_interval

__all__ = [
    "annotator_report",
    "confident_joint",
    "consensus_model_disagreements",
    "find_label_errors",
    "label_quality_scores",
    "per_class_thresholds",
    "review_list",
    "wilson_interval",
]
