"""How often gold proves an automation threshold, with half of it or all of it as evidence, and
with the walk started at the surest half of the gold or where the errors that half could hold can pass.

A model's surest 60% of items are ``TOP`` right (98-99.5%), the rest 75%: ``flat``, the same
accuracy all over the surest 60%, or ``sloped``, falling from ``TOP`` at the very top to 3 points
less at the 60% mark; ``n`` gold items are drawn at random confidences.
``models.autolabel.choose_threshold`` (fixed-sequence Clopper-Pearson at the service's level, 80%,
target .97) runs with its defaults on one random half of the gold (the evidence when a version is
one cross-fitting fold's model) and on all of it (a version that labels each text with the fold
model that never saw it, ``models.routed``; what the service and ``crowdloop autolabel`` do: the
walk tolerates the chance errors the surest half of the gold could hold, ``chance_errors_for``, and
starts at the fewest items with which they can pass); and on all of it started at the surest half
itself (min(200, n/2) items, one chance error when 99 items fit in it, else none: the start before).
Reported over ``--trials``: how often a threshold is proven, the mean share of items above it (0
when none is), and how often the proven threshold is wrong (the items above it less than .97
right; at most 20% is the promise).

    python bench/bench_threshold_power.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, machine_lines, markdown_table, write_results

from crowdloop.models.autolabel import choose_threshold, fewest_passing, start_items

TARGET, LEVEL = 0.97, 0.8
GRID = np.linspace(0, 1, 10001)


def accuracy(confidence: np.ndarray, top: float, curve: str) -> np.ndarray:
    """How often the model is right at each confidence."""
    sure = top - (0.03 * (1 - confidence) / 0.6 if curve == "sloped" else 0.0)
    return np.where(confidence > 0.4, sure, 0.75)


def outcome(confidence: np.ndarray, right: np.ndarray, tail: np.ndarray, **start: int) -> tuple[float, bool]:
    """The share of items above the proven threshold (0: none) and whether they are below the target
    (``start``: ``min_items`` and ``chance_errors``; none: the defaults)."""
    choice = choose_threshold(confidence, right, target=TARGET, confidence_level=LEVEL, **start)
    if np.isinf(choice.threshold):
        return 0.0, False
    at = np.searchsorted(GRID, choice.threshold)
    return float(np.mean(choice.threshold < GRID)), bool(tail[min(at, len(GRID) - 1)] < TARGET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, payload = [], {"command": command_line("bench_threshold_power.py"), "rows": []}
    for curve in ("flat", "sloped"):
        for n_gold in (100, 150, 186, 200, 400):
            for top in (0.98, 0.99, 0.995):
                acc = accuracy(GRID, top, curve)
                tail = np.cumsum(acc[::-1])[::-1] / np.arange(len(GRID), 0, -1)  # accuracy above each confidence
                half_start = start_items(n_gold)
                before = {"min_items": half_start,
                          "chance_errors": int(fewest_passing(TARGET, LEVEL, 1) <= half_start)}  # fmt: skip
                runs: dict[str, list[tuple[float, bool]]] = {"half": [], "whole": [], "before": []}
                for _ in range(args.trials):
                    confidence = rng.uniform(0, 1, n_gold)
                    right = rng.random(n_gold) < accuracy(confidence, top, curve)
                    half = rng.random(n_gold) < 0.5
                    runs["half"].append(outcome(confidence[half], right[half], tail))
                    runs["whole"].append(outcome(confidence, right, tail))
                    runs["before"].append(outcome(confidence, right, tail, **before))
                figures = {
                    k: (float(np.mean([s > 0 for s, _ in v])), float(np.mean([s for s, _ in v])),
                        float(np.mean([w for _, w in v])))
                    for k, v in runs.items()
                }  # fmt: skip
                payload["rows"].append({"curve": curve, "gold": n_gold, "top": top, **figures})
                rows.append([curve, str(n_gold), f"{top:.3f}"] + [
                    f"{figures[k][0]:.0%} / {figures[k][1]:.1%} / {figures[k][2]:.0%}" for k in runs
                ])  # fmt: skip
    headers = ["accuracy curve", "gold items", "surest right", "half the gold", "all of it",
               "all of it, from its surest half"]  # fmt: skip
    markdown = "\n".join([
        "# Proving an automation threshold with half or all of the gold",
        "",
        f"`{payload['command']}`",
        "",
        f"Target {TARGET}, Clopper-Pearson at {LEVEL:.0%}, fixed-sequence tests; {args.trials} trials per row. "
        "Each cell: how often a threshold is proven / the mean share of items above it (0 when none is) / "
        "how often the items above the proven threshold are less than the target right (the promise: at most "
        f"{1 - LEVEL:.0%}). half the gold, all of it: `choose_threshold`'s defaults (the walk tolerates the "
        "chance errors the surest half of the gold could hold and starts at the fewest items with which they "
        "can pass: 53 items with none, 99 with one, 183 with three). From its surest half: the walk starts at "
        "min(200, n/2) items, with one chance error when 99 fit in it, else none (the start before). sloped: "
        "the surest items' accuracy falls by 3 points from the top to the 60% mark.",
        "",
        markdown_table(headers, rows),
        "",
        *machine_lines({}),
    ])  # fmt: skip
    print(markdown)
    write_results("threshold_power", markdown, payload)


if __name__ == "__main__":
    main()
