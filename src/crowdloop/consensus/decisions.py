"""The per-item decision: accept, ask for more answers (and how many), or escalate to an expert."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np
import pandas as pd

from crowdloop.consensus.control import Outlook
from crowdloop.consensus.policy import ConsensusPolicy

ACCEPTED, MORE, ESCALATED = "accepted", "more", "escalated"
STATUSES = (ACCEPTED, MORE, ESCALATED)


@dataclass(frozen=True)
class ItemStates:
    """Where each item stands: its leading label (code, -1 for none), the calibrated probability
    that it is right, the raw posterior confidence and the number of human answers so far."""

    label: np.ndarray
    confidence: np.ndarray
    raw_confidence: np.ndarray
    answers: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class Decided:
    """Per item: ``status`` (object array of ``STATUSES``), ``label`` code (-1: none), calibrated
    ``confidence``, human ``answers`` so far, ``next`` (the answers to order now), ``expected``
    (crowd answers still expected before the item is settled) and ``expert`` (the chance it ends
    with an expert: 1 for an escalated item)."""

    status: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    answers: np.ndarray
    next: np.ndarray
    expected: np.ndarray
    expert: np.ndarray

    def take(self, index: np.ndarray) -> Self:
        """The decisions of the items at ``index`` (positions or a mask)."""
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"status": self.status, "label": self.label, "confidence": self.confidence, "answers": self.answers,
             "next": self.next, "expected": self.expected, "expert": self.expert}
        )  # fmt: skip


def decide_arrays(
    states: ItemStates,
    policy: ConsensusPolicy,
    outlook: Outlook,
    *,
    fallback_label: np.ndarray | None = None,
    fallback_confidence: np.ndarray | None = None,
    backed: np.ndarray | None = None,
) -> Decided:
    """Status and the number of answers to order now, per item, from the costed lookahead
    ``outlook`` (``consensus.control``). Rules, in order:

    1. accepted: at least ``min_overlap`` answers, the calibrated confidence >= ``target`` and the
       label ``backed`` (False where people answered and none of them backs it; None: every label is);
    2. escalated: at ``max_overlap`` answers, or stopping (an expert) is expected to cost less than
       the crowd's answers to finish, the target being out of reach included; with
       ``fallback_label`` (the deepest confident taxonomy level, -1 for none) such an item is
       accepted at that level instead;
    3. more: order ``max(min_overlap - answers, needed)`` answers now (at least one, within
       ``max_overlap``), ``needed`` being the answers the target takes if every one agreed, since
       fewer could not finish the item.
    """
    n = states.answers
    room = np.maximum(policy.max_overlap - n, 0)
    reached = (states.confidence >= policy.target) & (n >= policy.min_overlap) & (states.label >= 0)
    if backed is not None:
        reached &= backed
    hopeless = ~reached & ((room == 0) | ~outlook.go_on)
    label = states.label.copy()
    confidence = states.confidence.copy()
    status = np.where(reached, ACCEPTED, np.where(hopeless, ESCALATED, MORE)).astype(object)
    expert = np.where(reached, 0.0, np.where(hopeless, 1.0, outlook.expert_probability))
    if fallback_label is not None:
        partial = hopeless & (fallback_label >= 0)
        status[partial] = ACCEPTED
        label[partial] = fallback_label[partial]
        confidence[partial] = fallback_confidence[partial]
        expert[partial] = 0.0
    needed = outlook.needed
    need = np.maximum(policy.min_overlap - n, np.where(np.isfinite(needed), needed, 1))
    more = status == MORE
    order = np.where(more, np.clip(need, 1, np.maximum(room, 1)), 0).astype(np.int64)
    expected = np.where(more, np.maximum(outlook.expected_answers, order), 0.0)
    return Decided(status, label, confidence, n, order, expected, expert)
