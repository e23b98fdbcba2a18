r"""Where a wrong answer falls in a taxonomy: mostly on a sibling of the truth.

One-coin Dawid-Skene spreads a wrong answer evenly over the $K - 1$ other labels. In a taxonomy of
thousands of categories that makes two answers agreeing on a wrong leaf look nearly impossible,
while annotators confuse a category with its siblings far more often than with a random one (a
phone case for a phone cover, not for a garden hose). With $g(k)$ the siblings' group of label $k$
(the children of its parent) and $B_k$ its size, an answer $a$ not on the path of the truth $k$
comes from the group of $k$ with probability $\rho$, else from anywhere:

$$P(a \mid k) = (1 - s)\Big[\rho\,\frac{[g(a) = g(k)]}{B_k - 1} + \frac{1 - \rho}{K - 1}\Big],$$

one-coin again at $\rho = 0$ (the mixture of a confusion within the branch and a slip anywhere,
as in the hierarchical error models of the taxonomy crowd-labelling literature, e.g. Otani et al.,
"Quality control for crowdsourced hierarchical classification", ICDM 2015). Against one-coin's
$(1 - s)(1 - \rho)/(K - 1)$, a wrong answer in the candidate's group weighs
$\gamma_k = \log\big(1 + \rho (K - 1) / ((1 - \rho)(B_k - 1))\big)$ more, so a candidate whose
siblings drew answers, and the unnamed siblings of a named label, keep their share of belief.

The share $\rho$ is learned from the answers (``estimate_share``): among the answers that miss an
item's label (gold, or the confident leading label), the share $\sigma$ that fall in its group,
against the share $\beta$ a random slip would put there, gives $\rho = (\sigma - \beta) / (1 -
\beta)$, shrunk toward 0 by a prior worth a few wrong answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdloop.labels import LabelSpace, Taxonomy

SHARE_PRIOR_STRENGTH = 10.0
"""Wrong answers the prior $\\rho = 0$ is worth when the share is learned."""
MAX_SHARE = 0.99


@dataclass(frozen=True)
class SiblingErrors:
    """The error model of the module docstring for a taxonomy: per label code its ``group`` (the
    parent's code + 1; 0 for the top level), the group's ``size`` and the weight ``gain``
    ($\\gamma_k$); ``share`` is $\\rho$."""

    share: float
    group: np.ndarray
    size: np.ndarray
    gain: np.ndarray

    @classmethod
    def of(cls, labels: LabelSpace, share: float) -> SiblingErrors | None:
        """The error model for ``labels`` (None: a flat label space, or no share)."""
        if not isinstance(labels, Taxonomy) or not share > 0:
            return None
        share = float(min(share, MAX_SHARE))
        group = labels.parent.astype(np.int64) + 1
        size = np.bincount(group, minlength=len(labels) + 1)[group]
        k = len(labels)
        with np.errstate(divide="ignore"):
            gain = np.where(size > 1, np.log1p(share * (k - 1) / ((1 - share) * np.maximum(size - 1, 1))), 0.0)
        return cls(share, group, size, gain)

    @property
    def wrong_log_scale(self) -> float:
        """$\\log(1 - \\rho)$: how much less a wrong answer weighs on a label outside its group."""
        return float(np.log1p(-self.share))

    def pair_gain(self, answered: np.ndarray, candidate: np.ndarray, consistent: np.ndarray) -> np.ndarray:
        """Per (answer, candidate) pair: $\\gamma$ when the answer misses the candidate within its group."""
        same = (self.group[answered] == self.group[candidate]) & ~consistent
        return np.where(same, self.gain[candidate], 0.0)

    def unproposed_log_count(
        self, item: np.ndarray, answered: np.ndarray, c_item: np.ndarray, c_label: np.ndarray, n_items: int
    ) -> np.ndarray:
        r"""Per item $\log \sum_{k \text{ unproposed}} e^{m_{g(k)} \gamma_k}$: the labels no answer
        or model named, each weighted by the answers its group drew ($m_g$; labels of untouched
        groups weigh 1). ``item``/``answered``: the hard answers; ``c_item``/``c_label``: the
        candidates (sorted by item)."""
        n_groups = len(self.size) + 1
        keys, m = np.unique(item * n_groups + self.group[answered], return_counts=True)
        g_item, g_group = keys // n_groups, keys % n_groups
        cand_keys = np.sort(c_item * n_groups + self.group[c_label])
        named = np.searchsorted(cand_keys, keys, side="right") - np.searchsorted(cand_keys, keys, side="left")
        any_label = np.zeros(n_groups, dtype=np.int64)
        any_label[self.group] = np.arange(len(self.group))
        size = self.size[any_label[g_group]]
        gain = self.gain[any_label[g_group]]
        unnamed = np.maximum(size - named, 0)
        per_item = np.bincount(c_item, minlength=n_items)
        elsewhere = len(self.group) - per_item - np.bincount(g_item, weights=unnamed, minlength=n_items)
        log_terms = np.where(unnamed > 0, np.log(np.maximum(unnamed, 1)) + m * gain, -np.inf)
        top = np.full(n_items, -np.inf)
        np.maximum.at(top, g_item, log_terms)
        top = np.maximum(top, np.where(elsewhere > 0, np.log(np.maximum(elsewhere, 1)), -np.inf))
        safe = np.where(np.isfinite(top), top, 0.0)
        total = np.bincount(g_item, weights=np.exp(log_terms - safe[g_item]), minlength=n_items)
        total += np.where(elsewhere > 0, np.maximum(elsewhere, 0) * np.exp(-safe), 0.0)
        return np.where(total > 0, safe + np.log(np.maximum(total, 1e-300)), -np.inf)


def estimate_share(labels: LabelSpace, answered: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> float:
    """$\\rho$ (module docstring) from the answers ``answered`` that miss their item's label
    ``truth`` (codes; -1: none), each weighing ``weight`` (how sure the label is)."""
    if not isinstance(labels, Taxonomy):
        return 0.0
    model = SiblingErrors.of(labels, 0.5)
    k = len(labels)
    known = truth >= 0
    answered, truth, weight = answered[known], truth[known], weight[known]
    missed = labels.credit(answered, truth) <= 0  # off the path of the label
    if not missed.any():
        return 0.0
    answered, truth, weight = answered[missed], truth[missed], weight[missed]
    same = model.group[answered] == model.group[truth]
    chance = float(np.average((model.size[truth] - 1) / max(k - 1, 1), weights=weight))
    wrong = float(weight.sum())
    sigma_excess = float(weight[same].sum()) - chance * wrong
    share = sigma_excess / ((1 - chance) * (wrong + SHARE_PRIOR_STRENGTH))
    return float(np.clip(share, 0.0, MAX_SHARE))
