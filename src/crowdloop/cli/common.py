"""What every ``crowdloop`` subcommand shares: the app, option types, error handling and loading."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
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
ItemColumn = Annotated[
    str | None, typer.Option("--item-column", help="Column with the item id (default: item, else task).")
]


@contextmanager
def steps(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for ``total`` steps of a long job; yields ``done(n)``, to call with
    the steps done so far."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


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


def show(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
