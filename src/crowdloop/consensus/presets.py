"""Named consensus policies: the fully probabilistic engine and the "model agrees" rule of thumb.

``probabilistic`` is ``DynamicConsensus``: accept when the calibrated probability of the leading
label reaches the target. ``model-agrees`` is ``ModelAgreesConsensus``: the rule retail labeling
teams report as their best (accept when one human and a confident model agree, otherwise ask more),
spelled out so that every decision can be explained in one sentence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.aggregation.posterior import CandidatePosterior, top_of_csr
from crowdloop.answers import Answers
from crowdloop.consensus.decisions import ACCEPTED, ESCALATED, MORE
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.errors import ConfigError


class ModelAgreesConsensus(DynamicConsensus):
    """Accept when a human and a confident model agree; otherwise ask more humans.

    Per item, with the model's most probable label $\\hat y$ and its probability $p$ (the soft
    annotator's row, e.g. out-of-fold probabilities of a text classifier), in this order:

    1. **model agrees**: $p \\ge$ ``threshold`` and at least one human answered $\\hat y$:
       accepted with $\\hat y$;
    2. **humans agree**: the most frequent human answer has at least ``human_agreement`` votes
       and strictly more than any other: accepted with it;
    3. **escalated** at ``policy.max_overlap`` human answers (to an expert reviewer);
    4. **more**: one more human answer.

    Nothing is accepted before ``policy.min_overlap`` human answers. ``policy.target`` plays no
    part in the decision; the ``confidence`` column is the fitted engine's calibrated probability
    of the decided label (how sure the probabilistic model is of what the rule accepted), so the
    two policies can be compared item by item. Without a model only rule 2 applies.
    """

    def __init__(
        self,
        policy: ConsensusPolicy | None = None,
        *,
        threshold: float = 0.8,
        human_agreement: int = 2,
        **engine: Any,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
        if not (isinstance(human_agreement, int) and human_agreement >= 1):
            raise ConfigError(f"human_agreement must be an integer >= 1, got {human_agreement!r}")
        super().__init__(policy, **engine)
        self.threshold = threshold
        self.human_agreement = human_agreement

    def _decide_codes(self, answers: Answers) -> pd.DataFrame:
        states, posterior = self.states(answers)
        n_items, k = answers.n_items, answers.n_labels
        n = states.answers
        votes = sp.csr_matrix(
            (np.ones(answers.n_answers), (answers.item, answers.label)), shape=(n_items, k), dtype=np.float64
        )
        top, count = top_of_csr(votes, 2)
        human_label = np.where(count[:, 0] > 0, top[:, 0], -1).astype(np.int64)
        humans_agree = (count[:, 0] >= self.human_agreement) & (count[:, 0] > count[:, 1])
        model_label, model_confidence = model_top(answers)
        backed = np.asarray(votes[np.arange(n_items), np.maximum(model_label, 0)]).ravel() >= 1
        model_agrees = (model_label >= 0) & (model_confidence >= self.threshold) & backed
        enough = n >= self.policy.min_overlap
        accept_model = model_agrees & enough
        accept_humans = humans_agree & enough & ~accept_model
        label = np.where(accept_model, model_label, np.where(accept_humans, human_label, states.label))
        settled = accept_model | accept_humans
        escalate = ~settled & (n >= self.policy.max_overlap)
        status = np.where(settled, ACCEPTED, np.where(escalate, ESCALATED, MORE)).astype(object)
        confidence = self.calibrated_confidence(probability_of(posterior, label), n)
        more = (status == MORE) * 1
        return pd.DataFrame(
            {"status": status, "label": label, "confidence": confidence, "answers": n, "next": more,
             "expected": more.astype(np.float64), "expert": (status == ESCALATED) * 1.0}
        )  # fmt: skip


def model_top(answers: Answers) -> tuple[np.ndarray, np.ndarray]:
    """Per item the soft annotator's most probable label (-1 without a row) and its probability;
    with several rows for an item, the most confident one."""
    label = np.full(answers.n_items, -1, dtype=np.int64)
    confidence = np.zeros(answers.n_items)
    if answers.soft is None or not len(answers.soft):
        return label, confidence
    code, value = top_of_csr(answers.soft.probs, 1)
    order = np.argsort(value[:, 0], kind="stable")  # the most confident row is written last
    label[answers.soft.item[order]] = code[order, 0]
    confidence[answers.soft.item[order]] = value[order, 0]
    return label, confidence


def probability_of(posterior: CandidatePosterior, label: np.ndarray) -> np.ndarray:
    """Posterior probability of ``label[i]`` for each item i (0 for a label that is no candidate)."""
    n_items = len(posterior.indptr) - 1
    k = int(max(posterior.c_label.max(initial=0), label.max(initial=0))) + 1
    key = posterior.c_item.astype(np.int64) * k + posterior.c_label
    order = np.argsort(key, kind="stable")
    wanted = np.arange(n_items, dtype=np.int64) * k + np.maximum(label, 0)
    at = np.minimum(np.searchsorted(key[order], wanted), len(key) - 1)
    found = (key[order][at] == wanted) & (label >= 0) if len(key) else np.zeros(n_items, dtype=bool)
    return np.where(found, posterior.prob[order][at] if len(key) else 0.0, 0.0)


POLICIES = ("probabilistic", "model-agrees")
"""Named policies, as ``crowdloop decide --policy`` takes them."""


def consensus_engine(
    name: str, policy: ConsensusPolicy | None = None, *, threshold: float = 0.8, **engine: Any
) -> DynamicConsensus:
    """The engine of the named policy (``POLICIES``); ``threshold`` is the model confidence of
    ``model-agrees``."""
    if name == "probabilistic":
        return DynamicConsensus(policy, **engine)
    if name == "model-agrees":
        return ModelAgreesConsensus(policy, threshold=threshold, **engine)
    raise ConfigError(f"unknown policy {name!r}; use one of {', '.join(POLICIES)}")
