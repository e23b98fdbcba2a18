"""Replay of the real crowd datasets through ``crowdloop decide``, batch by batch, as a user runs it.

For every shared crowd set with truth, ``crowdloop.simulation.replay`` reveals each task's answers
in a random order (per seed), in batches: every task starts with one answer; after each batch the
revealed answers (and the gold file) are written to CSV and ``crowdloop decide`` (the command, run
in-process) decides every task; a task told ``more`` gets the ``next`` answers it asked for (up to
the answers it has in the data), an accepted or escalated task is settled as of that batch. A share
of the truth tasks are gold (all their answers revealed and counted in the cost). The same batches
are decided by the labeling service's decision (``consensus.fitting.refit`` on the stored answers,
then the ``Decider`` with the skills the service would read back), and the bench reports how many
final decisions the two share.

Columns: accuracy (escalated tasks keep their leading label), accuracy when an expert settles the
escalated ones, accepted tasks' accuracy against the target, escalated share, answers per task and
cost per task (crowd answers + gold answers + ``--expert-cost`` per escalation) against fixed
overlap: majority vote and Dawid-Skene at the same budget and at full overlap, and the cost as a
share of collecting every answer.

Targets (issue): no gold: accepted >= target - 3 points; accuracy >= MV(all) - 1 point with <= 60%
of the answers (sets with 9+ answers per task). 10% gold: accepted within 1.5 points of the target;
with an expert, accuracy >= MV(all) at <= 50% of the cost of every answer (9+ answers per task).

    python bench/bench_replay.py --quick
    python bench/bench_replay.py --datasets dog,face --seeds 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crowd_data
from _harness import command_line, fmt, machine_lines, markdown_table, write_results
from typer.testing import CliRunner

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.answers import Answers
from crowdloop.cli import app
from crowdloop.consensus import ConsensusPolicy, Decider, Prices, opinions_of
from crowdloop.consensus.fitting import StoredAnswers, refit
from crowdloop.consensus.skills import SkillRules
from crowdloop.simulation.replay import fixed_overlap, replay, summarize_fixed

MANY_ANSWERS = 9.0


class DecideCommand:
    """``crowdloop decide`` as a replay policy: each batch written to CSV, the command run, its
    decisions read back in the order of the answers' tasks."""

    def __init__(self, policy: ConsensusPolicy, folder: Path) -> None:
        self.policy = policy
        self.folder = folder

    def fit(self, answers: Answers, gold: pd.Series) -> DecideCommand:
        self.gold = gold
        return self

    def decide(self, answers: Answers) -> pd.DataFrame:
        frame = answers.to_frame()[["task", "worker", "label"]]
        frame.to_csv(self.folder / "answers.csv", index=False)
        p = self.policy
        options = ["--target", str(p.target), "--max-overlap", str(p.max_overlap),
                   "--expert-cost", str(p.prices.expert / p.prices.crowd)]  # fmt: skip
        if len(self.gold):
            self.gold.rename("label").rename_axis("task").to_csv(self.folder / "gold.csv")
            options += ["--gold", str(self.folder / "gold.csv")]
        out = self.folder / "decisions.csv"
        result = CliRunner().invoke(app, ["decide", str(self.folder / "answers.csv"), "-o", str(out), *options])
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        table = pd.read_csv(out, dtype={"task": str, "label": str}).set_index("task")
        table = table.reindex(answers.items.astype(str))
        by_text = {str(label): label for label in answers.labels.labels}
        table["label"] = table["label"].map(lambda x: by_text.get(x) if isinstance(x, str) else None)
        table["status"] = table["status"].fillna("more")
        table["next"] = table["next"].fillna(1)
        return table.reset_index(drop=True)


