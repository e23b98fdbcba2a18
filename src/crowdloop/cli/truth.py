"""Truth inference and decisions on answer files: ``aggregate``, ``decide``, ``methods``."""

from __future__ import annotations

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
    task_column: TaskColumn = "task",
    worker_column: WorkerColumn = "worker",
    label_column: LabelColumn = "label",
    duplicates: Duplicates = "first",
) -> None:
    """Infer the true label of every task, with a confidence, and each worker's skill.

    With gold the confidence is calibrated on the gold tasks (cross-fitted), so that 0.97 means 97%
    right; gold tasks keep their gold labels."""
    from crowdloop.aggregation.auto import choose_method
    from crowdloop.aggregation.calibration import CalibratedAggregator
    from crowdloop.aggregation.registry import method_class
    from crowdloop.io import write_table

    def job() -> None:
        data, truth = load(answers, labels=labels, taxonomy=taxonomy, gold=gold, task=task_column,
                           worker=worker_column, label=label_column, duplicates=duplicates)  # fmt: skip
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
    target: Annotated[float, typer.Option(help="Accept a task once P(label is right) reaches this.")] = 0.97,
    min_overlap: Annotated[int, typer.Option(help="Answers every task gets at least.")] = 1,
    max_overlap: Annotated[int, typer.Option(help="Answers after which a task goes to an expert.")] = 5,
    gold: GoldOption = None,
    model_probs: Annotated[
        Path | None,
        typer.Option("--model-probs", help="A model's probabilities: task,label,probability or one column per label."),
    ] = None,
    labels: LabelsOption = None,
    taxonomy: TaxonomyOption = None,
    price: Annotated[float, typer.Option(help="Price of one crowd answer.")] = 1.0,
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
) -> None:
    """Decide per task: accepted, more (with how many answers to order now) or escalated.

    Run it after every batch of answers from any crowd platform, and upload the 'more' tasks again.
    Writes task,status,label,confidence,answers,next."""
    from crowdloop.consensus import ConsensusPolicy, Prices, consensus_engine
    from crowdloop.io import read_probabilities, write_table

    def job() -> None:
        policy = ConsensusPolicy(target, min_overlap, max_overlap, prices=Prices(crowd=price))
        consensus_engine(policy_name, policy, threshold=model_threshold)  # bad options fail before any reading
        data, truth = load(answers, labels=labels, taxonomy=taxonomy, gold=gold, task=task_column,
                           worker=worker_column, label=label_column, duplicates=duplicates)  # fmt: skip
        if model_probs is not None:
            ids, probs = read_probabilities(model_probs, data.labels)
            data = data.with_soft("model", ids, probs, source=str(model_probs))
        if policy_name == "model-agrees" and data.soft is None:
            console.print("[yellow]--policy model-agrees without --model-probs:[/] only 2 agreeing humans accept")
        with console.status(f"weighing {data.n_answers:,} answers ..."):
            engine = consensus_engine(policy_name, policy, threshold=model_threshold).fit(data, truth)
            table = engine.decide(data)
        table["confidence"] = table["confidence"].round(6)
        write_table(table, out)
        counts = table["status"].value_counts()
        rows = [
            *[(status, f"{counts.get(status, 0):,}") for status in ("accepted", "more", "escalated")],
            ("answers to order now", f"{table['next'].sum():,}"),
            ("answers so far (cost)", f"{data.n_answers:,} ({data.n_answers * price:,.2f})"),
            (
                "confidence",
                "calibrated on gold" if engine.calibrator_ is not None else "uncalibrated (too little gold)",
            ),
        ]
        rule = f"model-agrees at {model_threshold}" if policy_name == "model-agrees" else f"target {target}"
        show(f"{len(table):,} tasks, {rule} -> {out}", rows)

    run(job)


@app.command()
def methods() -> None:
    """List the truth-inference methods."""
    from crowdloop.aggregation.registry import METHODS, method_class

    table = Table("method", "model")
    table.add_row("auto", "chosen from the number of labels, answers per task and answers per worker")
    for name in METHODS:
        table.add_row(name, (method_class(name).__doc__ or "").strip().splitlines()[0])
    Console().print(table)
