"""Accuracy of every truth-inference method on the real crowd datasets, beside crowd-kit.

For each categorical dataset in ``crowd_data.available()`` and each method in crowdloop's registry
(plus ``auto``), the share of the truth items present in the answers that the method labels
correctly. Duplicate (task, worker) answers are dropped keeping the first, as crowd-kit users do
(and as the data README's reference numbers were measured). Beside it: crowd-kit 1.4.2 run live in
the same run (its own venv: ``--crowdkit-python`` or ``$CROWDKIT_PYTHON``; without it those columns
are skipped) and the numbers published in the data README. Every library runs with its defaults.

    python bench/bench_accuracy.py [--crowdkit-python PATH] [--methods ds,glad] [--datasets dog,face]

Prints Markdown and writes ``bench/results/accuracy.md`` and ``accuracy.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crowd_data
from _harness import (
    CROWDKIT_CLASSES,
    command_line,
    crowdkit_versions,
    fmt,
    machine,
    machine_lines,
    markdown_table,
    run_child,
    write_results,
)

TOLERANCE = 0.005
"""Target: the same method within this much of crowd-kit, wherever crowd-kit is sane."""
SANE_MARGIN = 0.10
"""crowd-kit is *not sane* on a dataset when it is this far below its own majority vote (its
one-coin DS on zheng_relevance and bluebirds); those cells are not held against crowdloop."""
PUBLISHED_COLUMNS = {"MV": "mv", "Wawa": "wawa", "DS": "ds", "1-coin DS": "onecoin", "GLAD": "glad", "MACE": "mace"}
FLAT_ONLY_SKIP = {"taxonomy"}
"""Methods skipped (with a note) when they cannot run on a flat label space; tried first."""


def our_methods() -> tuple[list[str], dict[str, str]]:
    """Registered method names (plus ``auto``) and a note for each one that cannot be imported."""
    from crowdloop.aggregation.registry import METHODS, method_class

    names, notes = [], {}
    for name in METHODS:
        try:
            method_class(name)
        except Exception as exc:  # a method still being written
            notes[name] = f"not importable yet ({type(exc).__name__}: {exc})"
            continue
        names.append(name)
    if "auto" not in METHODS:
        # HOOK: ``auto`` runs through the registry once it is registered there; until then through
        # ``crowdloop.aggregation.auto.choose_method`` (see _harness.crowdloop_fit).
        try:
            from crowdloop.aggregation.auto import choose_method  # noqa: F401

            names.append("auto")
        except ImportError as exc:
            notes["auto"] = f"no auto yet ({exc})"
    return names, notes


def published_numbers() -> dict[str, dict[str, float]]:
    """crowd-kit's reference accuracies from the data README: dataset -> method -> accuracy."""
    readme = crowd_data.DATA / "README.md"
    if not readme.is_file():
        return {}
    lines = readme.read_text(encoding="utf-8").splitlines()
    table: dict[str, dict[str, float]] = {}
    header: list[str] | None = None
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
            continue
        if cells[0] == "dataset" and "DS" in cells:
            header = cells
            continue
        if header and not re.fullmatch(r"-+:?", cells[0]):
            table[cells[0]] = {
                PUBLISHED_COLUMNS[h]: float(v)
                for h, v in zip(header[1:], cells[1:], strict=False)
                if h in PUBLISHED_COLUMNS and re.fullmatch(r"\.?\d+(\.\d+)?", v)
            }
    return table


def run(args: argparse.Namespace) -> dict[str, Any]:
    datasets = [d for d in crowd_data.available() if not args.datasets or d in args.datasets]
    methods, notes = our_methods()
    if args.methods:
        methods = [m for m in methods if m in args.methods]
    ours: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    ck_methods = [m for m in CROWDKIT_CLASSES if not args.methods or m in args.methods]
    for dataset in datasets:
        data = {"kind": "dataset", "name": dataset}
        start = time.perf_counter()
        spec = {"task": "fit", "impl": "crowdloop", "methods": methods, "data": data, "timeout": args.timeout}
        result = run_child(sys.executable, spec, timeout=_backstop(args.timeout, len(methods)))
        failed = {m: {"error": result.error} for m in methods}
        ours[dataset] = result.payload.get("methods", {}) if result.ok else failed
        line = f"{dataset}: crowdloop {time.perf_counter() - start:.0f} s"
        if args.crowdkit_python:
            start = time.perf_counter()
            spec = {"task": "fit", "impl": "crowdkit", "methods": ck_methods, "data": data, "timeout": args.timeout}
            result = run_child(args.crowdkit_python, spec, timeout=_backstop(args.timeout, len(ck_methods)))
            theirs[dataset] = (
                result.payload.get("methods", {}) if result.ok else {m: {"error": result.error} for m in ck_methods}
            )
            line += f", crowd-kit {time.perf_counter() - start:.0f} s"
        print(line, file=sys.stderr, flush=True)
    for name in FLAT_ONLY_SKIP & set(methods):
        errors = [ours[d][name].get("error") for d in datasets if "error" in ours[d].get(name, {})]
        if errors and len(errors) == len(datasets):
            notes[name] = f"cannot run flat: {errors[0]}"
            methods.remove(name)
    return {
        "datasets": datasets,
        "methods": methods,
        "crowdkit_methods": ck_methods if args.crowdkit_python else [],
        "notes": notes,
        "crowdloop": ours,
        "crowdkit": theirs,
        "published": published_numbers(),
        "timeout_s": args.timeout,
    }


