"""Speed and peak memory of the truth-inference methods on synthetic crowds, beside crowd-kit.

Crowds from ``crowdloop.simulation.crowds.synthetic_crowd`` (seed 0):

- S: 10,000 items x 3 answers, 100 workers, K = 5
- M: 100,000 items x 5 answers, 1,000 workers, K = 10
- L: 1,000,000 items x 3 answers, 1,000 workers, K = 10

Every fit runs in a fresh child process (its peak RSS is its own) on the same crowd frame, with the
same ``n_iter`` and ``tol`` for both libraries (each passes what its class accepts). The time is the
``fit_predict`` call on a crowd-kit frame (for crowdloop that includes encoding the frame). Reports
the median wall time over the repeats, the peak RSS of the child, the iterations, the accuracy
against the truth (must match crowd-kit) and the speed-up.

    python bench/bench_speed.py [--crowdkit-python PATH] [--methods ds,glad,mace] [--sizes S,M]
        [--crowdkit-pairs ds:S,ds:M | all | none] [--repeats 3] [--cleanlab]

crowd-kit's GLAD and MACE on M and L would take hours: by default crowd-kit runs only the pairs in
``DEFAULT_CROWDKIT_PAIRS``. Prints Markdown and writes ``bench/results/speed.md`` and ``speed.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    CROWDKIT_CLASSES,
    ChildResult,
    command_line,
    crowdkit_versions,
    fmt,
    machine,
    machine_lines,
    markdown_table,
    median,
    run_child,
    save_crowd,
    write_results,
)


@dataclass(frozen=True)
class Size:
    n_items: int
    answers_per_item: int
    n_workers: int
    n_labels: int

    def describe(self) -> str:
        return (
            f"{self.n_items:,} items x {self.answers_per_item} answers, {self.n_workers:,} workers, K = {self.n_labels}"
        )


SIZES: dict[str, Size] = {
    "S": Size(10_000, 3, 100, 5),
    "M": Size(100_000, 5, 1_000, 10),
    "L": Size(1_000_000, 3, 1_000, 10),
}
DEFAULT_CROWDKIT_PAIRS = "mv:S,mv:M,wawa:S,wawa:M,zbs:S,ds:S,ds:M,onecoin:S,onecoin:M,glad:S,mace:S"
"""crowd-kit runs by default: its EM methods on M cost minutes, its GLAD and MACE on M hours."""
SPEED_METHODS_SKIP = {"auto"}
"""``auto`` costs what the method it picks costs."""
CLEANLAB_SIZE = "M"
TARGETS = (
    ("ds", "M", 20.0),
    ("glad", "S", 30.0),
    ("mace", "S", 30.0),
)
"""(method, size, minimum speed-up over crowd-kit)."""
L_TARGET = ("ds", "L", 10.0, 2048.0)
"""crowdloop's DS on L: under 10 s and 2 GB peak."""


def method_params(n_iter: int, tol: float) -> dict[str, dict[str, Any]]:
    """The parameters each method gets (on both sides; each class takes what it accepts)."""
    em = {"n_iter": n_iter, "tol": tol}
    return {
        "ds": em,
        "onecoin": em,
        "ccds": em,
        "glad": em,
        "taxonomy": em,
        "zbs": {"n_iter": n_iter, "eps": tol, "tol": tol},
        "mace": {"n_restarts": 10, "n_iter": 50},  # crowd-kit's defaults, for both
    }


def our_methods() -> tuple[list[str], dict[str, str]]:
    from crowdloop.aggregation.registry import METHODS, method_class

    names, notes = [], {}
    for name in METHODS:
        if name in SPEED_METHODS_SKIP:
            continue
        try:
            method_class(name)
        except Exception as exc:
            notes[name] = f"not importable yet ({type(exc).__name__}: {exc})"
            continue
        names.append(name)
    return names, notes


def parse_pairs(text: str, methods: list[str], sizes: list[str]) -> set[tuple[str, str]]:
    if text == "none":
        return set()
    if text == "all":
        return {(m, s) for m in CROWDKIT_CLASSES for s in sizes if m in methods}
    pairs = {tuple(p.split(":", 1)) for p in text.split(",") if p}
    return {(m, s) for m, s in pairs if m in methods and s in sizes and m in CROWDKIT_CLASSES}


