"""The whole labeling loop through the HTTP API: a simulated crowd against ``crowdloop serve`` while
the server's model worker trains, votes and labels the items it is sure of.

Each run starts ``crowdloop serve`` (uvicorn on a loopback port, a fresh SQLite file) and lets
``crowdloop.server.simulated_crowd.run_loop`` work a product project: ``--items`` titles in their
real categories (a taxonomy), 10% gold, the policy's ``--target``, overlap 1-3, ``--annotators``
simulated annotators who read the title the way the product demo's crowd does (experts, good and
sloppy annotators, spammers, a colluding ring) and an expert reviewer for escalations, until every
item is settled. Datasets: the Flipkart sample shipped with crowdloop and Myntra fashion products
(``../shared/data/products``, skipped when absent). Every seed is run with the model worker (a
process beside the server) and without it (``--no-worker``): the loop's answers per second and p99
latency with the worker must stay within 10% of those without it (``--compare`` names the datasets
run both ways).

Reported per dataset (median over seeds): accuracy on items that are not gold, paid human answers
per item (gold answers included, reviews not), escalated share, share labelled by the model with
no human answer and its accuracy, cost per item (crowd answer 1, review 10), answers per second and
p50/p99 latency of the loop's requests; a PNG shows automation and answers per item as the model
learns.

    python bench/bench_loop.py
    python bench/bench_loop.py --datasets flipkart-sample --seeds 0 --items 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import product_data
from _harness import RESULTS, command_line, fmt, machine_lines, markdown_table, median, write_results

from crowdloop.server.process import ServerProcess
from crowdloop.server.simulated_crowd import LoopSetup, run_loop
from crowdloop.simulation.products import product_sample

TARGETS = {"accuracy": 0.97, "answers_per_item": 1.3, "escalated": 0.05, "automated": 0.30,
           "automated_accuracy": 0.97}  # fmt: skip
SEEDS_SYSTEMS = "the seeds' systems: 80% of items labelled by the model at 99%"


def dataset(name: str, n: int) -> pd.DataFrame | None:
    """``title``, ``path`` of ``n`` products (a fixed sample), None when the data is absent."""
    if name == "flipkart-sample":
        frame = product_sample().rename(columns={"category": "path"})
    elif name in product_data.available():
        frame = product_data.load(name)
    else:
        return None
    return frame.sample(min(n, len(frame)), random_state=0).reset_index(drop=True)


def one_run(frame: pd.DataFrame, setup: LoopSetup, seed: int, worker: bool, folder: Path) -> dict[str, Any]:
    url = f"sqlite:///{folder / uuid.uuid4().hex}.db"
    options = () if worker else ("--no-worker",)
    with ServerProcess(url, options=options) as server:
        run = run_loop(
            server.base_url, server.admin_token, frame["title"].tolist(), frame["path"].tolist(), setup, seed
        )
    return {"figures": run.figures, "timeline": run.timeline.to_dict(orient="list"), "versions": run.versions}


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = runs[0]["figures"].keys()
    return {k: median([r["figures"][k] for r in runs]) for k in keys}


def render(payload: dict[str, Any]) -> str:
    headers = ["dataset", "worker", "accuracy", "answers/item", "escalated", "automated", "automated right",
               "cost/item", "answers/s", "p50 ms", "p99 ms", "versions"]  # fmt: skip
    rows, notes, settings = [], [], payload["settings"]
    for name, result in payload["datasets"].items():
        if isinstance(result, str):
            notes.append(f"- {name}: skipped ({result})")
            continue
        for mode in ("on", "off"):
            if mode not in result:
                continue
            s = summarize(result[mode])
            rows.append([name, mode, fmt(s["accuracy"]), f"{s['answers_per_item']:.2f}", f"{s['escalated']:.1%}",
                         f"{s['automated']:.1%}", fmt(s["automated_accuracy"]), f"{s['cost_per_item']:.2f}",
                         f"{s['answers_per_second']:.1f}", f"{s['p50_ms']:.0f}", f"{s['p99_ms']:.0f}",
                         f"{s['versions']:.0f}"])  # fmt: skip
        on = summarize(result["on"])
        missed = [f"{k} {on[k]:.3f} (target {'<=' if k in ('answers_per_item', 'escalated') else '>='} {t})"
                  for k, t in TARGETS.items()
                  if not (on[k] <= t if k in ("answers_per_item", "escalated") else on[k] >= t)]  # fmt: skip
        if "off" in result:
            off = summarize(result["off"])
            ratio_rate, ratio_p99 = on["answers_per_second"] / off["answers_per_second"], on["p99_ms"] / off["p99_ms"]
            notes.append(f"- {name}: with the worker, answers/s at {ratio_rate:.2f}x and p99 at {ratio_p99:.2f}x "
                         "of the loop without it (target: within 10%)"
                         + ("" if ratio_rate >= 0.9 and ratio_p99 <= 1.1 else ": **missed**"))  # fmt: skip
        notes.append(f"- {name}: " + ("every target met" if not missed else "**missed**: " + "; ".join(missed)))
        broken = [f"seed {seed}: accuracy {fmt(run['figures']['accuracy'])}, automated right "
                  f"{fmt(run['figures']['automated_accuracy'])}"
                  for seed, run in zip(settings["seeds"], result["on"], strict=True)
                  if run["figures"]["accuracy"] < TARGETS["accuracy"]
                  or run["figures"]["automated_accuracy"] < TARGETS["automated_accuracy"]]  # fmt: skip
        if broken:
            notes.append(f"- {name}: the accuracy promise **missed** on " + "; ".join(broken))
        share, right = on["automated"], fmt(on["automated_accuracy"])
        notes.append(f"- {name}: {share:.0%} of items labelled by the model at {right} right, against {SEEDS_SYSTEMS}")
    lines = [
        "# The labeling loop through the HTTP API",
        "",
        f"`{payload['command']}`",
        "",
        f"{settings['items']} products per dataset (10% gold), policy target {settings['target']}, overlap 1-3, "
        f"{settings['annotators']} simulated annotators ({settings['think']} s per answer on average, lognormal) "
        "and an expert reviewer; "
        f"seeds {settings['seeds']}; medians over seeds. worker on: `crowdloop serve` with its model worker; off: "
        "`--no-worker`. accuracy: settled items that are not gold; answers/item: paid human answers (gold "
        "included) per item; escalated: items a reviewer settled; automated: labelled by the model with no human "
        "answer, and the share of those right; cost: crowd answer 1, review 10.",
        "",
        markdown_table(headers, rows, right=[False, False] + [True] * (len(headers) - 2)),
        "",
        "Each run with the worker (the medians above hide how far runs of one setup differ: which "
        "model version first proves a threshold on the gold decides most of a run's automation):",
        "",
        each_run(payload),
        "",
        f"Targets: accuracy >= {TARGETS['accuracy']}, answers/item <= {TARGETS['answers_per_item']}, escalated "
        f"<= {TARGETS['escalated']:.0%}, automated >= {TARGETS['automated']:.0%} at >= "
        f"{TARGETS['automated_accuracy']} right.",
        "",
        *notes,
        "",
        f"![automation and answers per item as the model learns]({payload.get('plot', 'loop.png')})",
        "",
        *machine_lines({}),
    ]
    return "\n".join(lines)


def each_run(payload: dict[str, Any]) -> str:
    """One row per dataset and seed, worker on."""
    headers = ["dataset", "seed", "accuracy", "answers/item", "escalated", "automated", "automated right",
               "versions proven", "p99 ms"]  # fmt: skip
    rows = []
    for name, result in payload["datasets"].items():
        if isinstance(result, str):
            continue
        for seed, run in zip(payload["settings"]["seeds"], result["on"], strict=True):
            f = run["figures"]
            proven = sum(v.get("threshold") is not None for v in run["versions"])
            rows.append([name, str(seed), fmt(f["accuracy"]), f"{f['answers_per_item']:.2f}", f"{f['escalated']:.1%}",
                         f"{f['automated']:.1%}", fmt(f["automated_accuracy"]), str(proven),
                         f"{f['p99_ms']:.0f}"])  # fmt: skip
    return markdown_table(headers, rows, right=[False] + [True] * (len(headers) - 1))


def plot(payload: dict[str, Any], path: Path) -> Path | None:
    """Automated share and paid answers per item against the share of items settled (worker on)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for name, result in payload["datasets"].items():
        if isinstance(result, str):
            continue
        for k, run in enumerate(result["on"]):
            t = pd.DataFrame(run["timeline"])
            settled = t["settled"] / t["items"].clip(lower=1)
            label = name if k == 0 else None
            axes[0].plot(settled, t["automated_share"], label=label, color=f"C{list(payload['datasets']).index(name)}")
            axes[1].plot(settled, t["answers_per_item"], label=label, color=f"C{list(payload['datasets']).index(name)}")
    axes[0].set_ylabel("share of items labelled by the model")
    axes[1].set_ylabel("paid human answers per item so far")
    for a in axes:
        a.set_xlabel("share of items settled")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    figure.suptitle("The loop as the model learns (worker on, one line per seed)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="flipkart-sample,myntra")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--think", type=float, default=0.3, help="Mean seconds per answer (lognormal).")
    parser.add_argument("--compare", default="flipkart-sample",
                        help="Datasets also run without the worker (comma-separated; '' for none).")  # fmt: skip
    parser.add_argument("--name", default="loop")
    args = parser.parse_args()
    setup = LoopSetup(target=args.target, annotators=args.annotators, think_seconds=args.think)
    settings = {k: v for k, v in vars(args).items() if k != "name"}
    payload: dict[str, Any] = {"command": command_line("bench_loop.py"), "settings": settings, "datasets": {}}
    folder = Path(tempfile.mkdtemp(prefix="crowdloop-bench-loop-"))
    for name in args.datasets.split(","):
        frame = dataset(name, args.items)
        if frame is None:
            payload["datasets"][name] = "data not found beside the project"
            continue
        result: dict[str, list] = {"on": [], "off": []}
        for seed in args.seeds:
            for worker in (True, False) if name in args.compare.split(",") else (True,):
                run = one_run(frame, setup, seed, worker, folder)
                result["on" if worker else "off"].append(run)
                print(name, seed, "on" if worker else "off", {k: round(v, 3) for k, v in run["figures"].items()},
                      flush=True)  # fmt: skip
        payload["datasets"][name] = {k: v for k, v in result.items() if v}
    written = plot(payload, RESULTS / f"{args.name}.png")
    if written is not None:
        payload["plot"] = written.name
    markdown = render(payload)
    print(markdown)
    write_results(args.name, markdown, payload)


if __name__ == "__main__":
    main()