def _backstop(cpu_seconds: float, n_methods: int) -> float:
    """Wall-clock limit of a child whose methods each get ``cpu_seconds`` of CPU (a loaded machine
    gives a child a fraction of a core, so wall time runs ahead of CPU time)."""
    return 4 * cpu_seconds * n_methods + 300


def _acc(results: dict[str, dict[str, Any]], dataset: str, method: str) -> float:
    value = results.get(dataset, {}).get(method, {}).get("accuracy")
    return float("nan") if value is None else float(value)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values and all(v == v for v in values) else float("nan")


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """Means over datasets, the per-cell comparison with crowd-kit and the two targets."""
    datasets, methods = res["datasets"], res["methods"]
    ours, theirs, published = res["crowdloop"], res["crowdkit"], res["published"]
    mean_ours = {m: _mean([_acc(ours, d, m) for d in datasets]) for m in methods}
    mean_ck = {m: _mean([_acc(theirs, d, m) for d in datasets]) for m in res["crowdkit_methods"]}
    mean_pub = {
        m: _mean([published.get(d, {}).get(m, float("nan")) for d in datasets]) for m in PUBLISHED_COLUMNS.values()
    }
    cells, misses = {}, []
    for d in datasets:
        ck_mv = _acc(theirs, d, "mv")
        for m in methods:
            ck = _acc(theirs, d, m)
            if ck != ck:
                continue
            diff = _acc(ours, d, m) - ck
            sane = not (ck_mv == ck_mv and ck < ck_mv - SANE_MARGIN)
            ok = abs(diff) <= TOLERANCE or not sane or diff > 0
            cells[f"{d}/{m}"] = {"diff": diff, "sane": sane, "ok": ok}
            if not ok:
                misses.append(f"{m} on {d}: {diff:+.3f}")
    default = "auto" if "auto" in methods else "ds"
    best_ck = max(((v, m) for m, v in mean_ck.items() if v == v), default=(float("nan"), None))
    best_pub = max(((v, m) for m, v in mean_pub.items() if v == v), default=(float("nan"), None))
    return {
        "mean_crowdloop": mean_ours,
        "mean_crowdkit": mean_ck,
        "mean_published": mean_pub,
        "cells": cells,
        "same_method_misses": misses,
        "default_method": default,
        "default_mean": mean_ours.get(default, float("nan")),
        "best_crowdkit": {"method": best_ck[1], "mean": best_ck[0]},
        "best_published": {"method": best_pub[1], "mean": best_pub[0]},
    }


