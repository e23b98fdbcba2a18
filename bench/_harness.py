"""Shared helpers of the benchmarks: child processes (timing, peak memory, timeouts), medians,
Markdown tables and the result files.

Every measured fit runs in a fresh child process, ``python bench/_harness.py child SPEC``, so its
peak memory is its own (``ru_maxrss`` of the child, read with ``os.wait4``) and a slow method can
be stopped. The child needs only numpy and pandas at import time: it imports crowdloop, crowd-kit
or cleanlab lazily, so the same file runs in crowdloop's environment and in crowd-kit's.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

CROWDKIT_CLASSES: dict[str, str] = {
    "mv": "MajorityVote",
    "wawa": "Wawa",
    "zbs": "ZeroBasedSkill",
    "ds": "DawidSkene",
    "onecoin": "OneCoinDawidSkene",
    "glad": "GLAD",
    "mace": "MACE",
}
"""crowdloop registry name -> crowd-kit 1.4.2 class (crowd-kit has no class-conditional DS,
taxonomy model or ``auto``)."""

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ds@ck-stop": ("ds", {"stopping": "crowdkit", "prior_strength": 0}),
    "ds@no-prior": ("ds", {"prior_strength": 0}),
    "ds@uniform-errors": ("ds", {"prior_errors": "uniform"}),
    "onecoin@learn-prior": ("onecoin", {"class_prior": "learn"}),
    "glad@ck-stop": ("glad", {"stopping": "crowdkit"}),
    "mace@1-start": ("mace", {"n_restarts": 1}),
    "mace@uniform": ("mace", {"class_prior": "uniform"}),
}
"""crowdloop methods run with other than default parameters: name -> (registry name, parameters)."""

CONSISTENT_IDS = "@ids"
"""Suffix of a crowd-kit method run on the same rows with worker and label ids renamed so that their
sorted order is their order of first appearance (see ``crowdkit_fit``)."""


# ---------------------------------------------------------------------------------------------
# the parent side


@dataclass
class ChildResult:
    """What one child process reported, with its peak memory and wall time seen from outside."""

    payload: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    timed_out: bool = False
    wall_s: float = 0.0
    peak_rss_mb: float = float("nan")
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and "error" not in self.payload

    @property
    def error(self) -> str:
        if self.timed_out:
            return f"timeout after {self.wall_s:.0f} s"
        if "error" in self.payload:
            return str(self.payload["error"])
        if self.returncode:
            tail = self.stderr.strip().splitlines()[-1:] or [f"exit status {self.returncode}"]
            return tail[0][:200]
        return ""


def run_child(
    python: str, spec: dict[str, Any], timeout: float | None = None, script: Path | None = None
) -> ChildResult:
    """Run ``python bench/_harness.py child SPEC`` (or another bench ``script`` with the same
    convention) and collect its JSON report, its exit status and its peak resident memory
    (``ru_maxrss`` from ``os.wait4``); kill it after ``timeout`` seconds."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [python, str(script or Path(__file__).resolve()), "child", json.dumps(spec)], stdout=out, stderr=err
        )
        result = ChildResult()
        status, usage = _wait(process.pid, timeout, start)
        if status is None:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            result.timed_out = True
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting
        result.returncode = process.returncode
        result.wall_s = time.perf_counter() - start
        result.peak_rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        result.stderr = err.read()
        if lines and not result.timed_out:
            result.payload = json.loads(lines[-1])
        return result


