r"""Pre-labels: the model's top-k suggestions on the annotator's screen, and what they do to answers.

Suggestions make answers faster, and they anchor: an annotator shown a wrong suggestion takes it
more often than one who never saw it (anchoring, Tversky & Kahneman, Science 1974; measured for
labeling tools by e.g. Fort & Sagot, LAW 2010). The effect is measurable only against items whose
suggestion was computed but *hidden*: ``hide_mask`` picks a random share ``hide_rate`` of items,
and ``anchoring_effect`` compares shown against hidden items:

- agreement with the suggestion, $a_s$ (shown) and $a_h$ (hidden), on all items and on the items
  whose suggestion is wrong (where gold is known): the excess $a_s - a_h$ on wrong suggestions is
  the error the suggestions cause;
- the *anchoring rate* $\beta = (a_s - a_h) / (1 - a_h)$ on wrong suggestions: the share of the
  answers that would have differed from the suggestion but took it (under the model "with
  probability $\beta$ take the suggestion, otherwise answer as without it", $a_s = \beta + (1 -
  \beta) a_h$);
- accuracy on shown and hidden items, and the ratio of median answer times.

Intervals: for $\beta$, quantiles of $(s - h) / (1 - h)$ with $s$ and $h$ drawn from the Jeffreys
posteriors $\mathrm{Beta}(k + \frac12, n - k + \frac12)$ of the two proportions (2,000 draws; the
Jeffreys interval of Brown, Cai & DasGupta, Stat. Sci. 2001, which stays honest at 0 or 1), and
Newcombe's hybrid score interval (Newcombe, Stat. Med. 1998) for the differences. Answers of one
item are treated as independent; with few answers per item that is close.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from crowdloop.errors import ConfigError, InputError


def top_k(
    probs: np.ndarray, classes: Sequence[Hashable] | np.ndarray, k: int = 3, items: Sequence[Hashable] | None = None
) -> pd.DataFrame:
    """The ``k`` most probable labels per item, long format: ``item``, ``rank`` (1 = best), ``label``,
    ``probability``; ties keep the column order. Items default to 0..n-1."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    probs = np.asarray(probs, dtype=np.float64)
    classes = np.asarray(classes, dtype=object)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise InputError(f"probabilities have shape {probs.shape}, expected (n, {len(classes)} classes)")
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    items = np.arange(len(probs)) if items is None else np.asarray(items, dtype=object)
    if len(items) != len(probs):
        raise InputError(f"{len(items)} items for {len(probs)} rows of probabilities")
    return pd.DataFrame(
        {
            "item": np.repeat(items, k),
            "rank": np.tile(np.arange(1, k + 1), len(probs)),
            "label": classes[order].ravel(),
            "probability": np.take_along_axis(probs, order, axis=1).ravel(),
        }
    )


def hide_mask(n_items: int, hide_rate: float, random_state: int | None = 0) -> np.ndarray:
    """True for the items whose suggestions are hidden: exactly ``round(hide_rate * n)`` of them, at random."""
    if not 0 <= hide_rate <= 1:
        raise ConfigError(f"hide_rate must be in [0, 1], got {hide_rate!r}")
    hidden = np.zeros(n_items, dtype=bool)
    hidden[np.random.default_rng(random_state).permutation(n_items)[: round(hide_rate * n_items)]] = True
    return hidden


