"""The per-item decision: accept, ask for more answers (and how many), or escalate to an expert."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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
    ``confidence``, human ``answers`` so far and ``next``, the answers to order now."""

    status: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    answers: np.ndarray
    next: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"status": self.status, "label": self.label, "confidence": self.confidence, "answers": self.answers,
             "next": self.next}
        )  # fmt: skip


def decide(
    states: ItemStates,
    policy: ConsensusPolicy,
    answers_needed: np.ndarray,
    *,
    fallback_label: np.ndarray | None = None,
    fallback_confidence: np.ndarray | None = None,
) -> pd.DataFrame:
    """``decide_arrays`` as a table (columns status, label, confidence, answers, next)."""
    return decide_arrays(
        states, policy, answers_needed, fallback_label=fallback_label, fallback_confidence=fallback_confidence
    ).frame()


def decide_arrays(
    states: ItemStates,
    policy: ConsensusPolicy,
    answers_needed: np.ndarray,
    *,
    fallback_label: np.ndarray | None = None,
    fallback_confidence: np.ndarray | None = None,
) -> Decided:
    """Status and the number of answers to order now, per item.

    ``answers_needed[i]`` is the least number of further agreeing answers after which item i would
    reach the target (``np.inf`` when none would). Rules, in order:

    1. accepted: at least ``min_overlap`` answers and the calibrated confidence >= ``target``;
    2. escalated: at ``max_overlap`` answers, or (``escalate_early``) unable to reach the target
       within it even if every further answer agreed; with ``fallback_label`` (the deepest
       confident taxonomy level, -1 for none) such an item is accepted at that level instead;
    3. more: order ``max(min_overlap - answers, answers_needed)`` answers now (at least one, within
       ``max_overlap``), since fewer could not finish the item anyway.
    """
    n = states.answers
    room = np.maximum(policy.max_overlap - n, 0)
    reached = (states.confidence >= policy.target) & (n >= policy.min_overlap) & (states.label >= 0)
    hopeless = ~reached & ((room == 0) | (policy.escalate_early & (answers_needed > room)))
    label = states.label.copy()
    confidence = states.confidence.copy()
    status = np.where(reached, ACCEPTED, np.where(hopeless, ESCALATED, MORE)).astype(object)
    if fallback_label is not None:
        partial = hopeless & (fallback_label >= 0)
        status[partial] = ACCEPTED
        label[partial] = fallback_label[partial]
        confidence[partial] = fallback_confidence[partial]
    need = np.maximum(policy.min_overlap - n, np.where(np.isfinite(answers_needed), answers_needed, 1))
    order = np.where(status == MORE, np.clip(need, 1, np.maximum(room, 1)), 0).astype(np.int64)
    return Decided(status, label, confidence, n, order)
