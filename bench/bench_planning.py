"""Benchmark: how well a learning curve fitted on few labels forecasts the accuracy of many.

Flipkart product titles (``product_data.load_flipkart``, one row per distinct normalised title, all
leaf categories). ``crowdloop.planning.measure_learning_curve`` trains the default
``TextClassifier`` on nested random subsets and scores a fixed held-out 20% of the titles; the
power law ``fit_learning_curve`` is fitted on the points up to 1,000 and up to 2,000 labels only,
then its forecasts (90% bootstrap intervals, per-item correctness resampled) are compared with what
the larger subsets actually measure: the accuracy at the full training size, and the labels needed
for target accuracies (the measured count is interpolated log-linearly between curve points).
Medians over seeds (split, order and model seed).

    python bench/bench_planning.py
    python bench/bench_planning.py --seeds 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = (125, 250, 500, 1000, 2000, 4000)
FIT_UP_TO = (1000, 2000)
TARGETS = (0.80, 0.85)


def measured_labels_for(curve, target: float) -> float:
    """Labels where the measured curve first reaches ``target`` (log-linear interpolation; nan if never)."""
    n, acc = curve["labels"].to_numpy(float), curve["accuracy"].to_numpy(float)
    above = np.flatnonzero(acc >= target)
    if not len(above):
        return float("nan")
    j = above[0]
    if j == 0:
        return float(n[0])
    t = (target - acc[j - 1]) / (acc[j] - acc[j - 1])
    return float(np.exp(np.log(n[j - 1]) + t * (np.log(n[j]) - np.log(n[j - 1]))))


def one_seed(frame, seed: int, sizes: list[int]) -> list[dict]:
    from crowdloop.models import TextClassifier
    from crowdloop.planning import measure_learning_curve

    titles, paths = frame["title"].to_numpy(object), frame["path"].to_numpy(object)
    n_train = len(frame) - -(-len(frame) // 5)  # the held-out fold of 5 (one row per distinct title)
    start = time.perf_counter()
    curve = measure_learning_curve(
        titles, paths, sizes=[*sizes, n_train], model=TextClassifier(random_state=seed), random_state=seed
    )
    return forecasts(curve, seed, time.perf_counter() - start)


def forecasts(curve, seed: int, measure_s: float) -> list[dict]:
    """Fit on the points up to each of ``FIT_UP_TO`` and compare the forecasts with the larger points."""
    from crowdloop.planning import fit_learning_curve

    full = curve.iloc[-1]
    rows = []
    for up_to in FIT_UP_TO:
        part = curve[curve["labels"] <= up_to]
        fitted = fit_learning_curve(part["labels"], part["accuracy"], n_eval=part["n_eval"], n_boot=300)
        at_full = fitted.accuracy_at(float(full["labels"]))
        row = {
            "seed": seed, "fit_up_to": up_to, "points": len(part), "full_labels": int(full["labels"]),
            "n_eval": int(full["n_eval"]), "a": fitted.a, "b": fitted.b, "c": fitted.c,
            "noise_scale": fitted.noise_scale, "forecast_full": at_full.estimate, "forecast_full_low": at_full.low,
            "forecast_full_high": at_full.high, "measured_full": float(full["accuracy"]), "measure_s": measure_s,
            "curve": curve[["labels", "accuracy", "n_eval"]].to_dict("list"),
        }  # fmt: skip
        row["full_inside"] = bool(at_full.low <= row["measured_full"] <= at_full.high)
        for target in TARGETS:
            needed = fitted.labels_for(target)
            row[f"labels_{target}"] = needed.estimate
            row[f"labels_{target}_low"] = needed.low
            row[f"labels_{target}_high"] = needed.high
            row[f"measured_labels_{target}"] = measured_labels_for(curve, target)
        rows.append(row)
    return rows


def saved_curves(path: Path, frame) -> list[tuple[int, object]]:
    """(seed, measured curve) from a results JSON (the held-out size re-derived when it is absent)."""
    import pandas as pd

    out = {}
    for row in json.loads(path.read_text())["rows"]:
        curve = pd.DataFrame(row["curve"])
        if "n_eval" not in curve:
            curve["n_eval"] = -(-len(frame) // 5)
        out[row["seed"]] = curve
    return sorted(out.items())


def count(x: float) -> str:
    if x != x:
        return "not reached"
    return "unbounded" if x == float("inf") else f"{x:,.0f}"


def markdown(rows: list[dict]) -> str:
    from _harness import markdown_table, median

    table = []
    for up_to in FIT_UP_TO:
        runs = [r for r in rows if r["fit_up_to"] == up_to]
        med = {k: median([r[k] for r in runs]) for k in runs[0] if isinstance(runs[0][k], (int, float))}
        inside = sum(r["full_inside"] for r in runs)
        cells = [
            f"<= {up_to:,}", f"{med['full_labels']:,.0f}", f"{med['forecast_full']:.3f} "
            f"({med['forecast_full_low']:.3f}-{med['forecast_full_high']:.3f})", f"{med['measured_full']:.3f}",
            f"{med['forecast_full'] - med['measured_full']:+.3f}", f"{inside}/{len(runs)}",
        ]  # fmt: skip
        for target in TARGETS:
            cells.append(
                f"{count(med[f'labels_{target}'])} ({count(med[f'labels_{target}_low'])}-"
                f"{count(med[f'labels_{target}_high'])})"
            )
            cells.append(count(med[f"measured_labels_{target}"]))
        table.append(cells)
    headers = ["fitted on labels", "full size", "forecast acc at full (90%)", "measured acc", "error",
               "measured inside interval"]  # fmt: skip
    for target in TARGETS:
        headers += [f"labels for {target:.2f}: forecast (90%)", f"measured for {target:.2f}"]
    return markdown_table(headers, table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--refit", type=Path, help="re-fit the forecasts on the curves a results JSON measured")
    args = parser.parse_args()
    import pandas as pd
    import product_data

    from crowdloop.models import normalize_text

    if "flipkart" not in product_data.available():
        print(f"no Flipkart data under {product_data.PRODUCTS}: nothing to do (set CROWDLOOP_DATA)")
        return 0
    frame = product_data.load_flipkart()
    frame = frame[~pd.Series(normalize_text(frame["title"])).duplicated().to_numpy()].reset_index(drop=True)
    rows = []
    if args.refit is not None:
        for seed, curve in saved_curves(args.refit, frame):
            rows += forecasts(curve, seed, float("nan"))
            write(frame, rows, refit=True)
        print(markdown(rows))
        return 0
    for seed in range(args.seeds):
        rows += one_seed(frame, seed, list(SIZES))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if not args.no_write:
            write(frame, rows)
    print(markdown(rows))
    return 0


def write(frame, rows: list[dict], refit: bool = False) -> None:
    from _harness import command_line, machine_lines, markdown_table, write_results

    table = markdown(rows)
    seeds = sorted({r["seed"] for r in rows})
    command = command_line("bench_planning.py")
    curve_rows = [
        [str(n)] + [f"{r['curve']['accuracy'][i]:.3f}" for r in rows if r["fit_up_to"] == FIT_UP_TO[0]]
        for i, n in enumerate(rows[0]["curve"]["labels"])
    ]
    text = "\n".join(
        [
            "# Planning: learning-curve forecasts on Flipkart product titles",
            "",
            f"{len(frame):,} distinct Flipkart titles, {frame['path'].nunique()} leaf categories; 20% of them held out "
            f"({rows[0]['n_eval']:,} titles), the default `TextClassifier` trained on nested random subsets. The "
            "power law a - b n^-c is fitted on the measured points up to 1,000 or 2,000 labels only "
            "(`fit_learning_curve`, 300 bootstrap replicates resampling per-item correctness, 90% intervals) and "
            "its forecasts are compared with the accuracy the full training set measures and with the labels "
            "the measured curve needs to reach each target (log-linear interpolation between points). "
            f"Medians over {len(seeds)} seed(s) {seeds} (split, order, model seed).",
            *(
                [
                    "",
                    f"The forecasts were re-fitted (`--refit`) on the curves measured by `python "
                    f"bench/bench_planning.py --seeds {len(seeds)}`, which the JSON keeps.",
                ]
                if refit
                else []
            ),
            "",
            table,
            "",
            "Measured curves (accuracy on the held-out titles, one column per seed):",
            "",
            markdown_table(
                ["labels", *[f"seed {r['seed']}" for r in rows if r["fit_up_to"] == FIT_UP_TO[0]]], curve_rows
            ),
            "",
            f"Command: `{command}`",
            "",
            *machine_lines({}),
            "",
        ]
    )
    write_results("planning", text, {"command": command, "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
