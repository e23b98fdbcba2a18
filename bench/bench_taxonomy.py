"""Benchmark: truth inference over the Google Product Taxonomy (5,595 classes).

A synthetic crowd (``crowdloop.simulation.simulate_taxonomy_crowd``: good, sloppy and spammer
workers, wrong answers mostly siblings and cousins, 10% of answers at the parent node) labels
200,000 items with 3 answers each from 2,000 workers. Each method is fitted in its own child
process, so its peak resident memory (``ru_maxrss``: Python, the data and the fit) is measured
alone. Accuracy is exact-label accuracy and accuracy at taxonomy levels 1 and 2 (the ancestor of
the prediction at that level equals the truth's). Each run draws a new crowd (seeds 0, 1, 2, ...);
the table gives medians over runs.

    python bench/bench_taxonomy.py                 # the full benchmark, writes bench/results/taxonomy.{md,json}
    python bench/bench_taxonomy.py --items 20000   # a quick look

The taxonomy defaults to ``../shared/data/taxonomy/google_product_taxonomy.txt`` beside the
project (``CROWDLOOP_DATA`` overrides the data directory); without it the benchmark skips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd_data import DATA

TAXONOMY = DATA / "taxonomy" / "google_product_taxonomy.txt"
RESULTS = Path(__file__).resolve().parent / "results"
METHODS: dict[str, tuple[str, dict]] = {
    "mv": ("mv", {}),
    "wawa": ("wawa", {}),
    "taxonomy": ("taxonomy", {}),
    # ablation: ancestor answers counted as errors (the plain skill x pooled-confusion model)
    "taxonomy-no-partial": ("taxonomy", {"partial_answers": False}),
}
TIME_LIMIT_S = 60.0
MEMORY_LIMIT_MB = 3072.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taxonomy", type=Path, default=TAXONOMY)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2_000)
    parser.add_argument("--answers-per-item", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], Path(args.child[1]), args.taxonomy)
    if not args.taxonomy.is_file():
        print(f"skipped: the taxonomy file is absent ({args.taxonomy.name}; set CROWDLOOP_DATA)")
        return 0
    from crowdloop.labels import Taxonomy
    from crowdloop.simulation import simulate_taxonomy_crowd

    taxonomy = Taxonomy.read(args.taxonomy)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            frame, truth = simulate_taxonomy_crowd(
                taxonomy, args.items, args.workers, args.answers_per_item, random_state=run
            )
            path = Path(tmp) / f"crowd-{run}.npz"
            workers, worker_codes = np.unique(frame["worker"].to_numpy(dtype=str), return_inverse=True)
            np.savez(
                path,
                item=frame["task"].to_numpy(np.int32),
                worker=worker_codes.astype(np.int32),
                workers=workers,
                label=taxonomy.encode(frame["label"].to_numpy()),
                truth=taxonomy.encode(truth.to_numpy()),
            )
            del frame, truth
            for method in args.methods:
                command = [sys.executable, __file__, "--taxonomy", str(args.taxonomy), "--child", method, str(path)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1]) | {"run": run}
                rows.append(result)
                print(
                    f"run {run} {method:20s} fit {result['fit_s']:6.2f} s  peak {result['peak_mb']:6.0f} MB  "
                    f"acc {result['accuracy']:.4f}",
                    file=sys.stderr,
                )
    table = pd.DataFrame(rows)
    summary = table.groupby("method", sort=False).median(numeric_only=True).drop(columns="run")
    mv = summary.loc["mv"] if "mv" in summary.index else None
    markdown = _markdown(summary, mv, args)
    print(markdown)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "taxonomy.md").write_text(markdown + "\n", encoding="utf-8")
        report = {
            "command": _command(),
            "machine": _machine(),
            "setup": _setup(args),
            "limits": {"fit_s": TIME_LIMIT_S, "peak_mb": MEMORY_LIMIT_MB},
            "median": summary.reset_index().to_dict(orient="records"),
            "runs": rows,
        }
        (RESULTS / "taxonomy.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _child(method: str, path: Path, taxonomy_path: Path) -> int:
    """Fit one method on one saved crowd; print one JSON line (time, peak memory, accuracy)."""
    from crowdloop.aggregation.registry import method_class
    from crowdloop.answers import Answers
    from crowdloop.labels import Taxonomy

    taxonomy = Taxonomy.read(taxonomy_path)
    data = np.load(path)
    truth = data["truth"]
    answers = Answers(
        item=data["item"],
        worker=data["worker"],
        label=data["label"],
        items=pd.RangeIndex(len(truth), name="task"),
        workers=pd.Index(data["workers"]),
        labels=taxonomy,
    )
    before_mb = _peak_mb()
    start = time.perf_counter()
    name, options = METHODS[method]
    model = method_class(name)(**options).fit(answers)
    fit_s = time.perf_counter() - start
    predicted = taxonomy.encode(model.labels_.to_numpy())
    result = {
        "method": method,
        "fit_s": fit_s,
        "peak_mb": _peak_mb(),
        "peak_before_fit_mb": before_mb,
        "accuracy": float((predicted == truth).mean()),
        "level1_accuracy": _level_accuracy(taxonomy, predicted, truth, 1),
        "level2_accuracy": _level_accuracy(taxonomy, predicted, truth, 2),
        "n_iter": int(getattr(model, "n_iter_", 1)),
    }
    print(json.dumps(result))
    return 0


def _level_accuracy(taxonomy, predicted: np.ndarray, truth: np.ndarray, depth: int) -> float:
    """Share of items whose prediction has the truth's ancestor at ``depth`` (truths at least that deep)."""
    deep = taxonomy.depth[truth] >= depth
    same = taxonomy.ancestor_at(predicted[deep], depth) == taxonomy.ancestor_at(truth[deep], depth)
    return float(same.mean())


