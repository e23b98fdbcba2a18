"""Dynamic consensus: accept an item, ask for one more answer, or escalate it to an expert."""

from crowdloop.consensus.control import Outlook, outlook
from crowdloop.consensus.decider import Decider, Decisions, Opinions, opinions_of
from crowdloop.consensus.decisions import (
    ACCEPTED,
    ESCALATED,
    MORE,
    STATUSES,
    Decided,
    ItemStates,
    decide_arrays,
)
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.fitting import DecisionModel, fit_decision
from crowdloop.consensus.policy import ConsensusPolicy, Prices
from crowdloop.consensus.presets import POLICIES, ModelAgreesConsensus, consensus_engine
from crowdloop.consensus.priority import expected_gain, priority
from crowdloop.consensus.routing import BranchSkills
from crowdloop.consensus.skills import SkillBook, SkillRules

__all__ = [
    "ACCEPTED",
    "ESCALATED",
    "MORE",
    "POLICIES",
    "STATUSES",
    "BranchSkills",
    "ConsensusPolicy",
    "Decided",
    "Decider",
    "DecisionModel",
    "Decisions",
    "DynamicConsensus",
    "ItemStates",
    "ModelAgreesConsensus",
    "Opinions",
    "Outlook",
    "Prices",
    "SkillBook",
    "SkillRules",
    "consensus_engine",
    "decide_arrays",
    "expected_gain",
    "fit_decision",
    "opinions_of",
    "outlook",
    "priority",
]
