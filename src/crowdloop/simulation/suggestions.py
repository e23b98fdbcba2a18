r"""Annotators who see pre-labels: faster answers, and anchoring on wrong suggestions.

Generative process, per answer of annotator $w$ on item $i$ (true label $z_i$, model suggestion
$s_i$, shown unless item $i$ is in the hidden share ``hide_rate``):

1. Without a suggestion, the annotator is right with probability ``accuracy`` and otherwise
   picks one of the other labels uniformly: the answer $y^0$.
2. With the suggestion shown, the annotator takes it with probability ``anchoring`` (whether it
   is right or not) and otherwise answers $y^0$ as without it; so on a wrong suggestion the
   agreement with it rises from $a_h = P(y^0 = s_i)$ to $\beta + (1 - \beta) a_h$, which is what
   ``crowdloop.models.prelabels.anchoring_effect`` estimates back.
3. Time: log-normal around ``seconds`` (spread ``time_spread``), multiplied by ``speedup`` when
   the suggestion was shown and taken (confirming is quicker than choosing).

Vectorized over answers and deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError, InputError
from crowdloop.models.prelabels import hide_mask


def simulate_suggestion_answers(
    truth: np.ndarray,
    suggested: np.ndarray,
    n_labels: int,
    *,
    answers_per_item: int = 3,
    accuracy: float = 0.8,
    anchoring: float = 0.3,
    hide_rate: float = 0.2,
    seconds: float = 12.0,
    speedup: float = 0.6,
    time_spread: float = 0.4,
    classes: Sequence[Hashable] | None = None,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Answers of ``answers_per_item`` annotators per item (label codes, or ``classes`` when given):
    columns ``item``, ``worker``, ``label``, ``truth``, ``suggested``, ``shown``, ``seconds``."""
    truth, suggested = np.asarray(truth, dtype=np.int64), np.asarray(suggested, dtype=np.int64)
    if truth.shape != suggested.shape or truth.ndim != 1:
        raise InputError(f"{truth.size} true labels but {suggested.size} suggestions")
    for name, value in (("accuracy", accuracy), ("anchoring", anchoring), ("speedup", speedup)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    if n_labels < 2 or truth.min(initial=0) < 0 or max(truth.max(initial=0), suggested.max(initial=0)) >= n_labels:
        raise ConfigError(f"labels must be codes 0..{n_labels - 1} of at least 2 labels")
    rng = np.random.default_rng(random_state)
    hidden = hide_mask(len(truth), hide_rate, rng.integers(2**32))
    item = np.repeat(np.arange(len(truth)), answers_per_item)
    z, s = truth[item], suggested[item]
    own = np.where(rng.random(len(item)) < accuracy, z, (z + rng.integers(1, n_labels, len(item))) % n_labels)
    shown = ~hidden[item]
    took = shown & (rng.random(len(item)) < anchoring)
    label = np.where(took, s, own)
    time = seconds * np.exp(time_spread * rng.standard_normal(len(item))) * np.where(took, speedup, 1.0)
    decode = (lambda c: np.asarray(classes, dtype=object)[c]) if classes is not None else (lambda c: c)
    return pd.DataFrame({
        "item": item, "worker": np.tile(np.arange(answers_per_item), len(truth)), "label": decode(label),
        "truth": decode(z), "suggested": decode(s), "shown": shown, "seconds": time,
    })  # fmt: skip
