"""Truth inference: from answers to a posterior over each item's true label and worker skills."""

from crowdloop.aggregation.base import Aggregator, Gold
from crowdloop.aggregation.dawid_skene import DawidSkene
from crowdloop.aggregation.posterior import Posterior
from crowdloop.aggregation.voting import MajorityVote, Wawa

__all__ = ["Aggregator", "DawidSkene", "Gold", "MajorityVote", "Posterior", "Wawa"]