def _newcombe(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray, level: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 from two Wilson intervals."""
    z = norm.ppf(0.5 + level / 2)

    def wilson(k: float, n: float) -> tuple[float, float]:
        p = k / n
        centre, half = (
            (p + z * z / (2 * n)) / (1 + z * z / n),
            z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
        )
        return centre - half, centre + half

    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return float(d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)), float(d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def anchoring_effect(
    answers: pd.DataFrame, level: float = 0.95, n_boot: int = 2000, random_state: int | None = 0
) -> pd.DataFrame:
    """Shown against hidden suggestions, from answers with columns ``label`` (the answer),
    ``suggested`` (the top suggestion, computed for hidden items too), ``shown`` (bool), and
    optionally ``truth`` (gold label) and ``seconds`` (answer time).

    Returns one row per measure: ``measure``, ``shown``, ``hidden``, ``effect`` (difference, or ratio
    for time), ``low``, ``high`` (the ``level`` interval of the effect), ``n_shown``, ``n_hidden``.
    Measures: agreement with the suggestion; with gold, accuracy, agreement with *wrong*
    suggestions and the anchoring rate; with times, the median time ratio (shown / hidden) of the
    answers that have one (missing: nan).
    """
    for column in ("label", "suggested", "shown"):
        if column not in answers.columns:
            raise InputError(f"missing column '{column}'", source="answers")
    shown = answers["shown"].to_numpy(bool)
    if shown.all() or not shown.any():
        raise InputError("need answers with shown and with hidden suggestions", source="answers",
                         hint="Hide suggestions for a random share of items (hide_rate > 0).")  # fmt: skip
    agree = (answers["label"] == answers["suggested"]).to_numpy()
    rows = [_difference("agreement with suggestion", agree, shown, level)]
    if "truth" in answers.columns:
        truth = answers["truth"]
        known = truth.notna().to_numpy()
        right = (answers["label"] == truth).to_numpy()
        wrong_suggestion = known & (answers["suggested"] != truth).to_numpy()
        rows.append(_difference("accuracy", right[known], shown[known], level))
        if shown[wrong_suggestion].any() and (~shown[wrong_suggestion]).any():
            rows.append(_difference("agreement with a wrong suggestion", agree[wrong_suggestion],
                                    shown[wrong_suggestion], level))  # fmt: skip
            rows.append(_anchoring_rate(agree[wrong_suggestion], shown[wrong_suggestion], level, n_boot, random_state))
    seconds = answers["seconds"].to_numpy(np.float64) if "seconds" in answers.columns else np.full(len(answers), np.nan)
    timed = np.isfinite(seconds)  # answers without a time are left out of the time ratio
    if timed[shown].any() and timed[~shown].any():
        rng = np.random.default_rng(random_state)
        s, h = seconds[shown & timed], seconds[~shown & timed]
        boot = np.median(rng.choice(s, (n_boot, len(s))), axis=1) / np.median(rng.choice(h, (n_boot, len(h))), axis=1)
        lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        rows.append({"measure": "median seconds (ratio shown / hidden)", "shown": float(np.median(s)),
                     "hidden": float(np.median(h)), "effect": float(np.median(s) / np.median(h)), "low": float(lo),
                     "high": float(hi), "n_shown": len(s), "n_hidden": len(h)})  # fmt: skip
    return pd.DataFrame(rows)


def _difference(measure: str, hit: np.ndarray, shown: np.ndarray, level: float) -> dict:
    k1, n1, k2, n2 = hit[shown].sum(), shown.sum(), hit[~shown].sum(), (~shown).sum()
    low, high = _newcombe(k1, n1, k2, n2, level)
    return {"measure": measure, "shown": k1 / n1, "hidden": k2 / n2, "effect": k1 / n1 - k2 / n2, "low": low,
            "high": high, "n_shown": int(n1), "n_hidden": int(n2)}  # fmt: skip


def _anchoring_rate(agree: np.ndarray, shown: np.ndarray, level: float, n_boot: int, seed: int | None) -> dict:
    n1, n2 = int(shown.sum()), int((~shown).sum())
    a_s, a_h = agree[shown].mean(), agree[~shown].mean()
    rng = np.random.default_rng(seed)
    k1, k2 = agree[shown].sum(), agree[~shown].sum()
    s, h = rng.beta(k1 + 0.5, n1 - k1 + 0.5, n_boot), rng.beta(k2 + 0.5, n2 - k2 + 0.5, n_boot)
    boot = np.divide(s - h, 1 - h, out=np.zeros(n_boot), where=h < 1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"measure": "anchoring rate on wrong suggestions", "shown": a_s, "hidden": a_h,
            "effect": (a_s - a_h) / (1 - a_h) if a_h < 1 else 0.0, "low": float(low), "high": float(high),
            "n_shown": n1, "n_hidden": n2}  # fmt: skip
