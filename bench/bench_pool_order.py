"""Benchmark: the order in which the labeling service leases its pool, weighed by the active
strategies (``crowdloop.service.priorities``), against the import order (a random shuffle).

Per dataset and seed: ``--pool`` product titles are imported into a fresh SQLite project (one label
per leaf path, no gold, the model does not vote, so the consensus finds every fresh item equally
worth an answer and only the weighing orders the pool); ``--test`` other titles are held out. One
annotator who always answers right leases ``--cold`` tasks (the cold start), the default
``TextClassifier`` trained on their labels predicts every open item and the predictions are stored
(top 5 labels, as a model of the service would), then ``--more`` tasks are leased. Reported: the
leaf categories the cold-start labels cover, the model's accuracy on the held-out titles trained on
the labels of the cold start and of both phases, and the seconds the pool's weighing takes (after
the import, after the predictions; off the request path), medians over seeds. The baseline leases
in import order: the weighing is switched off (every ``learn_weight`` stays 1).

    python bench/bench_pool_order.py                     # Flipkart and Myntra, 3 seeds
    python bench/bench_pool_order.py --datasets flipkart --seeds 1

The data is read from ``../shared/data/products`` (``CROWDLOOP_DATA`` overrides it); a missing
dataset is skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from _harness import command_line, fmt, machine_lines, markdown_table, write_results

from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace
from crowdloop.models import TextClassifier
from crowdloop.service import ItemIn, open_service
from crowdloop.service import priorities as weighing

ARMS = ("import order", "service order")
TOP = 5


def run(frame, seed: int, arm: str, pool: int, test: int, cold: int, more: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = frame.iloc[rng.permutation(len(frame))[: pool + test]].reset_index(drop=True)
    train, held = rows.iloc[:pool], rows.iloc[pool:]
    labels = LabelSpace(sorted(rows["path"].unique()))
    truth = dict(zip([f"i{i}" for i in range(pool)], train["path"], strict=True))
    seconds = {}
    weigh = weighing.prioritize

    def timed(db, config, project_id: int) -> int:
        started = time.perf_counter()
        out = weigh(db, config, project_id)
        seconds.setdefault("import" if "import" not in seconds else "predictions", time.perf_counter() - started)
        return out

    off = arm == "import order"
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.multiple("crowdloop.service.projects", prioritize=(lambda db, config, p: 0) if off else timed),
        mock.patch.multiple("crowdloop.service.predictions", prioritize=(lambda db, config, p: 0) if off else timed),
    ):
        service = open_service(f"sqlite:///{folder}/pool.db", seed=seed)
        project = service.create_project(
            "pool", labels, ConsensusPolicy(max_overlap=3), gold_rate=0, model_votes=False, suggestions=0
        )
        service.import_items(project.id, [ItemIn(k, {"title": t}) for k, t in zip(truth, train["title"], strict=True)])
        worker, _ = service.add_annotator(project.id, "w")
        leased = lease(service, worker, truth, cold)
        covered = len({truth[k] for k in leased})
        model = TextClassifier().fit(train.set_index(np.array(list(truth)))["title"][leased].to_numpy(object),
                                     np.array([truth[k] for k in leased], dtype=object))  # fmt: skip
        acc_cold = float(np.mean(model.predict(held["title"].to_numpy(object)) == held["path"].to_numpy(object)))
        open_ids = [k for k in truth if k not in set(leased)]
        probs = model.predict_proba(train.set_index(np.array(list(truth)))["title"][open_ids].to_numpy(object))
        top = np.argsort(-probs, axis=1)[:, :TOP]
        classes = np.asarray(model.classes_, dtype=object)
        predictions = {
            k: dict(zip(classes[t], probs[i, t].round(6).tolist(), strict=True))
            for i, (k, t) in enumerate(zip(open_ids, top, strict=True))
        }
        service.add_model_predictions(project.id, "m", "1", predictions)
        leased += lease(service, worker, truth, more)
        model = TextClassifier().fit(train.set_index(np.array(list(truth)))["title"][leased].to_numpy(object),
                                     np.array([truth[k] for k in leased], dtype=object))  # fmt: skip
        acc_both = float(np.mean(model.predict(held["title"].to_numpy(object)) == held["path"].to_numpy(object)))
        service.close()
    return {
        "seed": seed,
        "arm": arm,
        "covered": covered,
        "acc_cold": acc_cold,
        "acc_both": acc_both,
        "weigh_import_s": seconds.get("import", float("nan")),
        "weigh_predictions_s": seconds.get("predictions", float("nan")),
    }


def lease(service, worker, truth: dict, n: int) -> list[str]:
    """``n`` tasks leased and answered right, in the order the service hands them out."""
    out = []
    for _ in range(n):
        task = service.next_task(worker)
        if task is None:
            break
        out.append(task.item)
        service.submit(worker, task.lease_id, truth[task.item], duration_ms=3000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="flipkart,myntra")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=150)
    parser.add_argument("--more", type=int, default=300)
    args = parser.parse_args()
    present = product_data.available()
    rows = []
    for name in args.datasets.split(","):
        if name not in present:
            print(f"{name}: not found under {product_data.PRODUCTS.name}/, skipped")
            continue
        frame = product_data.load(name)
        for seed in range(args.seeds):
            for arm in ARMS:
                row = run(frame, seed, arm, args.pool, args.test, args.cold, args.more)
                rows.append({"dataset": name, **row})
                print(name, row, flush=True)
    if not rows:
        print("no dataset: nothing measured")
        return 0
    table = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for arm in ARMS:
            mine = [r for r in rows if r["dataset"] == name and r["arm"] == arm]

            def med(key: str, mine: list = mine) -> float:
                return statistics.median(r[key] for r in mine)

            table.append([name, arm, f"{med('covered'):.0f}", fmt(med("acc_cold")), fmt(med("acc_both")),
                          fmt(med("weigh_import_s"), 2), fmt(med("weigh_predictions_s"), 2)])  # fmt: skip
    headers = ["dataset", "order", f"leaves in the first {args.cold}", f"accuracy, {args.cold} labels",
               f"accuracy, {args.cold + args.more} labels", "weighing after import (s)",
               "weighing after predictions (s)"]  # fmt: skip
    markdown = markdown_table(headers, table)
    print(markdown)
    command = command_line("bench_pool_order.py")
    text = "\n".join(
        [
            "# The service's pool order: weighed by the active strategies, against the import order",
            "",
            __doc__.split("\n\n", 1)[1].split("\n\n    python")[0].replace("\n", " "),
            "",
            f"{args.pool:,} titles in the pool, {args.test:,} held out, {args.cold} cold-start tasks then "
            f"{args.more} more; medians over {args.seeds} seed(s).",
            "",
            markdown,
            "",
            f"Command: `{command}`",
            "",
            *machine_lines({}),
            "",
        ]
    )
    write_results("pool_order", text, {"command": command, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