def render(res: dict[str, Any], summary: dict[str, Any], command: str, versions: dict[str, str]) -> str:
    datasets, methods = res["datasets"], res["methods"]
    ours, theirs, published = res["crowdloop"], res["crowdkit"], res["published"]
    out = [
        "# Truth-inference accuracy on real crowd datasets",
        "",
        f"Command: `{command}`",
        "",
        *machine_lines(versions),
        "- accuracy: share of the truth items present in the answers labelled correctly; duplicate "
        "(task, worker) answers dropped keeping the first (as crowd-kit users do); every method with its "
        "library's default parameters",
        "",
        "## crowdloop",
        "",
    ]
    rows = [[d, *[_cell(ours, d, m) for m in methods]] for d in datasets]
    rows.append(["**mean**", *[f"**{fmt(summary['mean_crowdloop'][m])}**" for m in methods]])
    out.append(markdown_table(["dataset", *methods], rows))
    chosen = {d: ours[d].get("auto", {}).get("chosen") for d in datasets if "auto" in methods}
    if any(chosen.values()):
        out += ["", "auto chose: " + ", ".join(f"{d} {c}" for d, c in chosen.items() if c) + "."]
    ck_methods = res["crowdkit_methods"]
    if ck_methods:
        out += [
            "",
            "## crowd-kit 1.4.2, run live (published number from the data README in brackets)",
            "",
            f"`-`: did not finish within {res['timeout_s']:.0f} CPU seconds or failed (see the JSON).",
            "",
        ]
        rows = [
            [d, *[f"{_cell(theirs, d, m)} ({fmt(published.get(d, {}).get(m))})" for m in ck_methods]] for d in datasets
        ]
        rows.append(["**mean**", *[f"**{fmt(summary['mean_crowdkit'][m])}**" for m in ck_methods]])
        out.append(markdown_table(["dataset", *ck_methods], rows))
        shared = [m for m in methods if m in ck_methods]
        out += [
            "",
            f"## crowdloop minus crowd-kit (same method; ✓ within {TOLERANCE} or better, "
            f"✗ worse; ~ crowd-kit not sane: more than {SANE_MARGIN:.2f} below its own MV)",
            "",
        ]
        rows = []
        for d in datasets:
            row = [d]
            for m in shared:
                cell = summary["cells"].get(f"{d}/{m}")
                if cell is None:
                    row.append("-")
                else:
                    mark = "~" if not cell["sane"] else ("✓" if cell["ok"] else "✗")
                    row.append(f"{cell['diff']:+.3f} {mark}")
            rows.append(row)
        out.append(markdown_table(["dataset", *shared], rows))
    else:
        out += ["", "crowd-kit columns skipped: no --crowdkit-python (or $CROWDKIT_PYTHON) given.", ""]
        rows = [[d, *[fmt(published.get(d, {}).get(m)) for m in PUBLISHED_COLUMNS.values()]] for d in datasets]
        out += ["Published (data README):", "", markdown_table(["dataset", *PUBLISHED_COLUMNS.values()], rows)]
    out += ["", "## Targets", ""]
    if ck_methods:
        misses = summary["same_method_misses"]
        out.append(
            f"- same method within {TOLERANCE} of crowd-kit wherever crowd-kit is sane: "
            + ("**met**" if not misses else f"**missed** on {len(misses)} cells: " + "; ".join(misses))
        )
        best = summary["best_crowdkit"]
        ok = summary["default_mean"] >= best["mean"]
        out.append(
            f"- default method `{summary['default_method']}` mean {fmt(summary['default_mean'])} >= crowd-kit's best "
            f"single method mean ({best['method']}, {fmt(best['mean'])}; live, among the methods that finished on "
            "every dataset): " + ("**met**" if ok else "**missed**")
        )
    best = summary["best_published"]
    if best["method"]:
        ok = summary["default_mean"] >= best["mean"]
        out.append(
            f"- against the published numbers: default `{summary['default_method']}` {fmt(summary['default_mean'])} "
            f"vs best complete published column ({best['method']}, {fmt(best['mean'])}): "
            + ("**met**" if ok else "**missed**")
        )
    if res["notes"]:
        out += ["", "## Not run", ""] + [f"- `{m}`: {note}" for m, note in res["notes"].items()]
    errors = [
        f"- crowdloop `{m}` on {d}: {info['error']}"
        for d in datasets
        for m, info in ours.get(d, {}).items()
        if "error" in info and m in methods
    ]
    if errors:
        out += ["", "## Errors", "", *errors]
    return "\n".join(out)


def _cell(results: dict[str, dict[str, Any]], dataset: str, method: str) -> str:
    return fmt(_acc(results, dataset, method))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--crowdkit-python",
        default=os.environ.get("CROWDKIT_PYTHON"),
        help="python of a venv with crowd-kit 1.4.2 (default: $CROWDKIT_PYTHON; none: skip crowd-kit)",
    )
    parser.add_argument("--methods", type=lambda s: s.split(","), help="comma-separated registry names")
    parser.add_argument("--datasets", type=lambda s: s.split(","), help="comma-separated dataset names")
    parser.add_argument("--timeout", type=float, default=300.0, help="CPU seconds per method and dataset (default 300)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results")
    args = parser.parse_args()
    if not crowd_data.available():
        print(f"no crowd datasets under {crowd_data.CROWD}; set CROWDLOOP_DATA. Nothing to do.")
        return
    versions = crowdkit_versions(args.crowdkit_python)
    if args.crowdkit_python and not versions.get("crowdkit"):
        print("warning: crowd-kit does not import with --crowdkit-python; its columns are skipped", file=sys.stderr)
        args.crowdkit_python = None
    res = run(args)
    summary = summarise(res)
    command = command_line("bench_accuracy.py")
    markdown = render(res, summary, command, versions)
    print(markdown)
    if not args.no_write:
        payload = {"command": command, "machine": machine(), "crowdkit_versions": versions, **res, "summary": summary}
        write_results("accuracy", markdown, payload)


if __name__ == "__main__":
    main()
