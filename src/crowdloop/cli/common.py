"""What every ``crowdloop`` subcommand shares: the app, option types, error handling and loading."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crowdloop.answers import DUPLICATE_POLICIES, Answers
from crowdloop.errors import CrowdloopError, InputError
from crowdloop.labels import LabelSpace, Taxonomy

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

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
TaskColumn = Annotated[str, typer.Option(help="Column with the task id (a position, 1 = first, with --no-header).")]
WorkerColumn = Annotated[str, typer.Option(help="Column with the worker id (a position with --no-header).")]
LabelColumn = Annotated[str, typer.Option(help="Column with the answer (a position with --no-header).")]
NoHeader = Annotated[
    bool,
    typer.Option(
        "--no-header",
        help="The answers file has no header line: its columns are task, worker, label in that order, or the "
        "positions given by --task-column, --worker-column, --label-column.",
    ),
]
Separator = Annotated[
    str | None, typer.Option("--sep", help="Field separator of a CSV/TSV answers file (default: by suffix).")
]
ModelProbsOption = Annotated[
    Path | None,
    typer.Option("--model-probs", help="A model's probabilities: task,label,probability or one column per label."),
]
ModelTemperatureOption = Annotated[
    str,
    typer.Option(
        "--model-temperature",
        help="The model's temperature (its probabilities vote as p^t): 'learn' (from gold when given, else from "
        "the crowd's answers), a number (1 = the model is calibrated) or bounds LOW:HIGH for the learned value.",
    ),
]
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
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
    header: bool = True,
    sep: str | None = None,
    model_probs: Path | None = None,
    model_temperature: str = "learn",
) -> tuple[Answers, pd.Series | None]:
    """Answers and gold from files (the shipped example when ``answers`` is None), with a model's
    probabilities as a soft worker ``model`` when ``model_probs`` is given. Without a label list or
    taxonomy, the labels are those of the answers and of the probabilities. Gold is checked against
    the answers here, so that its errors name its file and lines."""
    from crowdloop.answers import Temperature
    from crowdloop.io import probability_labels, read_answers, read_gold, read_probabilities

    if labels is not None and taxonomy is not None:
        raise InputError("give --labels or --taxonomy, not both")
    temperature = Temperature.parse(model_temperature)  # a bad option fails before any reading
    space = Taxonomy.read(taxonomy) if taxonomy is not None else LabelSpace.read(labels) if labels else None
    if answers is None:
        console.print("No answers file given: using the example shipped with crowdloop.")
        answers = example_path("example_answers.csv")
        space = space or Taxonomy.read(example_path("example_taxonomy.txt"))
        gold = gold or example_path("example_gold.csv")
    data, file_gold = read_answers(
        answers, labels=space, task=task, worker=worker, label=label, duplicates=duplicates, header=header, sep=sep
    )
    if model_probs is not None and space is None:  # a class only the model proposes joins the label space
        data = data.with_labels(probability_labels(model_probs))
    truth = read_gold(gold) if gold is not None else file_gold
    gold_items, gold_labels = data.encode_gold(
        truth, source=str(gold if gold is not None else answers), first_row=2, unit="line"
    )
    if model_probs is not None:
        notes: list[str] = []
        ids, probs = read_probabilities(model_probs, data.labels, notes=notes)
        if temperature.value is None:  # a model stated calibrated is taken as it is
            probs = _floored_on_gold(ids, probs, data.items[gold_items], gold_labels, notes)
        for note in notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        data = data.with_soft("model", ids, probs, temperature=temperature, source=str(model_probs))
    return data, truth


def _floored_on_gold(
    ids: pd.Index, probs: sp.csr_matrix, gold_items: pd.Index, gold_labels: np.ndarray, notes: list[str]
) -> sp.csr_matrix:
    """The model's rows mixed with the uniform by the floor its gold rows call for
    (``models.calibrate.vote_calibration``, as the service weighs its own model), so that a row
    sure of a wrong label cannot outvote annotators who agree; unchanged without gold rows."""
    from crowdloop.aggregation.em import completed_rows
    from crowdloop.models.calibrate import floored, vote_calibration

    rows = ids.get_indexer(gold_items)
    found = rows >= 0
    if not found.any():
        return probs
    vote = vote_calibration(completed_rows(probs[rows[found]]), gold_labels[found])
    notes.append(
        f"the model's rows are mixed with the uniform by {vote.floor:.3g} (fitted on its {int(found.sum())} "
        "gold rows), so that one sure of a wrong label cannot outvote annotators who agree"
    )
    return floored(probs, vote.floor)


def show(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
