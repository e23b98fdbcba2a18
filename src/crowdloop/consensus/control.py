r"""Costed control of an item: accept, ask k more answers, or escalate to an expert.

Decision-theoretic control in the spirit of P. Dai, Mausam and D. S. Weld, "Decision-theoretic
control of crowd-sourced workflows" (AAAI 2010), and V. S. Sheng, F. Provost and P. G. Ipeirotis,
"Get another label? Improving data quality and data mining using multiple, noisy labelers" (KDD
2008): each further answer is bought only while it is expected to cost less than the alternative.

The state of an item is its posterior: $p_1$ on the leading label, $p_2$ on the strongest
alternative and $p_3 = 1 - p_1 - p_2$ on all others, after $n$ human answers (the ``Decider`` takes
the runner-up as the alternative, or, when the labels nobody named yet weigh more, one of those:
after a poor annotator's answer the truth is most likely a label still to be named). A future
answer comes from a typical annotator (the median skill $s$ of the project's annotators) and
names the leading label, the alternative or another one. With one-coin errors over the $K - 1$
other labels ($q = (1 - s) / (K - 1)$), after $a$ answers for the leader, $b$ for the alternative
and $d$ others among $m$ more, Bayes' rule weighs the three hypotheses "the truth is the leader /
the alternative / another label" as

$$w_1 = p_1 s^a q^b r^d, \quad w_2 = p_2 q^a s^b r^d, \quad w_3 = p_3 q^{a+b} (1 - 2q)^d,
  \qquad r = 1 - s - q,$$

and the item's confidence is $\max(w_1, w_2) / (w_1 + w_2 + w_3)$: either label may end up
accepted. Its calibrated value (the gold calibrator at $n + m$ answers) is compared with the
target. With $c$ the price of a crowd answer and $E$ the cost of stopping unreached (an expert
review; with a ``label_value`` $v$ the cheaper of the two, no item being worth more than its label;
without ``escalate_early``, $v$ or unbounded: no expert before ``max_overlap``), the expected cost
to finish is the finite-horizon Bellman recursion over $m = R, \dots, 0$ ($R$: the answers left
before ``max_overlap``)

$$V_m(a, b) = \begin{cases} 0 & \text{reached} \\ E & m = R \\
  \min\big(E,\; c + \pi_1 V_{m+1}(a+1, b) + \pi_2 V_{m+1}(a, b+1) + \pi_3 V_{m+1}(a, b)\big)
  & \text{otherwise} \end{cases}$$

with $\pi$ the predictive probabilities of the next answer under the normalised $w$. Now ($m = 0$):
accept if reached, escalate if stopping is cheaper than going on (the crowd's expected cost to
finish exceeds the expert's, or the target is out of reach within $R$ answers), otherwise ask more:
as many as the target needs if every one named the leader (fewer could not finish the item). The
same recursion, following the chosen actions, gives the expected crowd answers still needed and the
probability of ending with the expert. Vectorized over items: arrays of (items, a, b) per step,
$O(R^3)$ cells in all.

**An unknown crowd** (``TypicalSkill``). Early in a project the typical skill is a prior, not a
measurement: $s \sim \mathrm{Beta}(n\bar s, n(1 - \bar s))$ with $n$ the tasks that showed the
crowd's accuracy (two or more answers, or gold) plus the prior's strength. The crowd's skill is
learned from the answers bought across the project's items, so the lookahead values going on by
the *expected value of perfect information* about it: the recursion runs at each of $J$ quantile
nodes $s_j$ of that Beta (equal weights), and the item goes on when

$$c + \frac{1}{J} \sum_j \sum_h \pi_h(s_j)\, V_1(\cdot\,; s_j) < E,$$

each $V_1(\cdot\,; s_j)$ deciding later steps as if $s_j$ were known by then (Howard 1966, "Information
value theory"). With a pessimistic stated prior and no evidence yet (say 0.7, two labels, target
0.97, an expert at 10), the point estimate escalates every task after its first answer, so the
agreement that would show a better crowd is never seen; the integrated lookahead buys it while the
crowd's accuracy is unknown and, once the evidence is in, decides as the point estimate does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv

from crowdloop.consensus.policy import ConsensusPolicy

NO_EXPERT = 1e12
"""The cost of stopping unreached when ``escalate_early`` is off (no expert to escalate to early)."""
Calibrate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Raw confidence and answer count (same shapes, flat) -> calibrated confidence."""
SKILL_NODES = 5
"""Quantile nodes of the typical skill's Beta belief the lookahead integrates over."""
SKILL_RESOLUTION = 0.01
"""Nodes spanning less skill than this are one: the belief is as good as known."""


