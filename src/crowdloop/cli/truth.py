"""Truth inference and decisions on answer files: ``aggregate``, ``decide``, ``methods``."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from crowdloop.cli.common import (
    AnswersArgument,
    Duplicates,
    GoldOption,
    LabelColumn,
    LabelsOption,
    ModelProbsOption,
    ModelTemperatureOption,
    NoHeader,
    Separator,
    TaskColumn,
    TaxonomyOption,
    WorkerColumn,
    app,
    console,
    load,
    run,
    show,
)
from crowdloop.errors import InputError


@app.command()
def aggregate(
    answers: AnswersArgument = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write task,label,confidence.")] = Path(
        "labels.csv"
    ),
    method: Annotated[str, typer.Option("--method", "-m", help="auto, or one of `crowdloop methods`.")] = "auto",
    gold: GoldOption = None,
    labels: LabelsOption = None,
    taxonomy: TaxonomyOption = None,
    skills_out: Annotated[Path | None, typer.Option("--skills-out", help="Write worker,skill,answers.")] = None,
    model_probs: ModelProbsOption = None,
    model_temperature: ModelTemperatureOption = "learn",
    task_column: TaskColumn = "task",
    worker_column: WorkerColumn = "worker",
    label_column: LabelColumn = "label",
    duplicates: Duplicates = "first",
    no_header: NoHeader = False,
    sep: Separator = None,
) -> None:
    """Infer the true label of every task, with a confidence, and each worker's skill.

    With gold the confidence is calibrated on the gold tasks (cross-fitted), so that 0.97 means 97%
    right; gold tasks keep their gold labels. A model's probabilities (--model-probs) vote beside
    the crowd, weighted by a temperature learned from gold, else from the crowd, or stated."""
    from crowdloop.aggregation.auto import choose_method
    from crowdloop.aggregation.calibration import CalibratedAggregator
    from crowdloop.aggregation.registry import method_class
    from crowdloop.io import write_table

    def job() -> None:
        data, truth = load(answers, labels=labels, taxonomy=taxonomy, gold=gold, task=task_column,
                           worker=worker_column, label=label_column, duplicates=duplicates, header=not no_header,
                           sep=sep, model_probs=model_probs, model_temperature=model_temperature)  # fmt: skip
        name = method
        if method == "auto":
            name, reason = choose_method(data, truth)
            console.print(f"method [bold]{name}[/] ({reason})")
        model = method_class(name)()
        calibrated = truth is not None and len(truth) >= 10
        if calibrated:
            model = CalibratedAggregator(model)
        started = time.perf_counter()
        with console.status(f"fitting {name} on {data.n_answers:,} answers ..."):
            try:
                model.fit(data, truth)
            except InputError as exc:
                if not calibrated or exc.source != "gold":
                    raise
                console.print(f"[yellow]not calibrated:[/] {exc}")
                model = model.aggregator.fit(data, truth)
                calibrated = False
        elapsed = time.perf_counter() - started
        fitted = getattr(model, "base_", model)  # the calibrated model's own fit
        temperatures = getattr(fitted, "temperatures_", getattr(fitted, "soft_temperatures_", None))
        result = pd.DataFrame(
            {
                "task": model.items_,
                "label": model.labels_.to_numpy(),
                "confidence": np.round(model.posterior_.confidence(), 6),
            }
        )
        write_table(result, out)
        if skills_out is not None:
            skills = model.skills_.reindex(model.workers_).to_numpy(dtype=float)
            answered = np.bincount(data.worker, minlength=data.n_workers)
            write_table(pd.DataFrame({"worker": model.workers_, "skill": np.round(skills, 6), "answers": answered}),
                        skills_out)  # fmt: skip
        rows = [
            ("answers / workers / labels", f"{data.n_answers:,} / {data.n_workers:,} / {data.n_labels:,}"),
            ("answers per task", f"{data.n_answers / max(data.n_items, 1):.2f}"),
            ("confidence", "calibrated on gold" if calibrated else "model posterior (no gold to calibrate on)"),
            *([("model temperature", _temperature_note(data, temperatures, truth))] if data.soft is not None else []),
            ("mean confidence", f"{result['confidence'].mean():.3f}"),
            *[(f"tasks with confidence >= {t}", f"{(result['confidence'] >= t).mean():.1%}") for t in (0.9, 0.97)],
            ("fit time", f"{elapsed:.2f} s"),
        ]
        show(f"{name}: {len(result):,} tasks -> {out}", rows)

    run(job)


@app.command()
def decide(
    answers: AnswersArgument = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the decisions.")] = Path("decisions.csv"),
    # the policy's defaults (ConsensusPolicy, Prices), written out so that --help shows them without
    # importing the engine; the policy checks every value against its declared bounds
    target: Annotated[float, typer.Option(help="Accept a task once P(label is right) reaches this.")] = 0.97,
    min_overlap: Annotated[int, typer.Option(help="Answers every task gets at least.")] = 1,
    max_overlap: Annotated[int, typer.Option(help="Answers after which a task goes to an expert.")] = 5,
    gold: GoldOption = None,
    model_probs: ModelProbsOption = None,
    model_temperature: ModelTemperatureOption = "learn",
    labels: LabelsOption = None,
    taxonomy: TaxonomyOption = None,
    price: Annotated[float, typer.Option(help="Price of one crowd answer.")] = 1.0,
    expert_cost: Annotated[
        float, typer.Option("--expert-cost", help="Price of an expert review, in crowd answers.")
    ] = 10.0,
    label_value: Annotated[
        float | None, typer.Option("--label-value", help="Worth of a right label, in crowd answers (optional).")
    ] = None,
    prior_accuracy: Annotated[
        float, typer.Option(help="Stated prior accuracy of an annotator (moved by the crowd's agreement).")
    ] = 0.7,
    escalate_early: Annotated[
        bool,
        typer.Option(
            "--escalate-early/--keep-asking",
            help="Escalate as soon as an expert is cheaper than the crowd's expected answers (default), or keep "
            "asking up to --max-overlap (no expert).",
        ),
    ] = True,
    policy_name: Annotated[
        str,
        typer.Option(
            "--policy",
            help="probabilistic: accept at the target confidence; model-agrees: accept when a human and the "
            "model (confidence >= --model-threshold) agree, or when 2 humans agree; otherwise ask more.",
        ),
    ] = "probabilistic",
    model_threshold: Annotated[float, typer.Option(help="Model confidence for --policy model-agrees.")] = 0.8,
    task_column: TaskColumn = "task",
    worker_column: WorkerColumn = "worker",
    label_column: LabelColumn = "label",
    duplicates: Duplicates = "first",
    no_header: NoHeader = False,
    sep: Separator = None,
) -> None:
    """Decide per task: accepted, more (with how many answers to order now) or escalated.

    Run it after every batch of answers from any crowd platform, and upload the 'more' tasks again.
    Each step takes the action of the lowest expected cost of reaching the target (a crowd answer
    at --price, an expert review at --expert-cost answers). Writes task,status,label,confidence,
    answers,next (answers to order now),expected (crowd answers still expected),expert (chance of
    ending with an expert)."""
    from crowdloop.consensus import ConsensusPolicy, Prices, consensus_engine
    from crowdloop.io import write_table

    def job() -> None:
        policy = ConsensusPolicy(
            target,
            min_overlap,
            max_overlap,
            escalate_early=escalate_early,
            label_value=None if label_value is None else label_value * price,
            prices=Prices(crowd=price, expert=expert_cost * price),
            prior_accuracy=prior_accuracy,
        )
        consensus_engine(policy_name, policy, threshold=model_threshold)  # bad options fail before any reading
        data, truth = load(answers, labels=labels, taxonomy=taxonomy, gold=gold, task=task_column,
                           worker=worker_column, label=label_column, duplicates=duplicates, header=not no_header,
                           sep=sep, model_probs=model_probs, model_temperature=model_temperature)  # fmt: skip
        if policy_name == "model-agrees" and data.soft is None:
            console.print("[yellow]--policy model-agrees without --model-probs:[/] only 2 agreeing humans accept")
        with console.status(f"weighing {data.n_answers:,} answers ..."):
            engine = consensus_engine(policy_name, policy, threshold=model_threshold).fit(data, truth)
            table = engine.decide(data)
        for column, digits in (("confidence", 6), ("expected", 3), ("expert", 4)):
            table[column] = table[column].round(digits)
        write_table(table, out)
        counts = table["status"].value_counts()
        crowd_to_come = float(table["expected"].sum()) * price
        expert_to_come = float(table["expert"].sum()) * policy.prices.expert
        rows = [
            *[(status, f"{counts.get(status, 0):,}") for status in ("accepted", "more", "escalated")],
            ("answers to order now", f"{table['next'].sum():,}"),
            ("answers so far (cost)", f"{data.n_answers:,} ({data.n_answers * price:,.2f})"),
            ("expected cost to finish", f"{crowd_to_come + expert_to_come:,.2f}"),
            ("  crowd", f"{crowd_to_come:,.2f} ({table['expected'].sum():,.1f} answers)"),
            ("  expert", f"{expert_to_come:,.2f} ({table['expert'].sum():,.1f} reviews at {policy.prices.expert:g})"),
            ("confidence", engine.model_.confidence_note()),
        ]
        fitted = getattr(engine, "model_", None)
        if data.soft is not None and fitted is not None:
            temperatures = getattr(fitted, "temperatures_", getattr(fitted, "soft_temperatures_", None))
            rows.append(("model temperature", _temperature_note(data, temperatures, truth)))
        rule = f"model-agrees at {model_threshold}" if policy_name == "model-agrees" else f"target {target}"
        show(f"{len(table):,} tasks, {rule} -> {out}", rows)

    run(job)


def _temperature_note(data, temperatures: pd.Series | None, truth: pd.Series | None) -> str:
    """How the model's temperature was set, in words."""
    code = int(data.soft.worker[0])
    spec = data.soft.temperature(code)
    if spec.value is not None:
        return f"{spec.value:g} (stated)"
    value = temperatures.get(data.workers[code]) if temperatures is not None else None
    if value is None:
        return "none (this method counts the probabilities as one vote)"
    return f"{value:.2f} (learned from {'gold' if truth is not None and len(truth) else 'the crowd'})"


