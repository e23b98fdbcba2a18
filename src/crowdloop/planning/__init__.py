"""How much data? Learning curves (a power law with bootstrap intervals), forecasts of the labels a
target accuracy needs, and the cost model that says: add data, or change the model."""

from crowdloop.planning.cost import CostModel, Plan, plan
from crowdloop.planning.curve import Interval, LearningCurve, fit_learning_curve, labels_for, power_law
from crowdloop.planning.measure import measure_learning_curve

__all__ = [
    "CostModel",
    "Interval",
    "LearningCurve",
    "Plan",
    "fit_learning_curve",
    "labels_for",
    "measure_learning_curve",
    "plan",
    "power_law",
]