def _wait(pid: int, timeout: float | None, start: float) -> tuple[int | None, Any]:
    delay = 0.01
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        if timeout is not None and time.perf_counter() - start > timeout:
            return None, None
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table, '-' when missing; accuracies as '.940'."""
    if value is None or value != value:
        return "-"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    right = right if right is not None else [i > 0 for i in range(len(headers))]
    rule = ["---:" if r else "---" for r in right]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(script: str, redact: Sequence[str] = ("--crowdkit-python",)) -> str:
    """The command as it was run, with machine paths behind the redacted options replaced."""
    args, hidden = [], False
    for arg in sys.argv[1:]:
        if hidden:
            args.append("$CROWDKIT_PYTHON")
            hidden = False
        elif arg in redact:
            args.append(arg)
            hidden = True
        elif any(arg.startswith(option + "=") for option in redact):
            args.append(arg.split("=", 1)[0] + "=$CROWDKIT_PYTHON")
        else:
            args.append(arg)
    prefix = "CROWDKIT_PYTHON=... " if os.environ.get("CROWDKIT_PYTHON") else ""
    return prefix + " ".join(["python", f"bench/{script}", *args])


def machine() -> dict[str, Any]:
    """The machine and the library versions, for the result files."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024**2:.0f} GB"
    import scipy

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
    }


def crowdkit_versions(python: str | None) -> dict[str, str]:
    """Versions in the crowd-kit environment (empty when it is not given or broken)."""
    if not python:
        return {}
    result = run_child(python, {"task": "versions"}, timeout=120)
    return result.payload if result.ok else {}


def write_results(name: str, markdown: str, payload: dict[str, Any]) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
    md.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    js.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n", encoding="utf-8")
    return md, js


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.name
    return str(value)