class ServiceDecision:
    """The labeling service's decision on the same batches: its refit on the stored answers (gold
    as the truth it stores), the calibrator through its JSON form, then the ``Decider`` with the
    skills it reads back."""

    def __init__(self, policy: ConsensusPolicy) -> None:
        self.policy = policy

    def fit(self, answers: Answers, gold: pd.Series) -> ServiceDecision:
        codes = answers.items.get_indexer(gold.index)
        stored = StoredAnswers(
            item=answers.item.astype(np.int64), annotator=answers.worker.astype(np.int64),
            label=answers.label.astype(np.int64), gold_item=codes.astype(np.int64),
            gold_label=answers.labels.encode(gold.to_numpy()).astype(np.int64),
            soft=pd.DataFrame(columns=["version", "item", "label", "prob"]),
            names=pd.Series(answers.items.astype(str), index=np.arange(answers.n_items)),
        )  # fmt: skip
        self.result = refit(stored, answers.labels, self.policy, SkillRules())
        self.gold_codes = codes
        return self

    def decide(self, answers: Answers) -> pd.DataFrame:
        r = self.result
        skill = np.full(answers.n_workers, r.prior)
        skill[r.annotators] = r.skill
        calibrator = TopLabelCalibrator.from_dict(r.calibrator.to_dict()) if r.calibrator is not None else None
        decider = Decider(
            answers.labels, self.policy, typical_skill=r.typical_skill, skill_evidence=r.skill_evidence,
            calibrator=calibrator,
        )  # fmt: skip
        table = decider.decide(opinions_of(answers, skill, unseen_skill=r.prior)).frame()
        table.loc[self.gold_codes, ["status", "next"]] = ["accepted", 0]
        labels = answers.labels.decode(np.maximum(table["label"].to_numpy(), 0))
        table["label"] = np.where(table["label"].to_numpy() >= 0, labels, None)
        return table


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="", help="comma-separated (default: every available one)")
    parser.add_argument("--targets", default="0.90,0.95,0.97")
    parser.add_argument("--gold", default="0,0.05,0.10", help="gold shares of the truth tasks")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--expert-cost", type=float, default=10.0, help="an expert review, in crowd answers")
    parser.add_argument("--overlap-quantile", type=float, default=0.9, help="max overlap: this quantile")
    parser.add_argument("--no-service", action="store_true", help="skip the service's decision")
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, gold 0 and 10%%, target 0.95, sets under 30,000 answers"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.gold, args.targets = 1, "0,0.10", "0.95"
    return args


def load(name: str) -> tuple[Answers, pd.Series]:
    frame, truth = crowd_data.load(name)
    frame = frame.drop_duplicates(["task", "worker"], keep="first").reset_index(drop=True)
    answers = Answers.from_frame(frame)
    return answers, truth[truth.index.isin(answers.items)]


def at_budget(fixed: pd.DataFrame, method: str, answers_per_item: float) -> float:
    curve = fixed[fixed["method"] == method].sort_values("answers_per_item")
    return float(np.interp(answers_per_item, curve["answers_per_item"], curve["accuracy"]))


