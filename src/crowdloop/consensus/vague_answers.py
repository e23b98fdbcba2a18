r"""How a right answer is worded in a taxonomy: the label itself, or a vaguer ancestor of it.

An annotator who knows the truth $k$ may still name less of it ("Jewellery" for a necklace). Counting
such an answer as right about every label below what it named, alike, makes three people who all
said "Showpieces" no evidence for the category Showpieces against a child of it the model prefers
("Showpieces > Ethnic"), though people who meant the child would mostly have named it.
``VagueAnswers`` splits the one coin's right answers: a share $v$ of them names one of the
$d_k - 1$ proper ancestors of the truth (evenly), the rest the truth itself:

$$P(a \mid k, \text{right}) = \begin{cases} 1 - v_k & a = k \\ v_k / (d_k - 1) & a \text{ an ancestor of } k
  \end{cases}, \qquad v_k = v \text{ if } d_k > 1 \text{ else } 0.$$

$v$ is learned by EM beside the skills and the sibling share (``consensus.fitting.fit_skills``).
Without a fitted $v$ (``share=None``) every label on the answer's path is alike, as before the
split; so is a flat label space, where every label has depth 1.
"""

from __future__ import annotations

import numpy as np

from crowdloop.consensus.wrong_answers import NEVER
from crowdloop.labels import LabelSpace, Taxonomy


class VagueAnswers:
    """The wording of right answers for a label space (module docstring): ``log_exact[k]`` and
    ``log_ancestor[k]``, the log-probability that a right answer about ``k`` names ``k``,
    respectively one given ancestor of it."""

    def __init__(self, labels: LabelSpace, share: float | None = None) -> None:
        depth = labels.depth if isinstance(labels, Taxonomy) else np.ones(len(labels), dtype=np.int32)
        self.share = share
        self.depth = np.asarray(depth, dtype=np.int64)
        ancestors = self.depth - 1
        vague = np.zeros(len(depth)) if share is None else np.where(ancestors > 0, share, 0.0)
        self.log_exact = np.log1p(-vague)
        # per count c of proper ancestors, the log-probability of naming one given ancestor: log(v / c)
        count = np.arange(int(self.depth.max(initial=1)) + 1)
        with np.errstate(divide="ignore"):
            per_count = np.log(share / np.maximum(count, 1)) if share else np.full(len(count), NEVER)
        self._log_one_of = np.zeros(len(count)) if share is None else np.where(count > 0, per_count, NEVER)
        self.log_ancestor = self._log_one_of[ancestors]

    def log_given(self, exact: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Per right answer about the label ``truth``, the log-probability of its wording: it names
        the label (``exact``) or one of its ancestors."""
        return np.where(exact, self.log_exact[truth], self.log_ancestor[truth])

    def log_below(self, parent: np.ndarray) -> np.ndarray:
        """The log-probability that a right answer about a child of ``parent`` names one given
        ancestor of it (``parent`` or above; every child of a parent has the same depth, and as
        many proper ancestors as the parent's depth)."""
        return self._log_one_of[self.depth[np.asarray(parent, dtype=np.int64)]]
