r"""Is a new model worse than the one in use? A paired test on the same gold.

Comparing two accuracies measured on a couple of hundred gold items rejects a good new version
whenever the one in use happened to score a point or two high (and the one in use is the best
score so far: the winner's curse). Both versions predict the same gold items, so only the items
they disagree on carry evidence: $b$ the old one gets right and the new one wrong, $c$ the
reverse. Under equal accuracy $b \sim \mathrm{Binomial}(b + c, 1/2)$ (McNemar's test in its exact
form, McNemar, Psychometrika 1947); the new version is worse when $P(X \ge b) \le$ ``level``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

WORSE_LEVEL = 0.05
"""One-sided significance at which a new version is called worse than the one in use."""


def significantly_worse(old_right: np.ndarray, new_right: np.ndarray, level: float = WORSE_LEVEL) -> bool:
    """Whether the new model is worse than the old one on the same items (``*_right``: whether each
    got each item right), by the exact one-sided McNemar test at ``level``."""
    old_right, new_right = np.asarray(old_right, dtype=bool), np.asarray(new_right, dtype=bool)
    only_old = int(np.sum(old_right & ~new_right))
    discordant = only_old + int(np.sum(~old_right & new_right))
    return discordant > 0 and float(binom.sf(only_old - 1, discordant, 0.5)) <= level