def measure(
    python: str, impl: str, method: str, params: dict[str, Any], path: Path, repeats: int, budget: float, timeout: float
) -> dict[str, Any]:
    """Run ``repeats`` fresh children (fewer once ``budget`` seconds of fitting are spent)."""
    runs: list[ChildResult] = []
    spent = 0.0
    for _ in range(repeats):
        spec = {"task": "fit", "impl": impl, "methods": [method], "params": {method: params}, "data": _npz(path)}
        result = run_child(python, spec, timeout=timeout)
        runs.append(result)
        info = result.payload.get("methods", {}).get(method, {}) if result.ok else {}
        if not result.ok or "error" in info:
            break
        spent += info["fit_s"]
        if spent >= budget:
            break
    infos = [r.payload["methods"][method] for r in runs if r.ok and "fit_s" in r.payload["methods"][method]]
    error = next((r.error or r.payload.get("methods", {}).get(method, {}).get("error") for r in runs), None)
    if not infos:
        first = runs[0]
        error = first.error or first.payload.get("methods", {}).get(method, {}).get("error", "failed")
        return {"error": error, "times_s": []}
    return {
        "times_s": [i["fit_s"] for i in infos],
        "median_s": median([i["fit_s"] for i in infos]),
        "cpu_times_s": [i.get("cpu_s", float("nan")) for i in infos],
        "median_cpu_s": median([i.get("cpu_s", float("nan")) for i in infos]),
        "peak_rss_mb": max(r.peak_rss_mb for r in runs if r.ok),
        "baseline_rss_mb": median([r.payload.get("baseline_rss_mb", float("nan")) for r in runs if r.ok]),
        "iterations": infos[0].get("iterations"),
        "accuracy": infos[0].get("accuracy"),
        "params": infos[0].get("params"),
        "error": error if error else None,
    }