@dataclass(frozen=True)
class TypicalSkill:
    r"""The accuracy of a typical annotator: ``mean`` backed by ``evidence`` observations of the
    crowd's accuracy (tasks with two or more answers or with gold, plus the prior's strength);
    the belief is $\mathrm{Beta}(n\bar s, n(1 - \bar s))$, a point when ``evidence`` is infinite."""

    mean: float
    evidence: float = float("inf")

    def nodes(self, n_labels: int) -> np.ndarray:
        """``SKILL_NODES`` equal-weight quantile nodes of the belief (one node, the mean, for a point
        or a belief narrower than ``SKILL_RESOLUTION``), each kept above chance (1/K) and below 1."""
        k = max(n_labels, 2)
        values = np.array([self.mean])
        if np.isfinite(self.evidence):
            n = max(self.evidence, 1e-6)
            levels = (np.arange(SKILL_NODES) + 0.5) / SKILL_NODES
            spread = betaincinv(n * self.mean, n * (1 - self.mean), levels)
            if np.ptp(spread) >= SKILL_RESOLUTION:
                values = spread
        return np.clip(values, 1.0 / k + 1e-3, 1 - 1e-6)


@dataclass(frozen=True)
class Outlook:
    """Per item: ``reached`` (the target is met now), ``go_on`` (buying answers is cheaper than
    stopping), ``needed`` (least further answers that could reach the target if all agreed; inf:
    none within ``max_overlap``), ``expected_answers`` (crowd answers still expected under the
    chosen actions), ``expert_probability`` (chance of ending with the expert) and
    ``stop_cost`` (the cost of stopping unreached, $E$)."""

    reached: np.ndarray
    go_on: np.ndarray
    needed: np.ndarray
    expected_answers: np.ndarray
    expert_probability: np.ndarray
    stop_cost: float


def outlook(
    raw: np.ndarray,
    second: np.ndarray,
    answers: np.ndarray,
    has_label: np.ndarray,
    policy: ConsensusPolicy,
    skill: TypicalSkill | float,
    n_labels: int,
    calibrate: Calibrate,
) -> Outlook:
    """The lookahead of the module docstring for items whose leading label has raw confidence
    ``raw`` and the runner-up ``second`` after ``answers`` human answers (``has_label`` False:
    nobody answered yet; its first answer makes the leading label, of confidence $s$ under a
    uniform prior), integrated over the typical ``skill`` (a float: known)."""
    belief = skill if isinstance(skill, TypicalSkill) else TypicalSkill(float(skill))
    prices = policy.prices
    expert = prices.expert if policy.escalate_early else NO_EXPERT
    stop = expert if policy.label_value is None else min(expert, policy.label_value)
    empty = ~np.asarray(has_label, dtype=bool)
    n0 = np.asarray(answers, dtype=np.int64) + empty  # an empty item is judged after its first answer
    room = np.maximum(policy.max_overlap - n0, 0)
    runs = [
        _recursion(np.asarray(raw, dtype=np.float64), np.asarray(second, dtype=np.float64), empty, n0, room,
                   policy, s, max(n_labels, 2), calibrate, stop)
        for s in belief.nodes(n_labels)
    ]  # fmt: skip
    reached = runs[0].reached
    cont_value = np.mean([r.cont_value for r in runs], axis=0)
    go_on = ~reached & (room > 0)
    if policy.escalate_early or policy.label_value is not None:  # else no expert: ask up to max_overlap
        go_on &= cont_value < stop
    needed = np.min([r.needed for r in runs], axis=0)
    needed = np.where(empty, needed + 1, needed)
    open_ = go_on | empty
    expected = np.mean([r.cont_answers for r in runs], axis=0)
    expert_p = np.where(reached, 0.0, np.where(go_on, np.mean([r.cont_expert for r in runs], axis=0), 1.0))
    return Outlook(
        reached=reached & ~empty,
        go_on=go_on | (empty & (policy.max_overlap > np.asarray(answers))),
        needed=needed,
        expected_answers=np.where(open_, np.where(go_on, expected, 0.0) + empty, 0.0),
        expert_probability=np.where(reached & ~empty, 0.0, expert_p),
        stop_cost=float(stop),
    )


