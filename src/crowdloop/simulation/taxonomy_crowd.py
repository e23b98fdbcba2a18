r"""A synthetic crowd over a taxonomy: items with (mostly leaf, popularity-skewed) true labels,
workers of a few archetypes, and wrong answers shaped like real ones (siblings and cousins of the
truth far more often than strangers; some answers stop at an inner node).

Generative process, for item $i$ with true label $z_i$ and each of its ``answers_per_item``
distinct workers $w$ (drawn by a log-normal activity, so a few workers do much of the work):

1. a *spammer* answers a uniformly random label;
2. a *colluding* worker (a ring that copies one answer) gives $z_i$ with probability $s_w$, else the
   ring's wrong answer for the item, one sibling of $z_i$ drawn per item and shared by every member,
   so two colluders on an item agree on a wrong label;
3. any other worker intends $z_i$ with probability $s_{wb}$, their skill in the item's top-level
   branch $b$: $\operatorname{logit} s_{wb} = \operatorname{logit} s_w + \varepsilon_{wb}$ with $s_w$
   drawn from their archetype's Beta distribution and $\varepsilon_{wb} \sim N(0,$
   ``branch_spread``$^2)$ (0: the same skill everywhere), else a confusion: a sibling of $z_i$ (share
   ``error_mix[0]``), a cousin (a child of a sibling of the parent, ``error_mix[1]``) or a
   uniformly random label (``error_mix[2]``); a missing sibling or cousin falls back to the next;
4. with probability ``inner_share`` the worker then reports the parent of what they intended (an
   inner node: "Electronics > Audio" instead of the headphones leaf).

The true labels are drawn (mostly leaves, Zipf-popular) unless given (``truth``: e.g. the real
categories of real products). Worker ids carry their archetype (``good-0007``), so experiments can
check what a model learned. A flat ``LabelSpace`` is treated as a forest of top-level nodes (every
other label a sibling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace, Taxonomy


@dataclass(frozen=True)
class Archetype:
    """A kind of worker: its share of the crowd and its skill ~ Beta(a, b); a spammer answers at
    random; colluders share one wrong answer per item (module docstring)."""

    name: str
    share: float
    skill_a: float
    skill_b: float
    spammer: bool = False
    colluding: bool = False


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("good", 0.5, 17.0, 3.0),  # mean skill 0.85
    Archetype("sloppy", 0.35, 6.0, 4.0),  # mean skill 0.60
    Archetype("spammer", 0.15, 1.0, 1.0, spammer=True),
)

PRODUCT_ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("expert", 0.05, 48.0, 2.0),  # mean skill 0.96
    Archetype("good", 0.55, 17.0, 3.0),  # 0.85
    Archetype("sloppy", 0.22, 7.0, 3.0),  # 0.70
    Archetype("spammer", 0.10, 1.0, 1.0, spammer=True),
    Archetype("colluding", 0.08, 2.0, 8.0, colluding=True),  # a ring, right 20% of the time
)
"""A product-categorization crowd: a few experts, mostly good annotators, some sloppy ones, spammers
and a colluding ring."""


def simulate_taxonomy_crowd(
    labels: LabelSpace,
    n_items: int = 1_000,
    n_workers: int = 100,
    answers_per_item: int = 3,
    *,
    archetypes: Sequence[Archetype] = ARCHETYPES,
    leaf_share: float = 0.95,
    popularity: float = 1.0,
    error_mix: tuple[float, float, float] = (0.6, 0.25, 0.15),
    inner_share: float = 0.1,
    branch_spread: float = 0.0,
    truth: Sequence | np.ndarray | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[pd.DataFrame, pd.Series]:
    """Answers (a crowd-kit frame ``task``, ``worker``, ``label`` with label names) and the truth
    (Series task -> label). ``popularity`` is the Zipf exponent of the label frequencies (0: uniform);
    ``truth`` (labels of ``labels``, one per item) fixes the true labels instead, and then
    ``n_items`` is its length. Deterministic for an integer ``random_state``."""
    if n_items < 1 or answers_per_item < 1:
        raise ConfigError("n_items and answers_per_item must be positive")
    if n_workers < answers_per_item:
        raise ConfigError(f"n_workers ({n_workers}) must be at least answers_per_item ({answers_per_item})")
    if len(error_mix) != 3 or min(error_mix) < 0 or sum(error_mix) <= 0:
        raise ConfigError("error_mix must be three non-negative shares (sibling, cousin, random)")
    if not archetypes or any(a.share < 0 for a in archetypes) or sum(a.share for a in archetypes) <= 0:
        raise ConfigError("archetypes must have non-negative shares that sum to a positive number")
    if branch_spread < 0:
        raise ConfigError(f"branch_spread must be >= 0, got {branch_spread!r}")
    rng = np.random.default_rng(random_state)
    tree = _Tree(labels)
    if truth is None:
        truth = _true_labels(tree, n_items, leaf_share, popularity, rng)
    else:
        truth = labels.encode(np.asarray(truth, dtype=object), source="truth").astype(np.int64)
        n_items = len(truth)
        if n_items < 1:
            raise ConfigError("truth must hold at least one label")

    shares = np.array([a.share for a in archetypes], dtype=np.float64)
    kind = rng.choice(len(archetypes), size=n_workers, p=shares / shares.sum())
    skill = rng.beta(np.array([a.skill_a for a in archetypes])[kind], np.array([a.skill_b for a in archetypes])[kind])
    spammer = np.array([a.spammer for a in archetypes])[kind]
    activity = rng.lognormal(0.0, 1.0, size=n_workers)
    workers = _distinct_workers(activity / activity.sum(), n_items, answers_per_item, rng)

    item = np.repeat(np.arange(n_items), answers_per_item)
    worker = workers.ravel()
    true = truth[item]
    n = len(item)
    mix = np.asarray(error_mix, dtype=np.float64) / sum(error_mix)
    kind_of_error = rng.choice(3, size=n, p=mix)
    answer = true.copy()
    wrong = rng.random(n) >= skill[worker]
    random_label = rng.integers(0, tree.k, size=n)
    sibling = tree.random_sibling(true, rng)
    cousin = tree.random_cousin(true, rng)
    confused = np.where(kind_of_error == 0, sibling, np.where(kind_of_error == 1, cousin, random_label))
    confused = np.where(confused >= 0, confused, np.where(sibling >= 0, sibling, random_label))
    if branch_spread > 0:
        skill_in = _branch_skill(labels, skill, true, worker, branch_spread, rng)
        wrong = rng.random(n) >= skill_in
    answer = np.where(wrong, confused, answer)
    vague = (rng.random(n) < inner_share) & (tree.parent[answer] >= 0)
    answer = np.where(vague, tree.parent[answer], answer)
    answer = np.where(spammer[worker], random_label, answer)
    colluding = np.array([a.colluding for a in archetypes])[kind]
    if colluding.any():
        ring = tree.random_sibling(truth, rng)  # the ring's wrong answer, one per item
        ring = np.where(ring >= 0, ring, rng.integers(0, tree.k, size=n_items))[item]
        ring_answer = np.where(rng.random(n) < skill[worker], true, ring)
        answer = np.where(colluding[worker], ring_answer, answer)

    names = np.array([f"{archetypes[kind[w]].name}-{w:04d}" for w in range(n_workers)], dtype=object)
    frame = pd.DataFrame({"task": item, "worker": names[worker], "label": labels.decode(answer)})
    truth_series = pd.Series(labels.decode(truth), index=pd.RangeIndex(n_items, name="task"), name="truth")
    return frame, truth_series


def _branch_skill(
    labels: LabelSpace, skill: np.ndarray, true: np.ndarray, worker: np.ndarray, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """Each answer's skill in its item's top-level branch: the worker's skill moved on the logit
    scale by a per-(worker, branch) normal offset of scale ``spread``."""
    top = labels.ancestor_at(true, 1) if isinstance(labels, Taxonomy) else true
    branches, branch = np.unique(top, return_inverse=True)
    offset = rng.normal(0.0, spread, size=(len(skill), len(branches)))
    clipped = np.clip(skill, 1e-6, 1 - 1e-6)
    logit = np.log(clipped) - np.log1p(-clipped)
    return 1.0 / (1.0 + np.exp(-(logit[worker] + offset[worker, branch])))


class _Tree:
    """Parent/children arrays of a label space (a flat space: K top-level nodes)."""

    def __init__(self, labels: LabelSpace) -> None:
        self.k = len(labels)
        if isinstance(labels, Taxonomy):
            self.parent = labels.parent.astype(np.int64)
            self.is_leaf = labels.is_leaf
        else:
            self.parent = np.full(self.k, -1, dtype=np.int64)
            self.is_leaf = np.ones(self.k, dtype=bool)
        owner = np.where(self.parent >= 0, self.parent, self.k)  # the virtual root is node k
        self.order = np.argsort(owner, kind="stable")
        self.ptr = np.searchsorted(owner[self.order], np.arange(self.k + 2))
        self.n_children = np.diff(self.ptr)
        self.position = np.empty(self.k, dtype=np.int64)
        self.position[self.order] = np.arange(self.k) - self.ptr[owner[self.order]]
        self.owner = owner

    def random_sibling(self, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random other child of each node's parent (-1 when there is none)."""
        owner = self.owner[nodes]
        count = self.n_children[owner] - 1
        pick = np.floor(rng.random(len(nodes)) * np.maximum(count, 1)).astype(np.int64)
        pick = pick + (pick >= self.position[nodes])
        index = np.minimum(self.ptr[owner] + pick, self.k - 1)
        return np.where(count > 0, self.order[index], -1)

    def random_child(self, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random child of each node (-1 for a leaf or -1)."""
        safe = np.maximum(nodes, 0)
        count = np.where(nodes >= 0, self.n_children[safe], 0)
        pick = np.floor(rng.random(len(nodes)) * np.maximum(count, 1)).astype(np.int64)
        index = np.minimum(self.ptr[safe] + pick, self.k - 1)
        return np.where(count > 0, self.order[index], -1)

    def random_cousin(self, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A child of a sibling of each node's parent (-1 when there is none)."""
        parent = self.parent[nodes]
        aunt = np.where(parent >= 0, self.random_sibling(np.maximum(parent, 0), rng), -1)
        return self.random_child(aunt, rng)


def _true_labels(
    tree: _Tree, n_items: int, leaf_share: float, popularity: float, rng: np.random.Generator
) -> np.ndarray:
    """Leaves with probability ``leaf_share`` (inner nodes otherwise), Zipf-popular within each."""
    leaves, inner = np.flatnonzero(tree.is_leaf), np.flatnonzero(~tree.is_leaf)
    if not len(inner):
        leaf_share = 1.0

    def zipf_draw(pool: np.ndarray, size: int) -> np.ndarray:
        ranked = rng.permutation(pool)
        weight = 1.0 / np.arange(1, len(ranked) + 1) ** popularity
        return ranked[rng.choice(len(ranked), size=size, p=weight / weight.sum())]

    from_leaves = rng.random(n_items) < leaf_share
    truth = np.empty(n_items, dtype=np.int64)
    truth[from_leaves] = zipf_draw(leaves, int(from_leaves.sum()))
    if (~from_leaves).any():
        truth[~from_leaves] = zipf_draw(inner, int((~from_leaves).sum()))
    return truth


def _distinct_workers(p: np.ndarray, n_items: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` distinct workers per item, drawn by activity ``p`` (rounds of redrawing clashing rows)."""
    workers = rng.choice(len(p), size=(n_items, m), p=p)
    for _ in range(1000):
        ordered = np.sort(workers, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not clash.any():
            return workers
        workers[clash] = rng.choice(len(p), size=(int(clash.sum()), m), p=p)
    # a few very active workers make clashes persistent: fall back to uniform draws without replacement
    ordered = np.sort(workers, axis=1)
    clash = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    workers[clash] = np.argsort(rng.random((len(clash), len(p))), axis=1)[:, :m]
    return workers
