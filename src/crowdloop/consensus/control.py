r"""Costed control of an item: accept, ask k more answers, or escalate to an expert.

Decision-theoretic control in the spirit of P. Dai, Mausam and D. S. Weld, "Decision-theoretic
control of crowd-sourced workflows" (AAAI 2010), and V. S. Sheng, F. Provost and P. G. Ipeirotis,
"Get another label? Improving data quality and data mining using multiple, noisy labelers" (KDD
2008): each further answer is bought only while it is expected to cost less than the alternative.

The state of an item is $p$, the posterior probability that its leading label is right, after $n$
human answers. A future answer comes from a typical annotator (the median skill $s$ of the
project's annotators) and either agrees with the leading label or not. In the binary reduction
"leading label right or not" with $K$ labels and one-coin errors, it agrees with probability $s$
if the label is right and $q = (1 - s) / (K - 1)$ if not, so after $a$ agreements in $m$ answers
Bayes' rule gives

$$\operatorname{logit} p_{m,a} = \operatorname{logit} p + a \log\frac{s}{q}
  + (m - a) \log\frac{1 - s}{1 - q},$$

whose calibrated value (the gold calibrator at $n + m$ answers) is compared with the target. With
$c$ the price of a crowd answer and $E$ the cost of stopping unreached (an expert review; with a
``label_value`` $v$ the cheaper of the two, no item being worth more than its label; without
``escalate_early``, $v$ or unbounded: no expert before ``max_overlap``), the
expected cost to finish is the finite-horizon Bellman recursion over $m = R, \dots, 0$ ($R$: the
answers left before ``max_overlap``)

$$V_{m}(a) = \begin{cases} 0 & \text{reached} \\ E & m = R \\
  \min\big(E,\; c + \pi_{m,a} V_{m+1}(a+1) + (1 - \pi_{m,a}) V_{m+1}(a)\big) & \text{otherwise}
  \end{cases}$$

with $\pi_{m,a} = p_{m,a} s + (1 - p_{m,a}) q$ the predictive probability of agreement. Now
($m = 0$): accept if reached, escalate if stopping is cheaper than going on (the crowd's expected
cost to finish exceeds the expert's, or the target is out of reach within $R$ answers), otherwise
ask more: as many as the target needs if every one agreed (fewer could not finish the item). The
same recursion, following the chosen actions, gives the expected crowd answers still needed and
the probability of ending with the expert. The reduction ignores that the leading label may
change after disagreements, which only makes reaching the target look harder than it is.
Vectorized over items: arrays of (items, answers added) per step, $O(R^2)$ steps of NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crowdloop.consensus.policy import ConsensusPolicy

NO_EXPERT = 1e12
"""The cost of stopping unreached when ``escalate_early`` is off (no expert to escalate to early)."""
Calibrate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Raw confidence and answer count (same shapes, flat) -> calibrated confidence."""


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
    answers: np.ndarray,
    has_label: np.ndarray,
    policy: ConsensusPolicy,
    skill: float,
    n_labels: int,
    calibrate: Calibrate,
) -> Outlook:
    """The lookahead of the module docstring for items with raw confidence ``raw`` after
    ``answers`` human answers (``has_label`` False: nobody answered yet; its first answer makes
    the leading label, of confidence $s$ under a uniform prior)."""
    prices = policy.prices
    expert = prices.expert if policy.escalate_early else NO_EXPERT  # without one: ask up to max_overlap
    stop = expert if policy.label_value is None else min(expert, policy.label_value)
    k = max(n_labels, 2)
    s = float(np.clip(skill, 1.0 / k + 1e-3, 1 - 1e-6))
    q = (1 - s) / (k - 1)
    up, down = np.log(s / q), np.log((1 - s) / (1 - q))
    empty = ~np.asarray(has_label, dtype=bool)
    n0 = np.asarray(answers, dtype=np.int64) + empty  # an empty item is judged after its first answer
    p = np.clip(np.where(empty, s, np.asarray(raw, dtype=np.float64)), 1e-12, 1 - 1e-12)
    logit0 = np.log(p) - np.log1p(-p)
    room = np.maximum(policy.max_overlap - n0, 0)
    horizon = int(room.max(initial=0))
    n_items = len(p)

    def state(m: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw confidence and reached flag after m more answers, a of them agreeing (items x m+1)."""
        a = np.arange(m + 1)
        logit = logit0[:, None] + a[None, :] * up + (m - a)[None, :] * down
        raw_m = 1 / (1 + np.exp(-logit))
        count = np.broadcast_to((n0 + m)[:, None], raw_m.shape)
        conf = calibrate(raw_m.ravel(), count.ravel()).reshape(raw_m.shape)
        return raw_m, (conf >= policy.target) & (count >= policy.min_overlap)

    # backward induction: value, expected answers and expert probability at step m + 1
    value = expected = expert = np.zeros((n_items, horizon + 2))
    needed = np.full(n_items, np.inf)
    go_on = np.zeros(n_items, dtype=bool)
    reached_now = np.zeros(n_items, dtype=bool)
    for m in range(horizon, -1, -1):
        raw_m, reached = state(m)
        agree = raw_m * s + (1 - raw_m) * q
        cont_value = prices.crowd + agree * value[:, 1 : m + 2] + (1 - agree) * value[:, : m + 1]
        cont_answers = 1 + agree * expected[:, 1 : m + 2] + (1 - agree) * expected[:, : m + 1]
        cont_expert = agree * expert[:, 1 : m + 2] + (1 - agree) * expert[:, : m + 1]
        last = (m >= room)[:, None]
        cont = ~reached & ~last
        if policy.escalate_early or policy.label_value is not None:  # else no expert: ask up to max_overlap
            cont &= cont_value < stop
        value = np.where(reached, 0.0, np.where(cont, cont_value, stop))
        expected = np.where(cont, cont_answers, 0.0)
        expert = np.where(reached, 0.0, np.where(cont, cont_expert, 1.0))
        all_agree = reached[:, m] & (m <= room)
        needed = np.where(all_agree, m, needed)
        if m == 0:
            go_on, reached_now = cont[:, 0], reached[:, 0]
    needed = np.where(empty, needed + 1, needed)
    expected_answers = expected[:, 0] + (empty & (room >= 0))
    return Outlook(
        reached=reached_now & ~empty,
        go_on=go_on | (empty & (policy.max_overlap > np.asarray(answers))),
        needed=needed,
        expected_answers=np.where(go_on | empty, expected_answers, 0.0),
        expert_probability=np.where(reached_now & ~empty, 0.0, expert[:, 0]),
        stop_cost=float(stop),
    )
