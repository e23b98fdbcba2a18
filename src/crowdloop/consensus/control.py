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
probability of ending with the expert. Vectorized over the skill nodes below, the items and the
states $(m, a, b)$ of every step (one axis of cells, $O(R^3)$ in all, whose posteriors are
calibrated in one call); what depends on the policy, the belief and $K$ alone (the nodes, the
cells' likelihoods) is computed once per ``Lookahead`` and kept for every batch it judges.

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

**Gold still coming in.** The decision accepts on a cautious value of the calibrated confidence (a
lower quantile given the gold behind the calibrator's step), which proof the target needs *now*.
The states after answers still to come are judged on the calibrator's estimate instead: the
project's gold keeps being answered, so by then the caution will have narrowed towards it, as the
crowd's skill is taken as known by later steps above. A young calibrator (a hundred gold states)
whose lower quantile stays below the target whatever the answers then reads as gold not yet in,
not as a target out of reach: on the product loop, judging the future on the quantile sent 646
unanswered items to the expert within ten seconds of the first calibration.
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
CACHED_HORIZON = 16
"""Horizons up to which a ``Lookahead`` keeps the recursion's cells ($O(J H^3)$ numbers each;
longer ones are laid out per call)."""


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
    """The lookahead of the module docstring for one batch of items: ``Lookahead`` applied once (a
    ``Decider`` keeps its own for every batch)."""
    return Lookahead(policy, skill, n_labels)(raw, second, answers, has_label, calibrate)


@dataclass(frozen=True)
class _Cells:
    """The states of the recursion up to horizon $H$, flat and by step: the cells $(m, a, b)$ with
    $a + b \\le m$ (the others cannot happen), step $m$'s at ``start[m]:start[m + 1]``, then step
    $H + 1$'s, which stay 0 (nothing is bought beyond the horizon). Per cell of steps up to $H$:
    ``answers`` ($m$), ``after`` (3 x cells: the cell one more answer leads to, naming the leader,
    the alternative or another label) and ``log_likelihood`` (nodes x hypothesis x cells: of $a$
    answers for the leader, $b$ for the alternative and $d = m - a - b$ others); ``all_agree``:
    step $m$'s cell $(m, m, 0)$, every answer for the leader."""

    start: np.ndarray
    answers: np.ndarray
    after: np.ndarray
    all_agree: np.ndarray
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
    serves them all, and the states of every step are one flat axis of cells, so the posterior
    after each of them is computed, and calibrated, in one call; what depends on the nodes alone
    (the answer probabilities under each hypothesis, the cells' likelihoods) is kept, so deciding
    one item after each answer pays only for the item's own terms. Items in the same state (those
    nobody answered, those answered once by the same annotator) are judged once."""

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
        self._answer_probs = np.exp(self._log_steps)[:, None, :, :, None]  # nodes x 1 x h x answer x 1
        expert = policy.prices.expert if policy.escalate_early else NO_EXPERT
        self.stop = expert if policy.label_value is None else min(expert, policy.label_value)
        self._cells: dict[int, _Cells] = {}

    def __call__(
        self,
        raw: np.ndarray,
        second: np.ndarray,
        answers: np.ndarray,
        has_label: np.ndarray,
        calibrate: Calibrate,
        forecast: Calibrate | None = None,
    ) -> Outlook:
        """The outlook of items whose leading label has raw confidence ``raw`` and the alternative
        ``second`` after ``answers`` human answers (``has_label`` False: nobody answered yet; its
        first answer makes the leading label, of confidence $s$ under a uniform prior). ``forecast``
        (default ``calibrate``): the calibration of the states after answers still to come."""
        policy = self.policy
        raw, second = np.asarray(raw, dtype=np.float64), np.asarray(second, dtype=np.float64)
        empty = ~np.asarray(has_label, dtype=bool)
        n0 = np.asarray(answers, dtype=np.int64) + empty  # an empty item is judged after its first answer
        if len(n0) > 1:  # each state once
            states, back = np.unique(np.column_stack([raw, second, n0, empty]), axis=0, return_inverse=True)
            once = self._recursion(
                states[:, 0], states[:, 1], states[:, 3] > 0, states[:, 2].astype(np.int64), calibrate, forecast
            )
            now = _Now(*(getattr(once, name)[:, back.reshape(-1)] for name in _Now.__dataclass_fields__))
        else:
            now = self._recursion(raw, second, empty, n0, calibrate, forecast)
        reached = now.reached[0]
        go_on = ~reached & (self._room(n0) > 0)
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

    def _room(self, n0: np.ndarray) -> np.ndarray:
        """Answers left before ``max_overlap`` ($R$) after ``n0``."""
        return np.maximum(self.policy.max_overlap - n0, 0)

    def cells(self, horizon: int) -> _Cells:
        """The cells up to ``horizon`` (kept up to ``CACHED_HORIZON``)."""
        kept = self._cells.get(horizon)
        if kept is not None:
            return kept
        steps = np.arange(horizon + 2)
        m, a, b = np.nonzero(steps[None, :, None] + steps[None, None, :] <= steps[:, None, None])  # by m, a, b
        position = np.full((horizon + 3,) * 3, -1)
        position[m, a, b] = np.arange(len(m))
        start = np.searchsorted(m, np.arange(horizon + 3))
        m, a, b = m[: start[-2]], a[: start[-2]], b[: start[-2]]  # the steps up to the horizon
        log_steps = self._log_steps[:, :, :, None]  # nodes x hypothesis x answer x 1
        out = _Cells(
            start=start,
            answers=m,
            after=np.stack([position[m + 1, a + 1, b], position[m + 1, a, b + 1], position[m + 1, a, b]]),
            all_agree=position[steps[:-1], steps[:-1], 0],
            log_likelihood=log_steps[:, :, 0] * a + log_steps[:, :, 1] * b + log_steps[:, :, 2] * (m - a - b),
        )
        if horizon <= CACHED_HORIZON:
            self._cells[horizon] = out
        return out

    def _recursion(
        self,
        raw: np.ndarray,
        second: np.ndarray,
        empty: np.ndarray,
        n0: np.ndarray,
        calibrate: Calibrate,
        forecast: Calibrate | None = None,
    ) -> _Now:
        """The Bellman recursion of the module docstring at every node at once."""
        policy = self.policy
        p1 = np.clip(np.where(empty, self._s, raw), 1e-12, 1 - 1e-12)  # nodes x items
        p2 = np.clip(np.where(empty, self._q, second), 1e-15, 1 - p1)
        p3 = np.maximum(1 - p1 - p2, 1e-15)
        log_p = np.log(np.stack([p1, p2, p3], axis=2))[..., None]  # nodes x items x 3 x 1 (cells)
        room = self._room(n0)
        horizon = int(room.max(initial=0))
        cells = self.cells(horizon)
        # the posterior over the three hypotheses in every cell, its calibrated confidence, and the
        # predictive probabilities of the next answer (the leader, the alternative, another label)
        log_w = log_p + cells.log_likelihood[:, None]
        w = np.exp(log_w - log_w.max(axis=2, keepdims=True))
        w /= w.sum(axis=2, keepdims=True)
        raw_c = np.maximum(w[:, :, 0], w[:, :, 1])  # nodes x items x cells
        count = np.broadcast_to(n0[:, None] + cells.answers, raw_c.shape)
        conf = calibrate(raw_c.ravel(), count.ravel()).reshape(raw_c.shape)
        if forecast is not None:  # the states after answers still to come: the forecast's calibration
            present = np.zeros(raw_c.shape[2], dtype=bool)
            present[cells.start[0] : cells.start[1]] = True
            present = ~np.asarray(empty, dtype=bool)[:, None] & present  # an empty item's first cell is to come
            later = forecast(raw_c.ravel(), count.ravel()).reshape(raw_c.shape)
            conf = np.where(present, conf, later)
        reached = (conf >= policy.target) & (count >= policy.min_overlap)
        pi = (w[:, :, :, None] * self._answer_probs).sum(axis=2)
        # the expected cost, crowd answers and chance of the expert from each cell on
        value, expected, expert_p = (np.zeros((*p1.shape, cells.start[-1])) for _ in range(3))
        crowd = policy.prices.crowd
        choose = policy.escalate_early or policy.label_value is not None
        for m in range(horizon, -1, -1):
            at = slice(cells.start[m], cells.start[m + 1])
            after, p, done = cells.after[:, at], pi[..., at], reached[..., at]
            cont_value = crowd + _next(p, value, after)
            cont_answers = 1 + _next(p, expected, after)
            cont_expert = _next(p, expert_p, after)
            cont = ~done & (m < room)[:, None]
            if choose:
                cont &= cont_value < self.stop
            value[..., at] = np.where(done, 0.0, np.where(cont, cont_value, self.stop))
            expected[..., at] = np.where(cont, cont_answers, 0.0)
            expert_p[..., at] = np.where(done, 0.0, np.where(cont, cont_expert, 1.0))
        agree = reached[..., cells.all_agree] & (np.arange(horizon + 1) <= room[:, None])  # every one named the leader
        needed = np.where(agree.any(axis=2), agree.argmax(axis=2), np.inf)
        return _Now(reached[..., 0], cont_value[..., 0], cont_answers[..., 0], cont_expert[..., 0], needed)


def _next(pi: np.ndarray, table: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The expectation over the next answer (``pi``: nodes x items x answer x cells) of ``table``
    at the cells it leads to (``after``: answer x cells): for the leader, the alternative, another."""
    return pi[:, :, 0] * table[..., after[0]] + pi[:, :, 1] * table[..., after[1]] + pi[:, :, 2] * table[..., after[2]]
