r"""Replay of real crowd data: every policy measured as accuracy against cost before anyone pays.

Given all the answers a dataset has and its truth, ``replay`` reveals the answers to a
``DynamicConsensus`` policy as crowd platforms run pools, in *waves*:

1. per seed, a random order of each item's answers and a random share of the truth items as gold
   (honeypots): gold items get all their answers and teach skills and the calibrator; they are
   left out of accuracy and cost, and their answers are reported apart as overhead;
2. every other item starts with ``max(min_overlap, 1)`` answers (its first ones in that order);
3. each wave refits the policy on the revealed answers plus all gold answers (``Answers.subset`` of
   the full answers, so the code tables stay), decides every open item, and freezes those
   accepted or escalated (label and confidence as of that wave: what the platform committed to);
   an item asked for ``next`` more answers gets them, up to the answers it has in the data; an
   item whose data runs out without acceptance ends escalated;
4. the replay stops when no item is open.

Escalated items keep their leading label (there is no expert in a replay); ``expert_accuracy``
adds the accuracy an expert of that accuracy would give them, as a separate column. ``fixed_overlap``
runs aggregators (``mv``, ``ds``) on the first n answers of every item in the *same* random orders
(gold items whole and clamped), the fixed-overlap curve the dynamic policy is compared against.

Everything is vectorized over items and answers; the loops are over seeds and waves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from crowdloop.aggregation.registry import method_class
from crowdloop.answers import Answers, as_answers
from crowdloop.consensus.decisions import ACCEPTED, ESCALATED, MORE
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.errors import ConfigError, InputError

PolicyFactory = Callable[[], DynamicConsensus]

METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_expert",
    "answers_per_item",
    "answer_share",
    "escalation_rate",
    "accepted_share",
    "accepted_accuracy",
    "cost_per_item",
    "one_answer_share",
    "gold_answers_per_item",
    "waves",
)
"""Per-seed metrics of ``replay`` (over the evaluated items: truth items that are not gold):
accuracy of the final labels (escalated items keep their leading label), the same with escalated
items labelled by an expert of ``expert_accuracy``, paid crowd answers per item and their share of
the answers the items have in the data, the escalation and acceptance rates, the accuracy of the
accepted items (the calibration check: compare with the target), crowd answers plus escalations
at ``Prices`` per item, the share of items settled with a single paid answer, gold answers per
evaluated item (the honeypot overhead) and the number of waves."""


@dataclass(frozen=True)
class ReplayPlan:
    """One seed's random draw: ``rank[r]`` is answer r's position in its item's random order,
    ``order`` the answer rows sorted by (item, rank), ``gold`` (bool per item code) the honeypots
    and ``evaluated`` (bool per item) the truth items that are not gold; ``truth`` holds the true
    label code per item (-1: unknown)."""

    rank: np.ndarray
    order: np.ndarray
    gold: np.ndarray
    evaluated: np.ndarray
    truth: np.ndarray

    def rows(self, answers: Answers, revealed: np.ndarray) -> np.ndarray:
        """Rows of the first ``revealed[i]`` answers of every item, in (item, rank) order."""
        ordered = self.order
        return ordered[self.rank[ordered] < revealed[answers.item[ordered]]]

    def gold_series(self, answers: Answers) -> pd.Series:
        codes = np.flatnonzero(self.gold)
        return pd.Series(answers.labels.decode(self.truth[codes]), index=answers.items[codes])


@dataclass
class ReplayResult:
    """``per_seed``: one row per seed with ``METRICS``; ``summary``: mean and 95% interval over
    seeds (``t`` interval; NaN with one seed) per metric; ``fixed``: the fixed-overlap curve (one
    row per method, overlap n and seed: accuracy, answers per item); ``target`` the policy's."""

    per_seed: pd.DataFrame
    summary: pd.DataFrame
    target: float
    fixed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def fixed_summary(self) -> pd.DataFrame:
        """The fixed-overlap curve averaged over seeds: method, n, accuracy (mean, lo, hi), answers."""
        return summarize_fixed(self.fixed)


def make_plan(answers: Answers, truth_codes: np.ndarray, gold_share: float, seed: int) -> ReplayPlan:
    """Random answer orders and gold items for one seed (deterministic for the seed)."""
    rng = np.random.default_rng(seed)
    key = rng.random(answers.n_answers)
    order = np.lexsort((key, answers.item))
    per_item = answers.answers_per_item()
    start = np.cumsum(per_item) - per_item
    rank = np.empty(answers.n_answers, dtype=np.int64)
    rank[order] = np.arange(answers.n_answers) - start[answers.item[order]]
    candidates = np.flatnonzero((truth_codes >= 0) & (per_item > 0))
    n_gold = round(gold_share * len(candidates))
    gold = np.zeros(answers.n_items, dtype=bool)
    gold[rng.choice(candidates, size=n_gold, replace=False)] = True
    evaluated = (truth_codes >= 0) & (per_item > 0) & ~gold
    return ReplayPlan(rank, order, gold, evaluated, truth_codes)


