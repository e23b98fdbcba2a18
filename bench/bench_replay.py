"""Replay of the real crowd datasets: dynamic consensus against fixed overlap, and its calibration.

For every dataset with truth and at least 3 answers per item, ``crowdloop.simulation.replay``
reveals each item's answers in a random order (per seed), in waves, to two policies at several
targets:

- ours: ``DynamicConsensus(skills="em", calibrate=True)`` (EM skills, calibrated on gold) with the
  value-of-information stop (``ConsensusPolicy(label_value=...)``: an item stops collecting answers
  once one more is expected to add less than its price in value, ``--label-value`` crowd answers per
  right label);
- Toloka-style dynamic overlap: ``DynamicConsensus(skills="gold", calibrate=False)`` (a vote
  weighted by skills from gold only, stopped at an uncalibrated confidence threshold).

A random ``--gold-share`` of the truth items are honeypots (all their answers, clamped, left out
of the metrics). Fixed overlap (MV and DS on the first n answers, same orders) gives the curve to
beat. Table 1: accuracy and answers per item; Table 2: accuracy of the accepted items against the
target.

    python bench/bench_replay.py
    python bench/bench_replay.py --datasets bluebirds,dog --seeds 3 --targets 0.9,0.95
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crowd_data
from _harness import command_line, fmt, machine_lines, markdown_table, write_results

from crowdloop.answers import Answers
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.simulation.replay import fixed_overlap, replay, summarize_fixed

POLICIES: dict[str, dict[str, Any]] = {
    "ours": {"skills": "em", "calibrate": True},
    "toloka": {"skills": "gold", "calibrate": False},
}
GOAL_MIN_ANSWERS = 9.0
GOAL_SHARE = 0.45
CALIBRATION_TOLERANCE = 0.015


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="", help="comma-separated (default: every available one)")
    parser.add_argument("--targets", default="0.85,0.90,0.95,0.97")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--big-seeds", type=int, default=3, help="seeds for datasets over --big answers")
    parser.add_argument("--big", type=int, default=50_000)
    parser.add_argument("--gold-share", type=float, default=0.2)
    parser.add_argument("--min-overlap", type=int, default=1)
    parser.add_argument(
        "--label-value",
        type=float,
        default=50.0,
        help="worth of a right label in crowd answers (ours; 0: no such stop)",
    )
    parser.add_argument(
        "--escalate-early",
        action="store_true",
        help="escalate items that cannot reach the target at once (default: keep asking up to max overlap, "
        "since no expert answers in a replay)",
    )
    parser.add_argument(
        "--overlap-quantile", type=float, default=0.9, help="max overlap: this quantile of answers per truth item"
    )
    return parser.parse_args()


def load(name: str) -> tuple[Answers, pd.Series]:
    frame, truth = crowd_data.load(name)
    frame = frame.drop_duplicates(["task", "worker"], keep="first").reset_index(drop=True)
    answers = Answers.from_frame(frame)
    return answers, truth[truth.index.isin(answers.items)]


def run_dataset(name: str, args: argparse.Namespace, targets: list[float]) -> dict[str, Any]:
    answers, truth = load(name)
    per_item = answers.answers_per_item()
    on_truth = float(per_item[answers.items.get_indexer(truth.index)].mean())
    # the project's max overlap: the answers most truth items have (an item with more is capped)
    max_overlap = int(np.ceil(np.quantile(per_item[answers.items.get_indexer(truth.index)], args.overlap_quantile)))
    seeds = list(range(args.seeds if answers.n_answers <= args.big else min(args.seeds, args.big_seeds)))
    out: dict[str, Any] = {
        "n_items": answers.n_items,
        "n_truth": len(truth),
        "n_answers": answers.n_answers,
        "answers_per_truth_item": on_truth,
        "max_overlap": max_overlap,
        "seeds": seeds,
        "runs": [],
    }
    start = time.perf_counter()
    fixed = fixed_overlap(answers, truth, ("mv", "ds"), gold_share=args.gold_share, seeds=seeds)
    out["fixed"] = summarize_fixed(fixed).to_dict("records")
    out["fixed_per_seed"] = fixed.to_dict("records")
    print(f"{name}: fixed overlap in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    for policy_name, options in POLICIES.items():
        for target in targets:
            start = time.perf_counter()
            consensus = DynamicConsensus(
                ConsensusPolicy(
                    target=target,
                    min_overlap=args.min_overlap,
                    max_overlap=max_overlap,
                    escalate_early=args.escalate_early,
                    label_value=args.label_value if policy_name == "ours" and args.label_value > 0 else None,
                ),
                **options,
            )
            result = replay(answers, truth, consensus, gold_share=args.gold_share, seeds=seeds)
            seconds = time.perf_counter() - start
            out["runs"].append(
                {
                    "policy": policy_name,
                    "target": target,
                    "seconds": seconds,
                    "summary": result.summary.to_dict("index"),
                    "per_seed": result.per_seed.to_dict("records"),
                }
            )
            s = result.summary["mean"]
            print(
                f"{name} {policy_name} {target}: acc {s['accuracy']:.3f} ans {s['answers_per_item']:.2f} "
                f"acc@accepted {s['accepted_accuracy']:.3f} esc {s['escalation_rate']:.3f} ({seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return out


def at_budget(fixed: pd.DataFrame, method: str, answers_per_item: float) -> float:
    """Accuracy of ``method`` at fixed overlap, linearly interpolated at ``answers_per_item``."""
    curve = fixed[fixed["method"] == method].sort_values("answers_per_item")
    return float(np.interp(answers_per_item, curve["answers_per_item"], curve["accuracy"]))


def interval(summary: dict[str, dict[str, float]], metric: str) -> str:
    s = summary[metric]
    if not np.isfinite(s["lo"]):
        return fmt(s["mean"])
    return f"{fmt(s['mean'])} [{fmt(s['lo'])}, {fmt(s['hi'])}]"


def tables(results: dict[str, Any]) -> tuple[str, str, str]:
    fixed_rows, main_rows, calibration_rows = [], [], []
    for name, data in results.items():
        fixed = pd.DataFrame(data["fixed"])
        top = int(fixed["n"].max())
        mv_all = fixed[(fixed["method"] == "mv") & (fixed["n"] == top)].iloc[0]
        ds_all = fixed[(fixed["method"] == "ds") & (fixed["n"] == top)].iloc[0]
        curve = fixed[fixed["method"] == "mv"].set_index("n")["accuracy"]
        enough = curve.index[curve >= mv_all["accuracy"] - 0.005]
        fixed_rows.append(
            [
                name,
                fmt(data["answers_per_truth_item"], 1),
                str(data["max_overlap"]),
                str(len(data["seeds"])),
                fmt(mv_all["accuracy"]),
                fmt(ds_all["accuracy"]),
                " ".join(fmt(curve.get(n, np.nan)) for n in (1, 3, 5)),
                str(int(enough.min())),
            ]
        )
        goal_applies = data["answers_per_truth_item"] >= GOAL_MIN_ANSWERS
        by_target: dict[float, dict[str, dict]] = {}
        for run in data["runs"]:
            s = run["summary"]
            by_target.setdefault(run["target"], {})[run["policy"]] = s
            acc, share = s["accuracy"]["mean"], s["answer_share"]["mean"]
            met = acc >= mv_all["accuracy"] and share <= GOAL_SHARE
            main_rows.append(
                [
                    name,
                    run["policy"],
                    f"{run['target']:.2f}",
                    interval(s, "accuracy"),
                    fmt(s["answers_per_item"]["mean"], 2),
                    f"{100 * share:.0f}%",
                    f"{100 * s['escalation_rate']['mean']:.1f}%",
                    fmt(s["accuracy_expert"]["mean"]),
                    fmt(at_budget(fixed, "mv", s["answers_per_item"]["mean"])),
                    fmt(at_budget(fixed, "ds", s["answers_per_item"]["mean"])),
                    fmt(mv_all["accuracy"]),
                    ("**yes**" if met else "no") if goal_applies else "-",
                ]
            )
        for target, policies in by_target.items():
            row = [name, f"{target:.2f}"]
            for policy in POLICIES:
                s = policies[policy]["accepted_accuracy"]
                gap = s["mean"] - target
                ok = gap >= -CALIBRATION_TOLERANCE
                row += [interval(policies[policy], "accepted_accuracy"), f"{100 * gap:+.1f}" + ("" if ok else " ✗")]
                row.append(f"{100 * policies[policy]['accepted_share']['mean']:.0f}%")
            calibration_rows.append(row)
    fixed_table = markdown_table(
        ["dataset", "answers/item", "max overlap", "seeds", "MV all", "DS all", "MV n=1 3 5", "MV n to reach MV all"],
        fixed_rows,
    )
    main_table = markdown_table(
        [
            "dataset",
            "policy",
            "target",
            "accuracy [95% CI]",
            "answers/item",
            "share of answers",
            "escalated",
            "acc. if expert",
            "MV same budget",
            "DS same budget",
            "MV all",
            "goal",
        ],
        main_rows,
    )
    calibration_table = markdown_table(
        [
            "dataset",
            "target",
            "ours: accepted acc. [95% CI]",
            "gap (pts)",
            "accepted",
            "toloka: accepted acc. [95% CI]",
            "gap (pts)",
            "accepted",
        ],
        calibration_rows,
    )
    return fixed_table, main_table, calibration_table


def main() -> None:
    args = parse()
    targets = [float(t) for t in args.targets.split(",") if t]
    wanted = [d for d in args.datasets.split(",") if d] or crowd_data.CATEGORICAL
    available = set(crowd_data.available())
    missing = [d for d in wanted if d not in available]
    names = [d for d in wanted if d in available]
    if not names:
        print(f"no crowd data under {crowd_data.CROWD.name}/ (set CROWDLOOP_DATA): nothing to replay")
        return
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name in names:
        answers, _ = load(name)
        if answers.answers_per_item().mean() < 3:
            print(f"{name}: fewer than 3 answers per item, skipped", file=sys.stderr)
            continue
        results[name] = run_dataset(name, args, targets)
    total = time.perf_counter() - start
    fixed_table, main_table, calibration_table = tables(results)
    lines = [
        "# Replay: dynamic consensus against fixed overlap on real crowd data",
        "",
        f"- command: `{command_line('bench_replay.py')}`",
        *machine_lines({}),
        f"- seeds: 0..{args.seeds - 1} ({args.big_seeds} for datasets over {args.big:,} answers); "
        f"gold (honeypots): {100 * args.gold_share:.0f}% of the truth items, all their answers, "
        "left out of every metric (their answers per evaluated item are in the JSON); "
        f"min overlap {args.min_overlap}, max overlap = the {100 * args.overlap_quantile:.0f}th percentile of "
        "answers per truth item (the dataset's overlap; the few items with more are capped for the policy, "
        "MV/DS all use every answer); "
        + (
            "items that cannot reach the target are escalated at once (--escalate-early); "
            if args.escalate_early
            else "no expert answers in a replay, so an item that cannot reach the target keeps collecting "
            "answers up to max overlap (escalate_early=False) and is escalated there; "
        )
        + "duplicate (task, worker) answers dropped keeping the first; wall time "
        f"{total / 60:.1f} min",
        f"- ours = `DynamicConsensus(skills='em', calibrate=True)` with `ConsensusPolicy(label_value="
        f"{args.label_value:g})`: besides accepting at the target, an item stops (escalated) once the expected "
        "accuracy gain per further answer, measured on gold items seen further (best of 1, 2, 3, 5, ... answers "
        f"ahead), is below 1/{args.label_value:g}; toloka = `DynamicConsensus(skills='gold', "
        "calibrate=False)`: a vote weighted by gold-only skills, stopped at the raw confidence threshold",
        "- metrics over the evaluated items (truth, not gold); escalated items keep their leading label "
        "(`acc. if expert`: an expert labels them right); intervals: Student t over seeds, which "
        "measures the randomness of orders and gold, not of the items themselves",
        "- `MV/DS same budget`: fixed overlap at the same answers per item (interpolated); goal (datasets "
        f"with >= {GOAL_MIN_ANSWERS:.0f} answers per item): accuracy >= MV over all answers with "
        f"<= {100 * GOAL_SHARE:.0f}% of the answers",
        *(f"- not available: {', '.join(missing)}" for _ in [0] if missing),
        "",
        "## Fixed overlap (MV and DS on the first n answers, same random orders)",
        "",
        fixed_table,
        "",
        "## Table 1: accuracy against answers per item",
        "",
        main_table,
        "",
        "## Table 2: calibration of accepted items (accuracy against the target)",
        "",
        f"A gap below -{100 * CALIBRATION_TOLERANCE:.1f} points is marked ✗.",
        "",
        calibration_table,
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results(
        "replay",
        markdown,
        {
            "command": command_line("bench_replay.py"),
            "args": vars(args),
            "minutes": total / 60,
            "datasets": results,
        },
    )


if __name__ == "__main__":
    main()
