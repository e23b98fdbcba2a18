"""The ``crowdloop`` command line: one command, a subcommand per job."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from crowdloop.answers import DUPLICATE_POLICIES, Answers
from crowdloop.errors import CrowdloopError, InputError
from crowdloop.labels import LabelSpace, Taxonomy

app = typer.Typer(
    help="crowdloop: accurate labels from crowds, experts and models, for as few paid answers as possible.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
T = TypeVar("T")

AnswersArgument = Annotated[
    Path | None,
    typer.Argument(
        help="Answers: CSV/TSV/JSONL/Parquet with columns task, worker, label, or a Toloka assignments TSV. "
        "Omitted: the example shipped with crowdloop."
    ),
]
GoldOption = Annotated[Path | None, typer.Option("--gold", help="Gold labels: columns task, label.")]
LabelsOption = Annotated[Path | None, typer.Option("--labels", help="File with one label per line.")]
TaxonomyOption = Annotated[
    Path | None, typer.Option("--taxonomy", help="Taxonomy file: 'A > B > C' lines or Google's 'ID - A > B > C'.")
]
TaskColumn = Annotated[str, typer.Option(help="Column with the task id.")]
WorkerColumn = Annotated[str, typer.Option(help="Column with the worker id.")]
LabelColumn = Annotated[str, typer.Option(help="Column with the answer.")]
Duplicates = Annotated[str, typer.Option(help=f"A worker answering a task twice: {'|'.join(DUPLICATE_POLICIES)}.")]


def run(job: Callable[[], T]) -> T:
    """Run a job: crowdloop errors print as one line and exit 1; Ctrl-C exits 130, writing nothing."""
    try:
        return job()
    except CrowdloopError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] nothing was written")
        raise typer.Exit(130) from None


def example_path(name: str) -> Path:
    return Path(str(resources.files("crowdloop") / "examples" / name))


def load(
    answers: Path | None,
    *,
    labels: Path | None,
    taxonomy: Path | None,
    gold: Path | None,
    task: str = "task",
    worker: str = "worker",
    label: str = "label",
    duplicates: str = "first",
) -> tuple[Answers, pd.Series | None]:
    """Answers and gold from files (the shipped example when ``answers`` is None)."""
    from crowdloop.io import read_answers, read_gold

    if labels is not None and taxonomy is not None:
        raise InputError("give --labels or --taxonomy, not both")
    space = Taxonomy.read(taxonomy) if taxonomy is not None else LabelSpace.read(labels) if labels else None
    if answers is None:
        console.print("No answers file given: using the example shipped with crowdloop.")
        answers = example_path("example_answers.csv")
        space = space or Taxonomy.read(example_path("example_taxonomy.txt"))
        gold = gold or example_path("example_gold.csv")
    data, file_gold = read_answers(answers, labels=space, task=task, worker=worker, label=label, duplicates=duplicates)
    return data, read_gold(gold) if gold is not None else file_gold


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
            name, reason = choose_method(data)
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
    task_column: TaskColumn = "task",
    worker_column: WorkerColumn = "worker",
    label_column: LabelColumn = "label",
    duplicates: Duplicates = "first",
) -> None:
    """Decide per task: accepted, more (with how many answers to order now) or escalated.

    Run it after every batch of answers from any crowd platform, and upload the 'more' tasks again.
    Writes task,status,label,confidence,answers,next."""
    from crowdloop.consensus import ConsensusPolicy, DynamicConsensus, Prices
    from crowdloop.io import read_probabilities, write_table

    def job() -> None:
        data, truth = load(answers, labels=labels, taxonomy=taxonomy, gold=gold, task=task_column,
                           worker=worker_column, label=label_column, duplicates=duplicates)  # fmt: skip
        if model_probs is not None:
            ids, probs = read_probabilities(model_probs, data.labels)
            data = data.with_soft("model", ids, probs, source=str(model_probs))
        policy = ConsensusPolicy(target, min_overlap, max_overlap, prices=Prices(crowd=price))
        with console.status(f"weighing {data.n_answers:,} answers ..."):
            engine = DynamicConsensus(policy).fit(data, truth)
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
        show(f"{len(table):,} tasks at target {target} -> {out}", rows)

    run(job)


def show(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


@app.command()
def methods() -> None:
    """List the truth-inference methods."""
    from crowdloop.aggregation.registry import METHODS, method_class

    table = Table("method", "model")
    table.add_row("auto", "chosen from the number of labels, answers per task and answers per worker")
    for name in METHODS:
        table.add_row(name, (method_class(name).__doc__ or "").strip().splitlines()[0])
    Console().print(table)