def truth_codes(answers: Answers, truth: pd.Series) -> np.ndarray:
    """True label code per item code (-1 where unknown); truth items without answers are ignored."""
    truth = truth[truth.index.isin(answers.items)]
    out = np.full(answers.n_items, -1, dtype=np.int64)
    if len(truth):
        out[answers.items.get_indexer(truth.index)] = answers.labels.encode(truth.to_numpy(), source="truth")
    return out


def replay(
    answers: Answers | pd.DataFrame,
    truth: pd.Series,
    policy: DynamicConsensus | PolicyFactory,
    *,
    gold_share: float = 0.2,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    expert_accuracy: float = 1.0,
    fixed_methods: Sequence[str] = (),
    max_fixed_overlap: int | None = None,
) -> ReplayResult:
    """Replay ``answers`` to ``policy`` in waves (module docstring) for each seed.

    ``policy`` is a ``DynamicConsensus`` (copied per seed, never refitted in place) or a factory of
    fresh ones; its ``ConsensusPolicy`` gives the target, the overlap bounds and the prices.
    ``fixed_methods`` (registry names such as ``"mv"``, ``"ds"``) add the fixed-overlap curve for
    n = 1 .. ``max_fixed_overlap`` (default: the most answers an item has) in the same orders.
    """
    answers = as_answers(answers)
    if not 0 <= gold_share < 1:
        raise ConfigError(f"gold_share must be in [0, 1), got {gold_share!r}")
    if not seeds:
        raise ConfigError("replay needs at least one seed")
    codes = truth_codes(answers, truth)
    make = _factory(policy)
    rows, fixed = [], []
    for seed in seeds:
        plan = make_plan(answers, codes, gold_share, int(seed))
        if not plan.evaluated.any():
            raise InputError("no truth item is left to evaluate after choosing gold", source="truth")
        rows.append({"seed": int(seed), **_replay_seed(answers, plan, make, expert_accuracy)})
        if fixed_methods:
            fixed.append(_fixed_seed(answers, plan, fixed_methods, max_fixed_overlap).assign(seed=int(seed)))
    per_seed = pd.DataFrame(rows)
    target = make().policy.target
    return ReplayResult(
        per_seed=per_seed,
        summary=summarize(per_seed[list(METRICS)]),
        target=target,
        fixed=pd.concat(fixed, ignore_index=True) if fixed else pd.DataFrame(),
    )


def fixed_overlap(
    answers: Answers | pd.DataFrame,
    truth: pd.Series,
    methods: Sequence[str] = ("mv", "ds"),
    *,
    gold_share: float = 0.2,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    max_overlap: int | None = None,
) -> pd.DataFrame:
    """Accuracy of each aggregator on the first n answers of every item (n = 1 .. ``max_overlap``),
    in the random orders and with the gold items of ``replay`` for the same seeds; one row per
    (method, n, seed). Items with fewer than n answers keep all of theirs."""
    answers = as_answers(answers)
    codes = truth_codes(answers, truth)
    parts = [
        _fixed_seed(answers, make_plan(answers, codes, gold_share, int(s)), methods, max_overlap).assign(seed=int(s))
        for s in seeds
    ]
    return pd.concat(parts, ignore_index=True)


