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
probability of ending with the expert. Vectorized over the skill nodes below and the items:
arrays of (nodes, items, a, b) per step, $O(R^3)$ cells in all; what depends on the policy, the
belief and $K$ alone (the nodes, each step's likelihoods of $(a, b, d)$) is computed once per
``Lookahead`` and kept for every batch it judges.

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


CACHED_STEPS = 32
"""Steps $m$ of the recursion whose likelihoods a ``Lookahead`` keeps ($O(J m^2)$ numbers each;
longer horizons compute the rest per call)."""


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
    """The lookahead of the module docstring for one batch of items (``Lookahead``, which keeps
    what it computed for the next batch)."""
    return Lookahead(policy, skill, n_labels)(raw, second, answers, has_label, calibrate)


@dataclass(frozen=True)
class _Step:
    """What step $m$ of the recursion takes from the skill nodes alone: the cells $(a, b)$ with
    $d = m - a - b \\ge 0$ (``valid``, a x b) and, per node and hypothesis, the log-likelihood of
    $a$ answers for the leader, $b$ for the alternative and $d$ others (nodes x 3 x a x b)."""

    valid: np.ndarray
    log_likelihood: np.ndarray


@dataclass(frozen=True)
class _Now:
    """The recursion's view of the present ($m = 0$), per node and item (nodes x items):
    ``reached``, and for going on: its expected cost ``cont_value``, crowd answers
    ``cont_answers`` and chance of the expert ``cont_expert`` (later steps decided optimally at
    the node's skill), and ``needed``."""

    reached: np.ndarray
    cont_value: np.ndarray
    cont_answers: np.ndarray
    cont_expert: np.ndarray
    needed: np.ndarray


class Lookahead:
    """The lookahead of the module docstring under one ``policy``, belief about the typical
    ``skill`` (a float: known) and number of labels ``n_labels``, for any batch of items.

    The quantile nodes $s_j$ are the leading axis of every array, so one pass of the recursion
    serves them all; what depends on the nodes alone (the answer probabilities under each
    hypothesis, each step's likelihoods) is computed once and kept: deciding one item after each
    answer pays only for the item's own terms."""

    def __init__(self, policy: ConsensusPolicy, skill: TypicalSkill | float, n_labels: int) -> None:
        belief = skill if isinstance(skill, TypicalSkill) else TypicalSkill(float(skill))
        self.policy = policy
        k = max(n_labels, 2)
        s = belief.nodes(n_labels)
        q = (1 - s) / (k - 1)
        r = np.maximum(1 - s - q, 1e-12)
        r3 = np.maximum(1 - 2 * q, 1e-12)
        self._s, self._q = s[:, None], q[:, None]  # nodes x 1, against items
        # per node, hypothesis (the leader / the alternative / another is true) x next answer
        # (names the leader / the alternative / another label)
        hypotheses = [np.stack(row, axis=1) for row in ((s, q, r), (q, s, r), (q, q, r3))]
        self._log_steps = np.log(np.stack(hypotheses, axis=1))
        self._answer_probs = np.exp(self._log_steps)[:, None, :, :, None, None]  # nodes x 1 x h x answer x 1 x 1
        expert = policy.prices.expert if policy.escalate_early else NO_EXPERT
        self.stop = expert if policy.label_value is None else min(expert, policy.label_value)
        self._steps: dict[int, _Step] = {}

    def __call__(
        self, raw: np.ndarray, second: np.ndarray, answers: np.ndarray, has_label: np.ndarray, calibrate: Calibrate
    ) -> Outlook:
        """The outlook of items whose leading label has raw confidence ``raw`` and the alternative
        ``second`` after ``answers`` human answers (``has_label`` False: nobody answered yet; its
        first answer makes the leading label, of confidence $s$ under a uniform prior)."""
        policy = self.policy
        empty = ~np.asarray(has_label, dtype=bool)
        n0 = np.asarray(answers, dtype=np.int64) + empty  # an empty item is judged after its first answer
        room = np.maximum(policy.max_overlap - n0, 0)
        now = self._recursion(
            np.asarray(raw, dtype=np.float64), np.asarray(second, dtype=np.float64), empty, n0, room, calibrate
        )
        reached = now.reached[0]
        go_on = ~reached & (room > 0)
        if policy.escalate_early or policy.label_value is not None:  # else no expert: ask up to max_overlap
            go_on &= now.cont_value.mean(axis=0) < self.stop
        needed = now.needed.min(axis=0)
        needed = np.where(empty, needed + 1, needed)
        open_ = go_on | empty
        expected = now.cont_answers.mean(axis=0)
        expert_p = np.where(reached, 0.0, np.where(go_on, now.cont_expert.mean(axis=0), 1.0))
        return Outlook(
            reached=reached & ~empty,
            go_on=go_on | (empty & (policy.max_overlap > np.asarray(answers))),
            needed=needed,
            expected_answers=np.where(open_, np.where(go_on, expected, 0.0) + empty, 0.0),
            expert_probability=np.where(reached & ~empty, 0.0, expert_p),
            stop_cost=float(self.stop),
        )

    def step(self, m: int) -> _Step:
        """Step ``m``'s terms (kept for ``m < CACHED_STEPS``)."""
        kept = self._steps.get(m)
        if kept is not None:
            return kept
        a = np.arange(m + 1)[:, None]
        b = np.arange(m + 1)[None, :]
        d = m - a - b
        steps = self._log_steps[:, :, :, None, None]  # nodes x hypothesis x answer x 1 x 1
        out = _Step(d >= 0, steps[:, :, 0] * a + steps[:, :, 1] * b + steps[:, :, 2] * np.maximum(d, 0))
        if m < CACHED_STEPS:
            self._steps[m] = out
        return out

    def _recursion(
        self,
        raw: np.ndarray,
        second: np.ndarray,
        empty: np.ndarray,
        n0: np.ndarray,
        room: np.ndarray,
        calibrate: Calibrate,
    ) -> _Now:
        """The Bellman recursion of the module docstring at every node at once."""
        policy = self.policy
        p1 = np.clip(np.where(empty, self._s, raw), 1e-12, 1 - 1e-12)  # nodes x items
        p2 = np.clip(np.where(empty, self._q, second), 1e-15, 1 - p1)
        p3 = np.maximum(1 - p1 - p2, 1e-15)
        log_p = np.log(np.stack([p1, p2, p3], axis=2))[..., None, None]  # nodes x items x 3 x a x b
        horizon = int(room.max(initial=0))
        size = horizon + 2
        # the expected cost, crowd answers and chance of the expert from step m + 1 on (nodes x items x a x b)
        value, expected, expert_p = (np.zeros((*p1.shape, size, size)) for _ in range(3))
        needed = np.full(p1.shape, np.inf)
        crowd = policy.prices.crowd
        choose = policy.escalate_early or policy.label_value is not None
        probs = self._answer_probs
        for m in range(horizon, -1, -1):
            step = self.step(m)
            log_w = log_p + step.log_likelihood[:, None]
            top = log_w.max(axis=2, keepdims=True)
            w = np.exp(log_w - top)
            w /= w.sum(axis=2, keepdims=True)
            raw_m = np.maximum(w[:, :, 0], w[:, :, 1])
            count = np.broadcast_to((n0 + m)[:, None, None], raw_m.shape)
            conf = calibrate(raw_m.ravel(), count.ravel()).reshape(raw_m.shape)
            reached = (conf >= policy.target) & (count >= policy.min_overlap) & step.valid
            # predictive probabilities of the next answer: for the leader, the runner-up, another label
            pi = (w[:, :, :, None] * probs).sum(axis=2)
            cont_value = crowd + _next(pi, value, m)
            cont_answers = 1 + _next(pi, expected, m)
            cont_expert = _next(pi, expert_p, m)
            cont = ~reached & ~(m >= room)[:, None, None] & step.valid
            if choose:
                cont &= cont_value < self.stop
            value[..., : m + 1, : m + 1] = np.where(reached, 0.0, np.where(cont, cont_value, self.stop))
            expected[..., : m + 1, : m + 1] = np.where(cont, cont_answers, 0.0)
            expert_p[..., : m + 1, : m + 1] = np.where(reached, 0.0, np.where(cont, cont_expert, 1.0))
            needed = np.where(reached[..., m, 0] & (m <= room), m, needed)  # every one named the leader
        at = (..., 0, 0)
        return _Now(reached[at], cont_value[at], cont_answers[at], cont_expert[at], needed)


def _next(pi: np.ndarray, table: np.ndarray, m: int) -> np.ndarray:
    """At step ``m``, the expectation over the next answer (``pi``: nodes x items x answer x a x b)
    of ``table`` at step ``m + 1``: one more for the leader, the alternative, or neither."""
    return (pi[:, :, 0] * table[..., 1 : m + 2, : m + 1] + pi[:, :, 1] * table[..., : m + 1, 1 : m + 2]
            + pi[:, :, 2] * table[..., : m + 1, : m + 1])  # fmt: skip