def _peak_mb() -> float:
    """Peak resident memory of this process. Linux's ``VmHWM`` belongs to the process image, while
    ``ru_maxrss`` keeps the high-water mark of the parent forked before ``exec``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def _markdown(summary: pd.DataFrame, mv: pd.Series | None, args: argparse.Namespace) -> str:
    lines = [
        "# Truth inference over the Google Product Taxonomy",
        "",
        f"Setup: {_setup(args)['description']}. Medians over {args.runs} runs (a new crowd per run).",
        f"Limits for `taxonomy`: fit < {TIME_LIMIT_S:.0f} s, peak memory < {MEMORY_LIMIT_MB / 1024:.0f} GB.",
        "",
        "| method | fit (s) | peak RSS (MB) | accuracy | vs MV | level-1 acc | level-2 acc | EM iterations |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, row in summary.iterrows():
        gain = f"{row['accuracy'] - mv['accuracy']:+.4f}" if mv is not None else "-"
        lines.append(
            f"| {method} | {row['fit_s']:.2f} | {row['peak_mb']:.0f} | {row['accuracy']:.4f} | {gain} | "
            f"{row['level1_accuracy']:.4f} | {row['level2_accuracy']:.4f} | {row['n_iter']:.0f} |"
        )
    machine = _machine()
    lines += [
        "",
        "Peak RSS is the whole child process (Python, pandas, the taxonomy, the answers and the fit);",
        "the fit time excludes reading the data. Level-k accuracy: the prediction's ancestor at depth k",
        "equals the truth's (items whose truth is at least that deep).",
        "",
        f"Command: `{_command()}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, {machine['system']}.",
    ]
    return "\n".join(lines)


def _setup(args: argparse.Namespace) -> dict:
    return {
        "items": args.items,
        "workers": args.workers,
        "answers_per_item": args.answers_per_item,
        "runs": args.runs,
        "description": (
            f"{args.items:,} items x {args.answers_per_item} answers, {args.workers:,} workers "
            "(archetypes: 50% good ~Beta(17,3), 35% sloppy ~Beta(6,4), 15% spammers), wrong answers "
            "60% sibling / 25% cousin / 15% random, 10% of answers at the parent node, 95% leaf truths, "
            "Zipf(1) label popularity"
        ),
    }


def _command() -> str:
    shown = [arg for arg in sys.argv[1:]]
    return " ".join(["python bench/bench_taxonomy.py", *shown])


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "numpy": np.__version__,
    }


if __name__ == "__main__":
    sys.exit(main())
