"""Benchmark: a model as one more voter beside a thin crowd, crowdloop against cleanlab's CROWDLAB.

Data: ``crowdloop.simulation.crowds.synthetic_crowd`` (K = 10, one worker per 100 items) with a
model whose probabilities are **1.3x overconfident** (``synthetic_model_probs``: calibrated
probabilities raised to the power 1.3, so its true temperature is 1/1.3 = 0.77; top-1 accuracy .75).
Each item keeps the first 1, 3 or 5 of its answers (``MIXES``). Both libraries read the same file:
crowdloop (``Answers.with_soft`` and the method ``auto`` picks, as ``crowdloop aggregate
--model-probs`` does) in this process, CROWDLAB (``get_label_quality_multiannotator``, its default
``best_quality`` consensus) in a child process with cleanlab's venv (cleanlab is AGPL and no
dependency of crowdloop; ``bench/requirements-quality.txt``). Beside them: majority vote of the
humans, the model alone, and the achievable accuracy: the same crowdloop model with the
temperature pinned at its true value. Medians over seeds.

Speed and peak memory: 100,000 items x 5 answers, 1,000 workers, each library in its own child
process (peak RSS from ``wait4``), one fit each.

    python -m venv .venv-quality && .venv-quality/bin/pip install -r bench/requirements-quality.txt
    python bench/bench_crowdlab.py --cleanlab-python .venv-quality/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_LABELS = 10
OVERCONFIDENCE = 1.3
MODEL_MU = 2.23
"""Signal of the model's features: a top-1 accuracy of about .75 under the crowd's class prior."""
CLASS_SKEW = 0.5
"""``synthetic_crowd``'s default class prior, which the model's calibrated probabilities use too."""
MIXES: dict[str, dict[int, float]] = {
    "1": {1: 1.0},
    "3": {3: 1.0},
    "5": {5: 1.0},
    "1/3/5": {1: 1 / 3, 3: 1 / 3, 5: 1 / 3},
    "80% 1, 20% 3": {1: 0.8, 3: 0.2},
}
"""Answers per item: share of items with each count."""
TARGET_SPEEDUP = 20.0
TARGET_GAP = 0.02
"""crowdloop within this of the achievable accuracy with one answer per item."""


def make_crowd(n_items: int, mix: dict[int, float], seed: int) -> dict[str, np.ndarray]:
    """A crowd of ``n_items`` with answers per item drawn from ``mix``, the truth and the model's
    (overconfident) probabilities, as plain arrays."""
    from crowdloop.simulation.crowds import synthetic_crowd, synthetic_model_probs

    rng = np.random.default_rng(seed + 1000)
    frame, truth = synthetic_crowd(
        n_items, max(mix), max(n_items // 100, max(mix)), N_LABELS, class_skew=CLASS_SKEW, random_state=seed
    )
    counts = rng.choice(list(mix), size=n_items, p=np.array(list(mix.values())) / sum(mix.values()))
    rank = frame.groupby("task").cumcount().to_numpy()
    frame = frame[rank < counts[frame["task"].to_numpy()]]
    z = truth.to_numpy()
    probs = synthetic_model_probs(
        z, N_LABELS, signal=MODEL_MU, overconfidence=OVERCONFIDENCE, class_skew=CLASS_SKEW, random_state=rng
    )
    workers, worker_codes = np.unique(frame["worker"].to_numpy(), return_inverse=True)
    return {
        "task": frame["task"].to_numpy(np.int64),
        "worker": worker_codes.astype(np.int32),
        "n_workers": np.array(len(workers)),
        "label": frame["label"].to_numpy(np.int64),
        "truth": z.astype(np.int64),
        "probs": probs,
    }


def crowdloop_fit(data: dict[str, np.ndarray], temperature: float | None = None) -> dict[str, Any]:
    """What ``crowdloop aggregate --model-probs`` does: the answers plus the model as a soft worker,
    the method ``auto`` picks; accuracy, the learned temperature, the time."""
    from crowdloop.aggregation.auto import choose_method
    from crowdloop.aggregation.registry import method_class
    from crowdloop.answers import Answers

    start = time.perf_counter()
    frame = pd.DataFrame({"task": data["task"], "worker": data["worker"], "label": data["label"]})
    answers = Answers.from_frame(frame, labels=None)
    answers = answers.with_soft(
        "model", np.arange(len(data["truth"])), pd.DataFrame(data["probs"]), temperature=temperature
    )
    method, _ = choose_method(answers)
    model = method_class(method)().fit(answers)
    seconds = time.perf_counter() - start
    predicted = model.labels_.reindex(np.arange(len(data["truth"]))).to_numpy()
    return {
        "method": method,
        "accuracy": float((predicted == data["truth"]).mean()),
        "temperature": float(model.temperatures_.get("model", np.nan)),
        "seconds": seconds,
    }


def majority_vote(data: dict[str, np.ndarray]) -> float:
    """Majority vote of the human answers (ties: the lowest label, as crowd-kit's)."""
    votes = np.zeros((len(data["truth"]), N_LABELS))
    np.add.at(votes, (data["task"], data["label"]), 1.0)
    return float((votes.argmax(axis=1) == data["truth"]).mean())


def cleanlab_fit(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """In cleanlab's venv: CROWDLAB's consensus labels (``best_quality``) and their accuracy."""
    import cleanlab
    from cleanlab.multiannotator import get_label_quality_multiannotator

    start = time.perf_counter()
    matrix = np.full((len(data["truth"]), int(data["n_workers"])), np.nan)
    matrix[data["task"], data["worker"]] = data["label"]
    result = get_label_quality_multiannotator(pd.DataFrame(matrix), data["probs"], verbose=False)
    consensus = result["label_quality"]["consensus_label"].to_numpy()
    return {
        "version": cleanlab.__version__,
        "accuracy": float((consensus == data["truth"]).mean()),
        "seconds": time.perf_counter() - start,
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one library on a saved crowd (``spec``: ``impl``, ``path``); errors are reported, not raised."""
    with np.load(spec["path"]) as arrays:
        data = {name: arrays[name] for name in arrays.files}
    try:
        return (cleanlab_fit if spec["impl"] == "cleanlab" else crowdloop_fit)(data)
    except Exception as exc:  # e.g. CROWDLAB refuses crowds where every item has one answer
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _harness import run_child

    script = Path(__file__).resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.mixes:
            per_seed = []
            for seed in range(args.seeds):
                data = make_crowd(args.items, MIXES[name], seed)
                path = Path(tmp) / f"crowd-{seed}.npz"
                np.savez(path, **data)
                ours = crowdloop_fit(data)
                achievable = crowdloop_fit(data, temperature=1 / OVERCONFIDENCE)
                other = (
                    run_child(args.cleanlab_python, {"impl": "cleanlab", "path": str(path)}, args.timeout, script)
                    if args.cleanlab_python
                    else None
                )
                per_seed.append(
                    {
                        "crowdloop": ours,
                        "achievable": achievable["accuracy"],
                        "majority_vote": majority_vote(data),
                        "model": float((data["probs"].argmax(axis=1) == data["truth"]).mean()),
                        "cleanlab": None if other is None else other.payload or {"error": other.error},
                        "answers_per_item": len(data["task"]) / len(data["truth"]),
                    }
                )
                _log(f"{name} seed {seed}: {json.dumps(per_seed[-1], default=str)}")
            rows.append({"mix": name, "seeds": per_seed})
        speed = {}
        if not args.no_speed:
            data = make_crowd(args.speed_items, {5: 1.0}, 0)
            path = Path(tmp) / "speed.npz"
            np.savez(path, **data)
            del data
            for impl, python in (("crowdloop", sys.executable), ("cleanlab", args.cleanlab_python)):
                if python:
                    result = run_child(python, {"impl": impl, "path": str(path)}, args.timeout, script)
                    speed[impl] = {**result.payload, "peak_rss_mb": result.peak_rss_mb, "wall_s": result.wall_s}
                    _log(f"speed {impl}: {speed[impl]}")
    return {"items": args.items, "seeds": args.seeds, "speed_items": args.speed_items, "rows": rows, "speed": speed}


def _median(seeds: list[dict[str, Any]], pick) -> float:
    values = [v for v in (pick(s) for s in seeds) if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def _cleanlab_accuracy(seed: dict[str, Any]) -> float | None:
    other = seed["cleanlab"]
    return None if not other or "error" in other else other["accuracy"]


def _refusal(errors: set[str]) -> str:
    """CROWDLAB's reason for not running, in a few words."""
    if any("only has one label" in e for e in errors):
        return "- (refuses: every item has one answer)"
    return "- (" + "; ".join(errors)[:60] + ")" if errors else "-"


def render(result: dict[str, Any], command: str, versions: dict[str, str]) -> str:
    from _harness import fmt, machine_lines, markdown_table

    rows, verdicts = [], []
    for row in result["rows"]:
        seeds = row["seeds"]
        ours = _median(seeds, lambda s: s["crowdloop"]["accuracy"])
        theirs = _median(seeds, _cleanlab_accuracy)
        achievable = _median(seeds, lambda s: s["achievable"])
        errors = {s["cleanlab"]["error"] for s in seeds if s["cleanlab"] and "error" in s["cleanlab"]}
        methods = sorted({s["crowdloop"]["method"] for s in seeds})
        met = []
        if theirs == theirs:
            met.append("yes" if ours >= theirs else f"**no** ({fmt(ours - theirs)} vs CROWDLAB)")
        if row["mix"] == "1":
            gap = achievable - ours
            met.append("yes" if gap <= TARGET_GAP else f"**no** ({gap:.3f} below achievable)")
        verdicts.extend(m for m in met if m != "yes")
        rows.append(
            [
                row["mix"],
                f"{_median(seeds, lambda s: s['answers_per_item']):.2f}",
                fmt(ours),
                fmt(theirs) if theirs == theirs else _refusal(errors),
                fmt(achievable),
                fmt(_median(seeds, lambda s: s["majority_vote"])),
                fmt(_median(seeds, lambda s: s["model"])),
                f"{_median(seeds, lambda s: s['crowdloop']['temperature']):.2f}",
                ", ".join(methods),
                ", ".join(met) or "-",
            ]
        )
    lines = [
        "# A model as a voter beside a thin crowd: crowdloop and cleanlab's CROWDLAB",
        "",
        f"Command: `{command}`",
        "",
        f"Synthetic crowds (K = {N_LABELS}, {result['items']:,} items, one worker per 100 items), a model "
        f"{OVERCONFIDENCE}x overconfident (true temperature {1 / OVERCONFIDENCE:.2f}, top-1 about .75); "
        f"medians over {result['seeds']} seeds. Achievable: crowdloop's model with the temperature pinned "
        "at its true value. Targets: at least CROWDLAB's accuracy at every mix, within "
        f"{TARGET_GAP:.2f} of achievable with one answer per item.",
        "",
        markdown_table(
            [
                "answers per item",
                "mean",
                "crowdloop",
                "CROWDLAB",
                "achievable",
                "majority vote",
                "model alone",
                "learned temperature",
                "method",
                "target met",
            ],
            rows,
        ),
        "",
    ]
    speed = result["speed"]
    if speed:
        ours, theirs = speed.get("crowdloop", {}), speed.get("cleanlab", {})
        ratio = theirs.get("seconds", np.nan) / ours.get("seconds", np.nan) if ours and theirs else float("nan")
        speed_rows = [
            [
                name,
                fmt(side.get("accuracy")),
                f"{side.get('seconds', float('nan')):.1f}",
                f"{side.get('peak_rss_mb', float('nan')):,.0f}",
                side.get("error", ""),
            ]
            for name, side in (("crowdloop", ours), ("CROWDLAB", theirs))
            if side
        ]
        lines += [
            f"## Speed: {result['speed_items']:,} items x 5 answers, 1 fit in a fresh process each",
            "",
            markdown_table(["library", "accuracy", "fit seconds", "peak RSS MB", "error"], speed_rows),
            "",
            f"Speed-up: {ratio:.1f}x (target {TARGET_SPEEDUP:.0f}x: "
            + ("met" if ratio >= TARGET_SPEEDUP else "**missed**" if ratio == ratio else "not measured")
            + ").",
            "",
        ]
        if ratio == ratio and ratio < TARGET_SPEEDUP:
            verdicts.append("speed")
    lines += ["Targets missed: " + ("none" if not verdicts else ", ".join(verdicts)), "", *machine_lines({})]
    if versions:
        lines.append("- cleanlab side: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + " (its own venv)")
    return "\n".join(lines)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    from _harness import command_line, run_child, write_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanlab-python", help="python of a venv with bench/requirements-quality.txt")
    parser.add_argument("--items", type=int, default=20_000, help="items per crowd for the accuracy table")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mixes", type=lambda s: s.split(","), default=list(MIXES), help=",".join(MIXES))
    parser.add_argument("--speed-items", type=int, default=100_000)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="wall seconds per child process")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    versions = {}
    if args.cleanlab_python:
        probe = run_child(args.cleanlab_python, {"impl": "versions"}, 120, Path(__file__).resolve())
        versions = probe.payload
    result = run(args)
    result["cleanlab_versions"] = versions
    command = command_line("bench_crowdlab.py", redact=("--cleanlab-python",)).replace("CROWDKIT", "CLEANLAB")
    markdown = render(result, command, versions)
    print(markdown)
    if not args.no_write:
        write_results("crowdlab", markdown, result)


def _versions() -> dict[str, str]:
    import platform

    out = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}
    try:
        import cleanlab

        out["cleanlab"] = cleanlab.__version__
    except ImportError:
        pass
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        spec = json.loads(sys.argv[2])
        print(json.dumps(_versions() if spec["impl"] == "versions" else child(spec)), flush=True)
    else:
        main()
