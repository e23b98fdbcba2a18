r"""Where a wrong answer goes: to a sibling of the truth, or anywhere else.

One-coin Dawid-Skene spreads a wrong answer evenly over the $K - 1$ other labels. In a taxonomy of
a thousand leaves that makes any answer, even a poor annotator's, hundreds-to-one evidence for its
leaf against every sibling, while real mistakes are mostly siblings (a bra filed as another kind of
lingerie, not as a drill). ``WrongAnswers`` keeps the one coin (right with probability $s_w$) and
shapes where the wrong answers land: a share $\rho$ of them names a sibling of the truth (a label
with the same parent; top-level labels are siblings under a virtual root), evenly over its
$n_{sib}(k)$ siblings, the rest evenly over the $K - 1 - n_{sib}(k)$ labels that are neither:

$$Q(a \mid k) = \begin{cases} \rho_k / n_{sib}(k) & a \text{ a sibling of } k \\
  (1 - \rho_k) / (K - 1 - n_{sib}(k)) & \text{otherwise} \end{cases}
  \qquad \rho_k = \rho \text{ if } n_{sib}(k) > 0 \text{ else } 0.$$

Without a fitted $\rho$ (``sibling_share=None``), $\rho_k = n_{sib}(k) / (K - 1)$: every other label
alike, one-coin Dawid-Skene exactly; so is every flat label space, whose labels are all siblings.
$\rho$ is the share of wrong answers that name a sibling, learned by EM beside the skills
(``consensus.fitting.fit_skills``). The shape is the pooled, taxonomy-shaped confusion of
``aggregation.TaxonomySkillModel`` reduced to the one relation that carries most of it.

Everything is indexed by the *parent* $p$ (the virtual root is code $K$): the labels under $p$ share
$n_{sib} = c_p - 1$ with $c_p$ the number of children of $p$.
"""

from __future__ import annotations

import numpy as np

from crowdloop.labels import LabelSpace, Taxonomy

NEVER = -1e300
"""The log of a probability that is 0 (a finite stand-in, so that sums stay finite)."""


class WrongAnswers:
    """The shape of wrong answers for a label space (module docstring).

    ``parent[k]``: the parent code of label ``k`` (``K`` for the virtual root); per parent ``p``:
    ``children[p]``, ``log_sibling[p]`` $= \\log(\\rho_p / n_{sib})$ and ``log_far[p]``
    $= \\log((1 - \\rho_p) / (K - 1 - n_{sib}))$, the log-probability that a wrong answer about a
    label under ``p`` names one given sibling, respectively one given label elsewhere;
    ``log_far_mean``: the log of $Q$'s mean over all labels for a label elsewhere."""

    def __init__(self, labels: LabelSpace, sibling_share: float | None = None) -> None:
        k = len(labels)
        codes = labels.parent if isinstance(labels, Taxonomy) else np.full(k, -1)
        self.n_labels = k
        self.sibling_share = sibling_share
        self.parent = np.where(codes >= 0, codes, k).astype(np.int64)
        self.children = np.bincount(self.parent, minlength=k + 1)
        siblings = np.maximum(self.children - 1, 0)
        elsewhere = np.maximum(k - 1 - siblings, 0)
        if sibling_share is None:
            share = siblings / max(k - 1, 1)
        else:
            share = np.where(siblings > 0, np.where(elsewhere > 0, sibling_share, 1.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_sibling = np.where(share > 0, np.log(share / np.maximum(siblings, 1)), NEVER)
            self.log_far = np.where(share < 1, np.log((1 - share) / np.maximum(elsewhere, 1)), NEVER)
        far = np.exp(self.log_far[self.parent])
        self.log_far_mean = float(np.log(far.mean())) if far.max(initial=0.0) > 0 else NEVER

    def siblings(self, answered: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Per pair, whether the answer is a sibling of the label taken as the truth."""
        return (self.parent[answered] == self.parent[truth]) & (answered != truth)

    def log_given(self, sibling: np.ndarray, under: np.ndarray) -> np.ndarray:
        """$\\log Q$ for a wrong answer about a label under parent ``under`` that is (``sibling``)
        or is not one of its siblings."""
        return np.where(sibling, self.log_sibling[under], self.log_far[under])

    def log_probability(self, answered: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Per pair of a wrong answer and a label taken as the truth, the log-probability
        $\\log Q(a \\mid k)$ (for the pair as it is; consistency is the caller's)."""
        return self.log_given(self.siblings(answered, truth), self.parent[truth])