@app.command()
def methods() -> None:
    """List the truth-inference methods."""
    from rich.markup import escape

    from crowdloop.aggregation.registry import METHODS, method_class

    table = Table("method", "model")
    table.add_row("auto", "Chosen from the number of labels, answers per task and answers per worker.")
    for name in METHODS:
        table.add_row(name, escape(summary(method_class(name).__doc__ or "")))
    Console().print(table)


_MATH_WORDS = {
    "times": "x",
    "propto": "proportional to",
    "sum": "sum",
    "prod": "product",
    "in": "in",
    "le": "<=",
    "ge": ">=",
    "neq": "!=",
    "cdot": "*",
    "ldots": "...",
    "infty": "infinity",
    "to": "->",
    "mid": "|",
    "log": "log",
    "exp": "exp",
}
"""LaTeX commands as plain text; Greek letters keep their names (``\\pi`` -> pi)."""


def summary(doc: str) -> str:
    """The first sentence of a docstring as plain text: math ($...$) in words, no markup."""
    text = " ".join(doc.strip().split("\n\n", 1)[0].split())
    # the first sentence: up to ". " (not inside math) or the end of the paragraph
    depth, end = 0, len(text)
    for i, char in enumerate(text):
        if char == "$":
            depth ^= 1
        elif char == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            end = i + 1
            break
    text = text[:end].rstrip(":").strip()

    def words(match: re.Match) -> str:
        math = match.group(1)
        math = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: f"{_group(m[1])}/{_group(m[2])} ", math)
        math = re.sub(r"\\frac(\d)(\d)", r"\1/\2", math)
        math = re.sub(r"\\(?:operatorname|mathrm|text|hat|tilde|bar)\b\s*", "", math)
        math = re.sub(r"\\([A-Za-z]+)", lambda m: _MATH_WORDS.get(m.group(1), m.group(1)), math)
        math = math.replace("{", "").replace("}", "").replace("^", "^")
        return " ".join(math.split())

    text = re.sub(r"\$\$?([^$]+)\$\$?", words, text)
    text = text.replace("``", "")
    return text if text.endswith((".", ")")) else text + "."


def _group(term: str) -> str:
    """A term of a fraction, in parentheses when it is more than one symbol."""
    return term if re.fullmatch(r"[\w|\\]+", term) else f"({term})"