def summarize(per_seed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and ``level`` Student-t interval over seeds (rows) of every column; NaN-tolerant."""
    values = per_seed.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=0) / n
        sd = np.sqrt(np.nansum((values - mean) ** 2, axis=0) / (n - 1))
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    return pd.DataFrame({"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}, index=per_seed.columns)


def summarize_fixed(fixed: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy (with its 95% interval over seeds) and answers per item per (method, n)."""
    if fixed.empty:
        return fixed
    out = []
    for (method, n), group in fixed.groupby(["method", "n"], sort=True):
        s = summarize(group[["accuracy", "answers_per_item"]])
        out.append(
            {
                "method": method,
                "n": int(n),
                "accuracy": s.loc["accuracy", "mean"],
                "lo": s.loc["accuracy", "lo"],
                "hi": s.loc["accuracy", "hi"],
                "answers_per_item": s.loc["answers_per_item", "mean"],
            }
        )
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------


def _factory(policy: DynamicConsensus | PolicyFactory) -> PolicyFactory:
    if isinstance(policy, DynamicConsensus):
        return lambda: copy.deepcopy(policy)
    if callable(policy):
        return policy
    raise ConfigError(f"policy must be a DynamicConsensus or a factory of one, got {type(policy).__name__}")


def _replay_seed(answers: Answers, plan: ReplayPlan, make: PolicyFactory, expert_accuracy: float) -> dict[str, float]:
    """One seed's waves; returns its metrics (see ``METRICS``)."""
    policy = make().policy
    per_item = answers.answers_per_item()
    revealed = np.where(plan.gold, per_item, np.minimum(max(policy.min_overlap, 1), per_item))
    open_ = ~plan.gold & (per_item > 0)
    status = np.full(answers.n_items, "", dtype=object)
    label = np.full(answers.n_items, -1, dtype=np.int64)
    confidence = np.zeros(answers.n_items)
    gold = plan.gold_series(answers)
    waves = 0
    while open_.any():
        waves += 1
        seen = answers.subset(plan.rows(answers, revealed))
        table = make().fit(seen, gold).decide(seen)
        wave_status = table["status"].to_numpy()
        wave_label = _label_codes(answers, table["label"])
        ask = np.clip(table["next"].to_numpy(np.int64), 1, None)
        more = open_ & (wave_status == MORE)
        exhausted = more & (revealed >= per_item)
        done = open_ & ((wave_status != MORE) | exhausted)
        status[done] = np.where(exhausted[done], ESCALATED, wave_status[done])
        label[done] = wave_label[done]
        confidence[done] = table["confidence"].to_numpy(np.float64)[done]
        grow = more & ~exhausted
        revealed[grow] = np.minimum(revealed[grow] + ask[grow], per_item[grow])
        open_ &= ~done
    return _metrics(plan, per_item, revealed, status, label, policy, expert_accuracy, waves)


def _label_codes(answers: Answers, labels: pd.Series) -> np.ndarray:
    """Codes of the decided labels (-1 for None)."""
    values = labels.to_numpy()
    present = pd.notna(values)
    out = np.full(len(values), -1, dtype=np.int64)
    if present.any():
        out[present] = answers.labels.encode(values[present], source="decisions")
    return out


def _metrics(
    plan: ReplayPlan,
    per_item: np.ndarray,
    revealed: np.ndarray,
    status: np.ndarray,
    label: np.ndarray,
    policy: ConsensusPolicy,
    expert_accuracy: float,
    waves: int,
) -> dict[str, float]:
    ev = plan.evaluated
    n = int(ev.sum())
    right = (label == plan.truth) & ev
    accepted = (status == ACCEPTED) & ev
    escalated = (status == ESCALATED) & ev
    paid = float(revealed[ev].sum())
    prices = policy.prices
    n_accepted = int(accepted.sum())
    return {
        "accuracy": right.sum() / n,
        "accuracy_expert": (right[accepted].sum() + expert_accuracy * escalated.sum()) / n,
        "answers_per_item": paid / n,
        "answer_share": paid / float(per_item[ev].sum()),
        "escalation_rate": escalated.sum() / n,
        "accepted_share": n_accepted / n,
        "accepted_accuracy": right[accepted].sum() / n_accepted if n_accepted else np.nan,
        "cost_per_item": (prices.crowd * paid + prices.expert * escalated.sum()) / n,
        "one_answer_share": float((revealed[ev] == 1).sum()) / n,
        "gold_answers_per_item": float(per_item[plan.gold].sum()) / n,
        "waves": float(waves),
        "n_evaluated": float(n),
        "n_accepted": float(n_accepted),
    }


def _fixed_seed(answers: Answers, plan: ReplayPlan, methods: Sequence[str], max_overlap: int | None) -> pd.DataFrame:
    """Each method on the first n answers per item (gold items whole and clamped), n = 1 .. max."""
    per_item = answers.answers_per_item()
    top = int(per_item.max()) if max_overlap is None else int(max_overlap)
    gold = plan.gold_series(answers)
    ev = plan.evaluated
    rows = []
    for n in range(1, top + 1):
        revealed = np.where(plan.gold, per_item, np.minimum(n, per_item))
        seen = answers.subset(plan.rows(answers, revealed))
        for method in methods:
            codes = method_class(method)().fit(seen, gold).posterior_.labels()
            rows.append(
                {
                    "method": method,
                    "n": n,
                    "accuracy": float(((codes == plan.truth) & ev).sum() / ev.sum()),
                    "answers_per_item": float(revealed[ev].mean()),
                }
            )
    return pd.DataFrame(rows)