@dataclass(frozen=True)
class _Now:
    """One recursion's view of the present ($m = 0$): ``reached``, and for going on: its expected
    cost ``cont_value``, crowd answers ``cont_answers`` and chance of the expert ``cont_expert``
    (later steps decided optimally at this skill), and ``needed``."""

    reached: np.ndarray
    cont_value: np.ndarray
    cont_answers: np.ndarray
    cont_expert: np.ndarray
    needed: np.ndarray


def _recursion(
    raw: np.ndarray,
    second: np.ndarray,
    empty: np.ndarray,
    n0: np.ndarray,
    room: np.ndarray,
    policy: ConsensusPolicy,
    s: float,
    k: int,
    calibrate: Calibrate,
    stop: float,
) -> _Now:
    """The Bellman recursion of the module docstring at a known typical skill ``s``."""
    q = (1 - s) / (k - 1)
    r = max(1 - s - q, 1e-12)
    r3 = max(1 - 2 * q, 1e-12)
    p1 = np.clip(np.where(empty, s, raw), 1e-12, 1 - 1e-12)
    p2 = np.clip(np.where(empty, q, second), 1e-15, 1 - p1)
    p3 = np.maximum(1 - p1 - p2, 1e-15)
    log_p = np.log(np.stack([p1, p2, p3], axis=1))[:, :, None, None]  # items x 3 x a x b
    horizon = int(room.max(initial=0))
    n_items = len(p1)
    steps = np.log(np.array([[s, q, r], [q, s, r], [q, q, r3]]))  # hypothesis x (leader, runner-up, other)
    crowd = policy.prices.crowd
    choose = policy.escalate_early or policy.label_value is not None

    value = expected = expert_p = np.zeros((n_items, horizon + 2, horizon + 2))
    needed = np.full(n_items, np.inf)
    now = None
    for m in range(horizon, -1, -1):
        a = np.arange(m + 1)[:, None]
        b = np.arange(m + 1)[None, :]
        d = m - a - b
        valid = d >= 0
        log_w = log_p + (steps[:, 0, None, None] * a + steps[:, 1, None, None] * b
                         + steps[:, 2, None, None] * np.maximum(d, 0))[None]  # fmt: skip
        top = log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w - top)
        w /= w.sum(axis=1, keepdims=True)
        raw_m = np.maximum(w[:, 0], w[:, 1])
        count = np.broadcast_to((n0 + m)[:, None, None], raw_m.shape)
        conf = calibrate(raw_m.ravel(), count.ravel()).reshape(raw_m.shape)
        reached = (conf >= policy.target) & (count >= policy.min_overlap) & valid[None]
        # predictive probabilities of the next answer: for the leader, the runner-up, another label
        pi = np.einsum("ihab,hj->ijab", w, np.exp(steps))
        cont_value = crowd + (pi[:, 0] * value[:, 1 : m + 2, : m + 1] + pi[:, 1] * value[:, : m + 1, 1 : m + 2]
                              + pi[:, 2] * value[:, : m + 1, : m + 1])  # fmt: skip
        cont_answers = 1 + (pi[:, 0] * expected[:, 1 : m + 2, : m + 1] + pi[:, 1] * expected[:, : m + 1, 1 : m + 2]
                            + pi[:, 2] * expected[:, : m + 1, : m + 1])  # fmt: skip
        cont_expert = (pi[:, 0] * expert_p[:, 1 : m + 2, : m + 1] + pi[:, 1] * expert_p[:, : m + 1, 1 : m + 2]
                       + pi[:, 2] * expert_p[:, : m + 1, : m + 1])  # fmt: skip
        last = (m >= room)[:, None, None]
        cont = ~reached & ~last & valid[None]
        if choose:
            cont &= cont_value < stop
        size = horizon + 2
        value = _pad(np.where(reached, 0.0, np.where(cont, cont_value, stop)), size)
        expected = _pad(np.where(cont, cont_answers, 0.0), size)
        expert_p = _pad(np.where(reached, 0.0, np.where(cont, cont_expert, 1.0)), size)
        all_agree = reached[:, m, 0] & (m <= room)
        needed = np.where(all_agree, m, needed)
        if m == 0:
            now = (reached[:, 0, 0], cont_value[:, 0, 0], cont_answers[:, 0, 0], cont_expert[:, 0, 0])
    return _Now(*now, needed=needed)


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` (items x m+1 x m+1) in the corner of an items x size x size array of zeros."""
    out = np.zeros((values.shape[0], size, size))
    out[:, : values.shape[1], : values.shape[2]] = values
    return out