def run_dataset(name: str, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    answers, truth = load(name)
    per_truth = answers.answers_per_item()[answers.items.get_indexer(truth.index)]
    max_overlap = int(np.ceil(np.quantile(per_truth, args.overlap_quantile)))
    seeds = list(range(args.seeds))
    rows = []
    for share in [float(g) for g in args.gold.split(",") if g]:
        fixed = summarize_fixed(fixed_overlap(answers, truth, ("mv", "ds"), gold_share=share, seeds=seeds))
        top = fixed["n"].max()
        mv_all = float(fixed[(fixed["method"] == "mv") & (fixed["n"] == top)]["accuracy"].iloc[0])
        ds_all = float(fixed[(fixed["method"] == "ds") & (fixed["n"] == top)]["accuracy"].iloc[0])
        for target in [float(t) for t in args.targets.split(",") if t]:
            policy = ConsensusPolicy(
                target=target, max_overlap=max_overlap, prices=Prices(crowd=1.0, expert=args.expert_cost)
            )
            start = time.perf_counter()
            command = replay(answers, truth, lambda p=policy: DecideCommand(p, folder), gold_share=share, seeds=seeds)
            seconds = time.perf_counter() - start
            s = command.summary["mean"]
            same = np.nan
            if not args.no_service:
                served = replay(answers, truth, lambda p=policy: ServiceDecision(p), gold_share=share, seeds=seeds)
                same = float(np.isclose(served.per_seed["accuracy"], command.per_seed["accuracy"]).mean())
            all_answers = s["answers_per_item"] / s["answer_share"] + s["gold_answers_per_item"]
            cost = s["answers_per_item"] + s["gold_answers_per_item"] + args.expert_cost * s["escalation_rate"]
            rows.append(
                {
                    "dataset": name, "answers_per_task": float(per_truth.mean()), "gold": share, "target": target,
                    "max_overlap": max_overlap, "seeds": len(seeds), "accuracy": s["accuracy"],
                    "accuracy_expert": s["accuracy_expert"], "accepted_accuracy": s["accepted_accuracy"],
                    "accepted_share": s["accepted_share"], "escalated": s["escalation_rate"],
                    "answers_per_item": s["answers_per_item"], "answer_share": s["answer_share"],
                    "gold_answers_per_item": s["gold_answers_per_item"], "cost_per_item": cost,
                    "cost_share": cost / all_answers,
                    "mv_budget": at_budget(fixed, "mv", s["answers_per_item"]),
                    "ds_budget": at_budget(fixed, "ds", s["answers_per_item"]), "mv_all": mv_all, "ds_all": ds_all,
                    "service_same": same, "seconds": seconds,
                }
            )  # fmt: skip
            print(f"{name} gold {share:.0%} target {target}: {rows[-1]['accuracy']:.3f} ({seconds:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    return rows


def verdict(row: dict[str, Any]) -> str:
    """The issue's targets for the row (``-`` where none applies)."""
    many = row["answers_per_task"] >= MANY_ANSWERS
    accepted = row["accepted_accuracy"]
    if row["gold"] == 0:
        calibrated = not np.isfinite(accepted) or accepted >= row["target"] - 0.03
        cheap = (row["accuracy"] >= row["mv_all"] - 0.01 and row["answer_share"] <= 0.6) if many else True
    elif abs(row["gold"] - 0.10) < 1e-9:
        calibrated = not np.isfinite(accepted) or abs(accepted - row["target"]) <= 0.015
        cheap = (row["accuracy_expert"] >= row["mv_all"] and row["cost_share"] <= 0.5) if many else True
    else:
        return "-"
    return (
        "**yes**"
        if calibrated and cheap
        else "no" + ("" if calibrated else " (calibration)") + ("" if cheap else " (cost/accuracy)")
    )


def main() -> None:
    args = parse()
    wanted = [d for d in args.datasets.split(",") if d] or crowd_data.CATEGORICAL
    available = set(crowd_data.available())
    names = [d for d in wanted if d in available]
    if not names:
        print(f"no crowd data under {crowd_data.CROWD.name}/ (set CROWDLOOP_DATA): nothing to replay")
        return
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            answers, _ = load(name)
            if args.quick and answers.n_answers > 30_000:
                print(f"{name}: over 30,000 answers, skipped in --quick", file=sys.stderr)
                continue
            rows += run_dataset(name, args, Path(folder))
    total = time.perf_counter() - start
    table = markdown_table(
        ["dataset", "answers/task", "gold", "target", "accuracy", "acc. if expert", "accepted acc.", "escalated",
         "answers/task paid", "cost/task", "cost share", "MV same budget", "DS same budget", "MV all", "DS all",
         "service = decide", "targets met"],
        [
            [r["dataset"], fmt(r["answers_per_task"], 1), f"{r['gold']:.0%}", f"{r['target']:.2f}", fmt(r["accuracy"]),
             fmt(r["accuracy_expert"]), fmt(r["accepted_accuracy"]), f"{r['escalated']:.0%}",
             fmt(r["answers_per_item"], 2), fmt(r["cost_per_item"], 2), f"{r['cost_share']:.0%}", fmt(r["mv_budget"]),
             fmt(r["ds_budget"]), fmt(r["mv_all"]), fmt(r["ds_all"]),
             "-" if not np.isfinite(r["service_same"]) else f"{r['service_same']:.0%}", verdict(r)]
            for r in rows
        ],
    )  # fmt: skip
    lines = [
        "# Replay through `crowdloop decide`, batch by batch, on real crowd data",
        "",
        f"- command: `{command_line('bench_replay.py')}`",
        *machine_lines({}),
        f"- seeds 0..{args.seeds - 1} (new answer orders and gold per seed); expert review = "
        f"{args.expert_cost:g} crowd answers; max overlap = the {100 * args.overlap_quantile:.0f}th percentile of "
        f"answers per truth task; gold tasks: all their answers revealed, counted in the cost; wall time "
        f"{total / 60:.1f} min",
        "- cost share: (paid answers + gold answers + expert reviews at their price) / (every answer of the "
        "evaluated and gold tasks); service = decide: seeds on which the service's decision gave the same "
        "accuracy as the command",
        "",
        table,
        "",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("replay", markdown, {"rows": rows, "args": vars(args)})


if __name__ == "__main__":
    main()
