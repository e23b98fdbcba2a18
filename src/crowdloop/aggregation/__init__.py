"""Truth inference: from answers to a posterior over each item's true label and worker skills.

Every classification aggregator is exported under crowd-kit's name (``MajorityVote``, ``Wawa``,
``ZeroBasedSkill``, ``DawidSkene``, ``OneCoinDawidSkene``, ``GLAD``, ``MACE``), beside crowdloop's
own ``ClassConditionalDawidSkene`` and ``TaxonomySkillModel``: a crowd-kit user changes one import.
"""

from crowdloop.aggregation.base import Aggregator, Gold
from crowdloop.aggregation.dawid_skene import ClassConditionalDawidSkene, DawidSkene, OneCoinDawidSkene
from crowdloop.aggregation.glad import GLAD
from crowdloop.aggregation.mace import MACE
from crowdloop.aggregation.posterior import Posterior
from crowdloop.aggregation.taxonomy_model import TaxonomySkillModel
from crowdloop.aggregation.voting import MajorityVote, Wawa
from crowdloop.aggregation.zero_based_skill import ZeroBasedSkill

__all__ = [
    "GLAD",
    "MACE",
    "Aggregator",
    "ClassConditionalDawidSkene",
    "DawidSkene",
    "Gold",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Posterior",
    "TaxonomySkillModel",
    "Wawa",
    "ZeroBasedSkill",
]
