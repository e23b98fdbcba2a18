"""Proving automation version after version on one gold: how often some version that is below the
target gets to label items.

The service tests every model version it trains on the project's gold
(``models.autolabel.choose_threshold``, at the service's level, 80%, target .97): each test keeps
its promise (a proven threshold's items are below the target at most 20% of the time,
``bench/bench_threshold_power.py``), but a project trains some fifteen versions on one gold, and
the early ones, trained on a few hundred labels, are below the target. Each of them is another
chance to pass by luck.

Simulated: ``--versions`` versions whose surest 60% of items are right with a probability rising
along a learning curve, from .948 (first version) to .994 (last), the rest 75%; a share
``--hard`` of the gold every version gets wrong (a gold label the data files another way); each
version's confidence on a gold item is the item's own rank plus noise (versions agree on what is
easy). Designs:

- ``each version at 80%``: what the service does, every version tested at 80% with
  ``choose_threshold``'s defaults;
- ``80% over all versions``: Bonferroni, each version tested at 1 - 0.2 / ``--versions``;
- ``doubling, 95%``: only the versions trained on twice as many labels as the last one tested
  (the 1st, 2nd, 4th and 8th of 15, versions every 10% more labels being about 7 apart per doubling
  later on), each at 1 - 0.2 / 4 (Bonferroni over the four);
- ``gold, then a sample of 53`` (the service, ``service.automation``): every version tested on
  gold at 80%, and a version that passes labels nothing until a fresh random sample above its
  threshold, labelled by people, passes the same test on its own: 53 items, all right
  (``sample_size``), each sample stopped at its verdict (``sample_verdict``: at the first wrong
  item); two independent tests, so a version below the target gets through both at most 0.2 x 0.2
  of the time;
- ``gold, then a sample of 99``: the same with 99 items, one of which may be wrong.

Reported over ``--trials`` projects per gold size: how often some version below the target was
proven (it would label items below the target until its audit takes them back), the versions
proven, the share of items the last version labels, and the people's labels the samples cost, in
all and per version they confirmed.

    python bench/bench_version_multiplicity.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, machine_lines, markdown_table, write_results

from crowdloop.models.autolabel import choose_threshold, fewest_passing
from crowdloop.service.automation import sample_verdict

TARGET, LEVEL = 0.97, 0.8
GRID = np.linspace(0, 1, 2001)


def learning_curve(n_versions: int) -> np.ndarray:
    """How often each version is right on its surest 60% of items (.948 for the first, .994 at 15)."""
    return 0.995 - 0.06 * np.exp(-np.arange(1, n_versions + 1) / 4)


def right_at(confidence: np.ndarray, top: float) -> np.ndarray:
    return np.where(confidence > 0.4, top, 0.75)


def wrong_allowed(size: int) -> int:
    """The wrong items a sample of ``size`` may hold and pass (``sample_verdict`` with all settled)."""
    return max(e for e in range(size + 1) if sample_verdict(size - e, size, size, TARGET) or e == 0)


def sampled(rng: np.random.Generator, accuracy: float, size: int, allowed: int) -> tuple[bool, int]:
    """A sample of ``size`` labelled one by one until its verdict: (passed, items labelled)."""
    right = rng.random(size) < accuracy
    wrong = np.flatnonzero(~right)
    if len(wrong) > allowed:
        return False, int(wrong[allowed]) + 1  # failed at its (allowed + 1)-th wrong item
    return True, int(np.flatnonzero(right)[size - allowed - 1]) + 1  # passed at its (size - allowed)-th right one


def one_project(
    rng: np.random.Generator, n_gold: int, tops: np.ndarray, hard: float, samples: dict[str, tuple[int, int]]
) -> dict[str, tuple[bool, int, float, int]]:
    """Per design: (a version below the target proven, versions proven, the last version's share, sampled items)."""
    rank = rng.uniform(0, 1, n_gold)
    wrong_always = rng.random(n_gold) < hard
    doubling = np.flatnonzero(np.isin(np.arange(1, len(tops) + 1), 2 ** np.arange(len(tops))))
    levels = {"each": LEVEL, "bonferroni": 1 - (1 - LEVEL) / len(tops),
              "doubling": 1 - (1 - LEVEL) / len(doubling)} | dict.fromkeys(samples, LEVEL)  # fmt: skip
    results = {}
    for design, level in levels.items():
        broken, proven, share, labelled = False, 0, 0.0, 0
        for j, top in enumerate(tops):
            confidence = np.clip(rank + rng.normal(0, 0.03, n_gold), 0, 1)
            right = (rng.random(n_gold) < right_at(confidence, top)) & ~wrong_always
            if design == "doubling" and j not in doubling:
                continue
            choice = choose_threshold(confidence, right, TARGET, level)
            if np.isinf(choice.threshold):
                continue
            above = choice.threshold <= GRID
            accuracy = float(right_at(GRID[above], top).mean() * (1 - hard))
            if design in samples:
                passed, used = sampled(rng, accuracy, *samples[design])
                labelled += used
                if not passed:
                    continue
            proven += 1
            broken |= accuracy < TARGET
            share = float(above.mean())
        results[design] = (broken, proven, share, labelled)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--versions", type=int, default=15)
    parser.add_argument("--hard", type=float, default=0.01)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tops = learning_curve(args.versions)
    sizes = {
        f"sample{size}": (size, wrong_allowed(size)) for size in (fewest_passing(TARGET, LEVEL, e) for e in (0, 1))
    }
    names = {"each": "each version at 80%", "bonferroni": "80% over all versions", "doubling": "doubling, 95%"}
    names |= {key: f"gold, then a sample of {size}" for key, (size, _) in sizes.items()}
    rows, payload = [], {"command": command_line("bench_version_multiplicity.py"), "settings": vars(args), "rows": []}
    for n_gold in (200, 400, 1000):
        runs = [one_project(rng, n_gold, tops, args.hard, sizes) for _ in range(args.trials)]
        for design, name in names.items():
            figures = np.array([r[design] for r in runs], dtype=np.float64)
            broken, proven, share, labelled = figures.mean(axis=0)
            per_version = labelled / proven if design in sizes and proven else float("nan")
            payload["rows"].append({"gold": n_gold, "design": design, "broken": broken, "proven": proven,
                                    "last_share": share, "sampled": labelled, "per_version": per_version})  # fmt: skip
            rows.append([str(n_gold), name, f"{broken:.0%}", f"{proven:.1f}", f"{share:.1%}", f"{labelled:.0f}",
                         "-" if np.isnan(per_version) else f"{per_version:.0f}"])  # fmt: skip
    below = int(np.sum(tops * (1 - args.hard) < TARGET))
    headers = ["gold items", "design", "some version below the target proven", "versions proven",
               "items the last version labels", "people's labels for samples", "per version confirmed"]  # fmt: skip
    markdown = "\n".join([
        "# Proving automation version after version on one gold",
        "",
        f"`{payload['command']}`",
        "",
        f"{args.versions} versions, their surest 60% of items right {tops[0]:.3f} (first) to {tops[-1]:.3f} (last); "
        f"{args.hard:.0%} of the gold wrong for every version; the first {below} versions are below the target "
        f"{TARGET} on every threshold. Clopper-Pearson at 80% unless said; {args.trials} projects per gold size. "
        "gold, then a sample: a version proven on gold labels nothing until a fresh sample above its threshold, "
        "labelled by people one by one until its verdict, passes the same test on its own (53 items all right, "
        "the service's rule, or 99 with one wrong).",
        "",
        markdown_table(headers, rows),
        "",
        "Target: some version below the target proven in at most 20% of projects (the level each test promises).",
        "",
        *machine_lines({}),
    ])  # fmt: skip
    print(markdown)
    write_results("version_multiplicity", markdown, payload)


if __name__ == "__main__":
    main()
