"""How overconfident are raw posteriors on real crowd data, and how much does calibration on gold fix?

For every dataset with truth (``crowd_data``) and every registered aggregator that imports, the truth
items are split at random into two halves: *calibration gold* (clamped, cross-fitted, used to fit the
calibrator) and *evaluation* (never seen). On the evaluation half we report the expected calibration
error (15 uniform bins) of the raw posterior and of the calibrated one (the default ``smooth``
calibrator, and Platt / isotonic for comparison), and the accuracy and share of the items whose
confidence reaches 0.9 / 0.95 / 0.97, raw and calibrated: what "accept at target t" would deliver.
Medians over seeds. Duplicate (item, worker) answers: the first is kept.

Run from the project root:  python bench/bench_calibration.py [--seeds 5] [--datasets a,b] [--methods mv,ds]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crowd_data

from crowdloop.aggregation.calibration import (
    CalibratedAggregator,
    TopLabelCalibrator,
    answers_per_item,
    expected_calibration_error,
    selective_accuracy,
    top_label_features,
)
from crowdloop.aggregation.registry import METHODS, method_class
from crowdloop.answers import Answers

THRESHOLDS = (0.9, 0.95, 0.97)
CALIBRATORS = ("smooth", "platt", "isotonic")
RESULTS = Path(__file__).resolve().parent / "results"


def importable_methods(names: list[str]) -> tuple[list[str], dict[str, str]]:
    ok, skipped = [], {}
    for name in names:
        try:
            method_class(name)
        except Exception as exc:  # other engineers' modules may not exist yet
            skipped[name] = f"{type(exc).__name__}: {exc}"
        else:
            ok.append(name)
    return ok, skipped


def run_one(answers: Answers, truth: pd.Series, method: str, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(truth))
    half = len(truth) // 2
    gold, held = truth.iloc[order[:half]], truth.iloc[order[half:]]
    model = CalibratedAggregator(method_class(method)(), random_state=seed).fit(answers, gold)
    rows = answers.items.get_indexer(held.index)
    correct = model.labels_.iloc[rows].to_numpy() == held.to_numpy()
    raw = model.raw_confidence_.iloc[rows].to_numpy()
    calibrated = model.confidence_.iloc[rows].to_numpy()
    result: dict[str, float] = {
        "n_gold": float(len(gold)),
        "n_eval": float(len(held)),
        "accuracy": float(correct.mean()),
        "mean_raw_confidence": float(raw.mean()),
        "ece_raw": expected_calibration_error(raw, correct),
        "ece_smooth": expected_calibration_error(calibrated, correct),
    }
    features = top_label_features(model.base_.posterior_, answers_per_item(answers)).iloc[rows]
    for name in CALIBRATORS[1:]:
        other = TopLabelCalibrator(method=name).fit_frame(model.cross_fitted_, model.cross_fitted_["correct"])
        result[f"ece_{name}"] = expected_calibration_error(other.predict_frame(features), correct)
    for kind, confidence in (("raw", raw), ("cal", calibrated)):
        table = selective_accuracy(confidence, correct, THRESHOLDS)
        for t, share, claimed, accuracy in table[["threshold", "share", "confidence", "accuracy"]].itertuples(
            index=False
        ):
            result[f"{kind}_share_{t:g}"] = float(share)
            result[f"{kind}_conf_{t:g}"] = float(claimed)
            result[f"{kind}_acc_{t:g}"] = float(accuracy)
    return result


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def selective(row: dict, kind: str, t: float) -> str:
    accuracy, claimed, share = (row[f"{kind}_{key}_{t:g}"] for key in ("acc", "conf", "share"))
    return f"{fmt(accuracy)} / {fmt(claimed)} ({share:.0%})" if np.isfinite(accuracy) else f"- ({share:.0%})"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | method | gold | eval | acc | mean raw conf | ECE raw | ECE calibrated | ECE Platt "
        "| ECE isotonic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['n_gold']:.0f} | {r['n_eval']:.0f} | {fmt(r['accuracy'])} | "
            f"{fmt(r['mean_raw_confidence'])} | {fmt(r['ece_raw'])} | **{fmt(r['ece_smooth'])}** | "
            f"{fmt(r['ece_platt'])} | {fmt(r['ece_isotonic'])} |"
        )
    lines += [
        "",
        "Evaluation items whose confidence is >= t: accuracy / mean confidence claimed for them (share of "
        "items). Honest means the two agree; raw EM claims ~1.000 whatever the accuracy:",
        "",
        "| dataset | method | " + " | ".join(f">= {t} raw | >= {t} calibrated" for t in THRESHOLDS) + " |",
        "|---|---|" + "---:|---:|" * len(THRESHOLDS),
    ]
    for r in rows:
        cells = " | ".join(f"{selective(r, 'raw', t)} | {selective(r, 'cal', t)}" for t in THRESHOLDS)
        lines.append(f"| {r['dataset']} | {r['method']} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(crowd_data.CATEGORICAL))
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m != "taxonomy"))
    parser.add_argument("--out", default=str(RESULTS / "calibration"), help="path prefix of the .md and .json")
    args = parser.parse_args(argv)

    available = set(crowd_data.available())
    datasets = [d for d in args.datasets.split(",") if d in available]
    if not datasets:
        print(f"no crowd data found in {crowd_data.CROWD}: nothing to measure (set CROWDLOOP_DATA)")
        return
    methods, skipped = importable_methods(args.methods.split(","))
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)

    rows, started = [], time.perf_counter()
    for dataset in datasets:
        frame, truth = crowd_data.load(dataset)
        answers = Answers.from_frame(frame, duplicates="first")
        truth = truth[truth.index.isin(answers.items)]
        for method in methods:
            tic = time.perf_counter()
            try:
                runs = [run_one(answers, truth, method, seed) for seed in range(args.seeds)]
            except Exception as exc:  # a model under construction elsewhere must not sink the benchmark
                print(f"{dataset}/{method} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                skipped[f"{dataset}/{method}"] = f"{type(exc).__name__}: {exc}"
                continue
            row = {"dataset": dataset, "method": method, "seconds": time.perf_counter() - tic}
            with warnings.catch_warnings():  # a threshold no item reaches in any seed stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                row |= {key: float(np.nanmedian([r[key] for r in runs])) for key in runs[0]}
            rows.append(row)
            print(
                f"{dataset:20s} {method:6s} acc {row['accuracy']:.3f} ECE {row['ece_raw']:.3f} -> "
                f"{row['ece_smooth']:.3f} ({row['seconds']:.1f}s)",
                file=sys.stderr,
            )

    table = markdown(rows)
    print(table)
    command = "python bench/bench_calibration.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        "# Calibration of posteriors on real crowd data\n\n"
        f"Command: `{command.strip()}`  \n"
        f"Machine: 2 cores, {platform.python_implementation()} {platform.python_version()}; "
        f"{args.seeds} seeds, medians over seeds; total {time.perf_counter() - started:.0f} s.\n\n"
        "Truth items split at random in half per seed: calibration gold (clamped in the final fit, "
        "cross-fitted in 5 folds to fit the calibrator) and evaluation (never seen). ECE: 15 uniform bins, "
        "on the evaluation half. Calibrated = `CalibratedAggregator` with the default `smooth` calibrator "
        "(isotonic on the Platt score, blocks shrunk toward Platt); Platt and isotonic are fitted on the "
        "same cross-fitted gold for comparison. Duplicate (item, worker) answers: first kept.\n\n"
    )
    if skipped:
        header += "Skipped: " + "; ".join(f"{k} ({v.splitlines()[0][:80]})" for k, v in skipped.items()) + ".\n\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(header + table + "\n")
    payload = {"command": command.strip(), "seeds": args.seeds, "thresholds": THRESHOLDS, "skipped": skipped}
    out.with_suffix(".json").write_text(json.dumps(payload | {"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