def _npz(path: Path) -> dict[str, str]:
    return {"kind": "npz", "path": str(path)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from crowdloop.simulation.crowds import synthetic_crowd

    methods, notes = our_methods()
    if args.methods:
        methods = [m for m in methods if m in args.methods]
    sizes = [s for s in SIZES if s in args.sizes]
    ck_pairs = parse_pairs(args.crowdkit_pairs, methods, sizes) if args.crowdkit_python else set()
    params = method_params(args.n_iter, args.tol)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crowdloop-bench-") as folder:
        for size in sizes:
            shape = SIZES[size]
            start = time.perf_counter()
            frame, truth = synthetic_crowd(
                shape.n_items, shape.answers_per_item, shape.n_workers, shape.n_labels, random_state=args.seed
            )
            path = Path(folder) / f"{size}.npz"
            save_crowd(path, frame, truth)
            del frame, truth
            _log(f"{size}: crowd generated in {time.perf_counter() - start:.1f} s")
            for method in methods:
                if f"{method}:{size}" in args.skip:
                    continue
                row: dict[str, Any] = {"method": method, "size": size}
                row["crowdloop"] = measure(
                    sys.executable,
                    "crowdloop",
                    method,
                    params.get(method, {}),
                    path,
                    args.repeats,
                    float("inf"),
                    args.timeout,
                )
                _log(f"{size} {method}: crowdloop {_brief(row['crowdloop'])}")
                if (method, size) in ck_pairs:
                    row["crowdkit"] = measure(
                        args.crowdkit_python,
                        "crowdkit",
                        method,
                        params.get(method, {}),
                        path,
                        args.crowdkit_repeats,
                        args.crowdkit_budget,
                        args.crowdkit_timeout,
                    )
                    _log(f"{size} {method}: crowd-kit {_brief(row['crowdkit'])}")
                rows.append(row)
            if args.cleanlab and args.crowdkit_python and size == CLEANLAB_SIZE:
                result = measure(
                    args.crowdkit_python, "cleanlab", "best_quality", {}, path, 1, 0.0, args.crowdkit_timeout
                )
                rows.append({"method": "cleanlab CROWDLAB", "size": size, "cleanlab": result})
                _log(f"{size} cleanlab: {_brief(result)}")
    return {
        "sizes": {s: SIZES[s].__dict__ for s in sizes},
        "seed": args.seed,
        "methods": methods,
        "notes": notes,
        "params": params,
        "repeats": args.repeats,
        "crowdkit_repeats": args.crowdkit_repeats,
        "crowdkit_budget_s": args.crowdkit_budget,
        "rows": rows,
    }


def _brief(result: dict[str, Any]) -> str:
    if not result.get("times_s"):
        return f"error: {result.get('error')}"
    return f"{result['median_s']:.2f} s, {result['peak_rss_mb']:.0f} MB, acc {result['accuracy']:.4f}"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups, accuracy agreement and the targets."""
    targets = []
    by_pair = {(r["method"], r["size"]): r for r in res["rows"]}
    for row in res["rows"]:
        ours, theirs = row.get("crowdloop", {}), row.get("crowdkit", {})
        if ours.get("times_s") and theirs.get("times_s"):
            row["speedup"] = theirs["median_s"] / ours["median_s"]
            row["cpu_speedup"] = theirs.get("median_cpu_s", float("nan")) / ours.get("median_cpu_s", float("nan"))
            row["accuracy_diff"] = ours["accuracy"] - theirs["accuracy"]
    for method, size, minimum in TARGETS:
        row = by_pair.get((method, size), {})
        value = row.get("speedup")
        targets.append(
            {
                "target": f"{method} on {size} >= {minimum:.0f}x faster than crowd-kit",
                "value": None if value is None else f"{value:.1f}x",
                "met": None if value is None else value >= minimum,
            }
        )
    method, size, seconds, megabytes = L_TARGET
    ours = by_pair.get((method, size), {}).get("crowdloop", {})
    if ours.get("times_s"):
        met = ours["median_s"] < seconds and ours["peak_rss_mb"] < megabytes
        value = f"{ours['median_s']:.1f} s, {ours['peak_rss_mb']:.0f} MB"
    else:
        met, value = None, None
    targets.append(
        {
            "target": f"our {method} on {size} under {seconds:.0f} s and {megabytes / 1024:.0f} GB",
            "value": value,
            "met": met,
        }
    )
    return {"targets": targets}


def render(res: dict[str, Any], summary: dict[str, Any], command: str, versions: dict[str, str]) -> str:
    out = [
        "# Truth-inference speed and memory on synthetic crowds",
        "",
        f"Command: `{command}`",
        "",
        *machine_lines(versions),
        f"- crowds: `synthetic_crowd(..., random_state={res['seed']})`: "
        + "; ".join(f"{s} = {Size(**v).describe()}" for s, v in res["sizes"].items()),
        f"- each fit in a fresh child process; time = median `fit_predict` wall time over {res['repeats']} runs for "
        f"crowdloop, up to {res['crowdkit_repeats']} for crowd-kit (stopping once {res['crowdkit_budget_s']:.0f} s "
        "were spent); CPU s = median CPU time of the fitting process over the same runs (less sensitive than wall "
        "time to the other jobs on a shared machine; the targets are judged on wall time); peak = the child's peak RSS "
        "(interpreter, libraries and the crowd frame included)",
        "- parameters (each library takes what its class accepts): "
        + "; ".join(f"{m} {p}" for m, p in res["params"].items() if m in res["methods"]),
        "",
    ]
    headers = [
        "method",
        "size",
        "crowdloop s",
        "crowd-kit s",
        "speed-up",
        "CPU s ours / ck",
        "CPU speed-up",
        "crowdloop peak MB",
        "crowd-kit peak MB",
        "iterations (ours / ck)",
        "accuracy ours",
        "accuracy ck",
    ]
    rows = []
    for row in res["rows"]:
        if "cleanlab" in row:
            other = row["cleanlab"]
            rows.append(
                [
                    row["method"],
                    row["size"],
                    "",
                    _time(other),
                    "",
                    "",
                    "",
                    "",
                    _peak(other),
                    "",
                    "",
                    fmt(other.get("accuracy"), 4),
                ]
            )
            continue
        ours, theirs = row.get("crowdloop", {}), row.get("crowdkit", {})
        speedup = row.get("speedup")
        rows.append(
            [
                row["method"],
                row["size"],
                _time(ours),
                _time(theirs) if theirs else "not run",
                f"**{speedup:.1f}x**" if speedup else "",
                f"{_cpu(ours)} / {_cpu(theirs)}" if theirs else _cpu(ours),
                _ratio(row.get("cpu_speedup")),
                _peak(ours),
                _peak(theirs),
                f"{_iters(ours)} / {_iters(theirs)}" if theirs else _iters(ours),
                fmt(ours.get("accuracy"), 4),
                fmt(theirs.get("accuracy"), 4) if theirs else "",
            ]
        )
    out.append(markdown_table(headers, rows, right=[False, False, *[True] * 10]))
    out += ["", "## Targets", ""]
    for target in summary["targets"]:
        verdict = {True: "**met**", False: "**missed**", None: "not measured"}[target["met"]]
        out.append(f"- {target['target']}: {target['value'] or '-'} {verdict}")
    if res["notes"]:
        out += ["", "## Not run", ""] + [f"- `{m}`: {note}" for m, note in res["notes"].items()]
    errors = [
        f"- {side} `{row['method']}` on {row['size']}: {row[side]['error']}"
        for row in res["rows"]
        for side in ("crowdloop", "crowdkit", "cleanlab")
        if row.get(side, {}).get("error")
    ]
    if errors:
        out += ["", "## Errors", "", *errors]
    return "\n".join(out)


def _time(result: dict[str, Any]) -> str:
    if not result:
        return ""
    if not result.get("times_s"):
        return "-"
    n = len(result["times_s"])
    return f"{result['median_s']:.2f}" + (f" (n={n})" if n != 3 else "")


def _ratio(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:.1f}x"


def _cpu(result: dict[str, Any]) -> str:
    value = result.get("median_cpu_s") if result else None
    return "-" if value is None or value != value else f"{value:.2f}"


def _peak(result: dict[str, Any]) -> str:
    return f"{result['peak_rss_mb']:.0f}" if result.get("times_s") else ""


def _iters(result: dict[str, Any]) -> str:
    value = result.get("iterations") if result else None
    return "-" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--crowdkit-python",
        default=os.environ.get("CROWDKIT_PYTHON"),
        help="python of a venv with crowd-kit 1.4.2 (default: $CROWDKIT_PYTHON; none: skip crowd-kit)",
    )
    parser.add_argument("--methods", type=lambda s: s.split(","), help="comma-separated registry names")
    parser.add_argument("--sizes", type=lambda s: s.split(","), default=list(SIZES), help="S,M,L (default all)")
    parser.add_argument(
        "--crowdkit-pairs",
        default=DEFAULT_CROWDKIT_PAIRS,
        help=f"method:size pairs crowd-kit runs, or 'all' or 'none' (default {DEFAULT_CROWDKIT_PAIRS})",
    )
    parser.add_argument(
        "--skip", type=lambda s: s.split(","), default=[], help="method:size pairs not to run at all, e.g. glad:L"
    )
    parser.add_argument("--repeats", type=int, default=3, help="crowdloop runs per pair (default 3)")
    parser.add_argument("--crowdkit-repeats", type=int, default=3, help="at most this many crowd-kit runs (default 3)")
    parser.add_argument(
        "--crowdkit-budget",
        type=float,
        default=60.0,
        help="stop repeating a crowd-kit pair once its runs took this many seconds (default 60)",
    )
    parser.add_argument("--n-iter", type=int, default=100, help="EM iteration cap for both libraries (default 100)")
    parser.add_argument("--tol", type=float, default=1e-5, help="EM tolerance for both libraries (default 1e-5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per crowdloop run (default 600)")
    parser.add_argument("--crowdkit-timeout", type=float, default=3600.0, help="seconds per crowd-kit run")
    parser.add_argument("--cleanlab", action="store_true", help=f"also cleanlab's CROWDLAB on {CLEANLAB_SIZE}")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results")
    args = parser.parse_args()
    versions = crowdkit_versions(args.crowdkit_python)
    if args.crowdkit_python and not versions.get("crowdkit"):
        _log("warning: crowd-kit does not import with --crowdkit-python; its columns are skipped")
        args.crowdkit_python = None
    if args.cleanlab and not versions.get("cleanlab"):
        _log("note: cleanlab is not installed in the crowd-kit venv; skipped")
        args.cleanlab = False
    res = run(args)
    summary = summarise(res)
    command = command_line("bench_speed.py")
    markdown = render(res, summary, command, versions)
    print(markdown)
    if not args.no_write:
        payload = {"command": command, "machine": machine(), "crowdkit_versions": versions, **res, "summary": summary}
        write_results("speed", markdown, payload)


if __name__ == "__main__":
    main()
