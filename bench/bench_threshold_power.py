"""How often gold proves an automation threshold, with half of it or all of it as evidence.

A model's surest 60% of items are ``TOP`` right (98-99.5%), the rest 75%; ``n`` gold items are
drawn at random confidences. ``models.autolabel.choose_threshold`` (fixed-sequence Clopper-Pearson
at the service's level, 80%, target .97) runs on one random half of the gold (the evidence when a
version is one cross-fitting fold's model) and on all of it (a version that labels each text with
the fold model that never saw it, ``models.routed``). Reported over ``--trials``: how often a
threshold is proven, and the mean share of items above it (0 when none is).

    python bench/bench_threshold_power.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, machine_lines, markdown_table, write_results

from crowdloop.models.autolabel import choose_threshold

TARGET, LEVEL = 0.97, 0.8


def automated_share(confidence: np.ndarray, right: np.ndarray) -> float:
    choice = choose_threshold(confidence, right, target=TARGET, confidence_level=LEVEL, min_items=0)
    return 0.0 if np.isinf(choice.threshold) else float(np.mean(np.linspace(0, 1, 1001) > choice.threshold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, payload = [], {"command": command_line("bench_threshold_power.py"), "rows": []}
    for n_gold in (100, 200, 400):
        for top in (0.98, 0.99, 0.995):
            shares: dict[str, list[float]] = {"half": [], "whole": []}
            for _ in range(args.trials):
                confidence = rng.uniform(0, 1, n_gold)
                right = rng.random(n_gold) < np.where(confidence > 0.4, top, 0.75)
                half = rng.random(n_gold) < 0.5
                shares["half"].append(automated_share(confidence[half], right[half]))
                shares["whole"].append(automated_share(confidence, right))
            figures = {k: (float(np.mean(np.array(v) > 0)), float(np.mean(v))) for k, v in shares.items()}
            payload["rows"].append({"gold": n_gold, "top": top, **figures})
            rows.append([str(n_gold), f"{top:.3f}", f"{figures['half'][0]:.0%}", f"{figures['half'][1]:.1%}",
                         f"{figures['whole'][0]:.0%}", f"{figures['whole'][1]:.1%}"])  # fmt: skip
    headers = ["gold items", "surest 60% right", "proven, half the gold", "automated, half",
               "proven, all the gold", "automated, all"]  # fmt: skip
    markdown = "\n".join([
        "# Proving an automation threshold with half or all of the gold",
        "",
        f"`{payload['command']}`",
        "",
        f"Target {TARGET}, Clopper-Pearson at {LEVEL:.0%}, fixed-sequence tests; {args.trials} trials per row; "
        "automated: the mean share of items above the proven threshold (0 when none is proven).",
        "",
        markdown_table(headers, rows),
        "",
        *machine_lines({}),
    ])  # fmt: skip
    print(markdown)
    write_results("threshold_power", markdown, payload)


if __name__ == "__main__":
    main()