def machine_lines(python_versions: dict[str, str]) -> list[str]:
    info = machine()
    lines = [
        f"- machine: {info['cpu'] or 'unknown CPU'}, {info['cores']} cores, {info['memory']} RAM, {info['os']}; "
        "shared with other jobs and noisy, so read medians and ratios, not single times",
        f"- crowdloop side: Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"pandas {info['pandas']}",
    ]
    if python_versions:
        lines.append(
            "- crowd-kit side: "
            + ", ".join(f"{k} {v}" for k, v in python_versions.items())
            + " (a separate venv, bench/requirements-crowdkit.txt)"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# the child side: load data, fit one or more methods, print one JSON line


def constructor_params(cls: type, wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``wanted`` that ``cls.__init__`` accepts (so one setting serves both libraries)."""
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in wanted.items() if k in accepted}


def crowdloop_fit(method: str, frame: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.Series, dict[str, Any]]:
    """Fit crowdloop's ``method`` on a crowd-kit frame; returns the labels and facts about the fit.

    ``auto`` goes through the registry when the registry has it, else through
    ``crowdloop.aggregation.auto.choose_method`` (the model it picks, with default parameters).
    """
    from crowdloop.aggregation.registry import METHODS, method_class

    info: dict[str, Any] = {}
    if method == "auto" and "auto" not in METHODS:
        from crowdloop.aggregation.auto import choose_method
        from crowdloop.answers import Answers

        start, cpu = time.perf_counter(), time.process_time()
        answers = Answers.from_frame(frame)
        chosen, reason = choose_method(answers)
        cls = method_class(chosen)
        model = cls(**constructor_params(cls, params))
        labels = model.fit_predict(answers)
        info.update(chosen=chosen, reason=reason, fit_s=time.perf_counter() - start)
    else:
        method, preset = VARIANTS.get(method, (method, {}))
        cls = method_class(method)
        model = cls(**constructor_params(cls, {**params, **preset}))
        start, cpu = time.perf_counter(), time.process_time()
        labels = model.fit_predict(frame)
        info["fit_s"] = time.perf_counter() - start
    info["cpu_s"] = time.process_time() - cpu
    info["params"] = constructor_params(cls, params)
    info["iterations"] = _iterations(model)
    return labels, info


def crowdkit_fit(method: str, frame: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.Series, dict[str, Any]]:
    """Fit crowd-kit's class for ``method`` (see ``CROWDKIT_CLASSES``)."""
    import crowdkit.aggregation as aggregation

    method, consistent, _ = method.partition(CONSISTENT_IDS)
    if method not in CROWDKIT_CLASSES:
        raise KeyError(f"crowd-kit has no {method!r}")
    cls = getattr(aggregation, CROWDKIT_CLASSES[method])
    used = constructor_params(cls, params)
    model = cls(**used)
    if consistent:
        # crowd-kit 1.4.2's MACE codes workers and labels in order of first appearance but sums its
        # expected strategy counts with a groupby, in sorted order, and mixes the two up; renaming
        # the ids so that both orders agree gives the model as written (rows and answers unchanged)
        frame, names = _first_appearance_ids(frame)
    start, cpu = time.perf_counter(), time.process_time()
    labels = model.fit_predict(frame)
    if consistent:
        labels = labels.map(names)
    info = {"fit_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}
    return labels, {**info, "params": used, "iterations": _iterations(model)}


def _first_appearance_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The frame with workers and labels renamed ``w000001``, ``l01``, ... in order of first
    appearance, and the map from new label names back to the labels."""
    workers, _ = pd.factorize(frame["worker"])
    labels, label_names = pd.factorize(frame["label"])
    width = len(str(len(label_names)))
    renamed = frame.assign(worker=[f"w{code:07d}" for code in workers], label=[f"l{code:0{width}d}" for code in labels])
    names = pd.Series(list(label_names), index=[f"l{code:0{width}d}" for code in range(len(label_names))])
    return renamed, names


def tied_share(frame: pd.DataFrame, truth: pd.Series) -> float:
    """Share of the truth items whose majority vote is a tie (two labels with the top count)."""
    votes = frame.groupby(["task", "label"]).size().unstack(fill_value=0)
    votes = votes.reindex(truth.index[truth.index.isin(votes.index)])
    ordered = np.sort(votes.to_numpy(), axis=1)
    return float((ordered[:, -1] == ordered[:, -2]).mean()) if ordered.shape[1] > 1 and len(ordered) else 0.0


def cleanlab_fit(method: str, frame: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.Series, dict[str, Any]]:
    """cleanlab's multi-annotator consensus (CROWDLAB). It wants a classifier's ``pred_probs``;
    without a model we give it the smoothed vote shares, so it is consensus from the crowd alone."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    start = time.perf_counter()
    items, item_codes = np.unique(frame["task"].to_numpy(), return_inverse=True)
    workers, worker_codes = np.unique(frame["worker"].to_numpy(), return_inverse=True)
    classes, label_codes = np.unique(frame["label"].to_numpy(), return_inverse=True)
    matrix = np.full((len(items), len(workers)), np.nan)
    matrix[item_codes, worker_codes] = label_codes
    votes = np.zeros((len(items), len(classes)))
    np.add.at(votes, (item_codes, label_codes), 1.0)
    pred_probs = (votes + 0.5) / (votes + 0.5).sum(axis=1, keepdims=True)
    result = get_label_quality_multiannotator(
        pd.DataFrame(matrix), pred_probs, consensus_method=method.split(":", 1)[-1], verbose=False
    )
    consensus = result["label_quality"]["consensus_label"].to_numpy()
    labels = pd.Series(classes[consensus], index=pd.Index(items, name="task"))
    return labels, {"fit_s": time.perf_counter() - start, "params": {}, "iterations": None}


FITTERS: dict[str, Callable[[str, pd.DataFrame, dict[str, Any]], tuple[pd.Series, dict[str, Any]]]] = {
    "crowdloop": crowdloop_fit,
    "crowdkit": crowdkit_fit,
    "cleanlab": cleanlab_fit,
}


def _iterations(model: Any) -> int | None:
    for name in ("n_iter_", "n_iterations_"):
        value = getattr(model, name, None)
        if isinstance(value, (int, np.integer)):
            return int(value)
    history = getattr(model, "loss_history_", None)
    return len(history) if history is not None and len(history) else None


def accuracy(labels: pd.Series, truth: pd.Series, tasks: pd.Index | np.ndarray) -> float:
    """Share of the truth items present in the answers whose predicted label is the true one
    (an item without a prediction counts as wrong)."""
    truth = truth[truth.index.isin(pd.Index(tasks))]
    predicted = labels.reindex(truth.index)
    return float((predicted.to_numpy() == truth.to_numpy()).mean()) if len(truth) else float("nan")


def load_spec_data(data: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
    """``{"kind": "npz", "path": ...}`` (a synthetic crowd saved by ``save_crowd``) or
    ``{"kind": "dataset", "name": ...}`` (a real dataset, duplicates dropped keeping the first)."""
    if data["kind"] == "npz":
        return load_crowd(Path(data["path"]))
    sys.path.insert(0, str(BENCH))
    import crowd_data

    frame, truth = crowd_data.load(data["name"])
    return frame.drop_duplicates(["task", "worker"], keep="first").reset_index(drop=True), truth


def save_crowd(path: Path, frame: pd.DataFrame, truth: pd.Series) -> None:
    """A synthetic crowd as plain arrays (both environments read it without pyarrow)."""
    worker_codes, worker_names = pd.factorize(frame["worker"])
    np.savez(
        path,
        task=frame["task"].to_numpy(np.int64),
        worker=worker_codes.astype(np.int32),
        worker_names=np.asarray(worker_names, dtype=str),
        label=frame["label"].to_numpy(np.int64),
        truth_task=truth.index.to_numpy(np.int64),
        truth=truth.to_numpy(np.int64),
    )


def load_crowd(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    with np.load(path) as arrays:
        names = pd.Index(arrays["worker_names"].astype(object))
        frame = pd.DataFrame({"task": arrays["task"], "worker": names.take(arrays["worker"]), "label": arrays["label"]})
        truth = pd.Series(arrays["truth"], index=pd.Index(arrays["truth_task"], name="task"), name="truth")
    return frame, truth


def _rss_mb(field_name: str) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(cpu_seconds: float | None) -> Iterator[None]:
    """Raise ``_Timeout`` once this process has used ``cpu_seconds`` of CPU time (``ITIMER_PROF``:
    on a shared machine CPU time, unlike wall time, does not depend on the neighbours' load).
    Best effort: a long C call finishes first."""
    if not cpu_seconds:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a spec: ``{"task": "versions"}`` or ``{"task": "fit", "impl", "methods", "params",
    "data", "timeout"}``; each method's result (or error) is reported under its name."""
    if spec["task"] == "versions":
        versions = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}
        for module in ("crowdkit", "sklearn", "cleanlab"):
            with contextlib.suppress(ImportError):
                versions[module] = getattr(__import__(module), "__version__", "?")
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions["crowdkit"] = version("crowd-kit")
        return versions
    frame, truth = load_spec_data(spec["data"])
    tasks = pd.unique(frame["task"])
    report: dict[str, Any] = {"n_answers": len(frame), "baseline_rss_mb": _rss_mb("VmRSS"), "methods": {}}
    if spec.get("ties"):
        report["tied_share"] = tied_share(frame, truth)
    fit = FITTERS[spec["impl"]]
    for method in spec["methods"]:
        try:
            with _alarm(spec.get("timeout")):
                labels, info = fit(method, frame, spec.get("params", {}).get(method, {}))
            info["accuracy"] = accuracy(labels, truth, tasks)
        except _Timeout:
            info = {"error": f"timeout after {spec['timeout']:.0f} CPU s", "timeout": True}
        except Exception as exc:  # a method still being written must not stop the others
            info = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        report["methods"][method] = info
    report["peak_rss_mb"] = _rss_mb("VmHWM")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        print(json.dumps(child(json.loads(sys.argv[2])), default=_jsonable), flush=True)
    else:
        sys.exit("usage: python bench/_harness.py child SPEC (run by the benchmarks)")
