"""Label errors and planning: ``errors``, ``plan``."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from crowdloop.cli.common import (
    ItemColumn,
    LabelsOption,
    TaxonomyOption,
    app,
    console,
    example_path,
    load,
    run,
    show,
    steps,
)
from crowdloop.cli.service import DbOption, database_url
from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace, Taxonomy

ProbsOption = Annotated[
    Path | None,
    typer.Option("--probs", help="Out-of-fold probabilities: item,label,probability or item + one column per label."),
]
TextColumn = Annotated[str, typer.Option(help="Column with the item's text (to train the default model).")]


def _require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing column {', '.join(repr(c) for c in missing)} (columns are: {', '.join(frame.columns)})",
            source=source,
        )


def _label_space(labels: Path | None, taxonomy: Path | None, values: list[np.ndarray]) -> LabelSpace:
    if labels is not None and taxonomy is not None:
        raise InputError("give --labels or --taxonomy, not both")
    if taxonomy is not None:
        return Taxonomy.read(taxonomy)
    if labels is not None:
        return LabelSpace.read(labels)
    return LabelSpace.from_values(np.concatenate([np.asarray(v, dtype=object) for v in values]))


def _probability_labels(path: Path, item: str | None) -> np.ndarray:
    """The label names a probabilities file mentions (its header, or its ``label`` column)."""
    from crowdloop.io import read_table

    frame = read_table(path)
    if {"label", "probability"} <= set(frame.columns):
        return frame["label"].to_numpy(dtype=object)
    column = _id_column(frame, item, str(path))
    return np.asarray([c for c in frame.columns if c != column], dtype=object)


def _id_column(frame: pd.DataFrame, item: str | None, source: str) -> str:
    """The item id column of a file: ``item`` when it has one by that name, else ``item`` or ``task``."""
    from crowdloop.io.tables import id_column

    return id_column(frame, item if item in frame.columns else None, source)


def _aligned_probs(path: Path, space: LabelSpace, tasks: pd.Index, source: str, item: str | None) -> np.ndarray:
    """Dense probability rows of ``tasks`` (every task must be in the file)."""
    from crowdloop.io import read_probabilities, read_table

    prob_tasks, matrix = read_probabilities(path, space, task=_id_column(read_table(path), item, str(path)))
    where = pd.Index(prob_tasks).get_indexer(tasks.astype(str))
    missing = np.flatnonzero(where < 0)
    if missing.size:
        raise InputError(
            f"task {tasks[missing[0]]!r} has no probabilities in {path}",
            source=source,
            rows=(missing + 2).tolist(),
            hint="Give a probability row for every labelled task.",
        )
    return matrix[where].toarray()


@app.command()
def errors(
    labeled: Annotated[
        Path | None,
        typer.Argument(help="Labelled items: columns item (or task), label (and text, to train the default model)."),
    ] = None,
    probs: ProbsOption = None,
    answers: Annotated[
        Path | None, typer.Option("--answers", help="Crowd answers (item, worker, label) for the crowd-model checks.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ranked review list.")] = Path(
        "errors.csv"
    ),
    annotators_out: Annotated[Path, typer.Option(help="Where to write the per-annotator report.")] = Path(
        "annotators.csv"
    ),
    budget: Annotated[int | None, typer.Option(help="Rows of the review list (default: the flagged items).")] = None,
    filter_by: Annotated[str, typer.Option(help="prune_by_noise_rate|prune_by_class|both|confident_learning")] = (
        "prune_by_noise_rate"
    ),
    rank_by: Annotated[str, typer.Option(help="self_confidence|normalized_margin|combined")] = "self_confidence",
    method: Annotated[str, typer.Option("--method", "-m", help="Truth inference for --answers.")] = "auto",
    n_folds: Annotated[int, typer.Option(help="Folds of the out-of-fold model (texts only).")] = 5,
    text_column: TextColumn = "text",
    item_column: ItemColumn = None,
    labels: LabelsOption = None,
    taxonomy: TaxonomyOption = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Check a project's accepted labels in the service (with --db).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Find likely label errors and write a ranked review list with reasons.

    With LABELED and --probs (or a text column, to train the default model out-of-fold): confident
    learning on the given labels. With --answers: the crowd's consensus against the model (--probs)
    and the annotators whose answers are systematically off (written to --annotators-out).
    With --project: the service's check of the project's accepted labels against its newest model
    version (the items it disputes go to the review queue). Without files: the shipped examples."""

    def job() -> None:
        if project is not None:
            if labeled is not None or answers is not None or probs is not None:
                raise InputError("--project checks the service's labels: give no files with it")
            _project_errors(database_url(db), project)
            return
        items, crowd = labeled, answers
        if items is None and crowd is None:
            if probs is not None:
                raise InputError("--probs needs a labelled file or --answers to check against")
            console.print("No files given: using the examples shipped with crowdloop (titles and crowd answers).")
            items, crowd = example_path("quality_items.csv"), example_path("quality_answers.csv")
        if items is not None:
            _label_errors(items, probs, out, budget, filter_by, rank_by, n_folds, text_column, item_column, labels,
                          taxonomy)  # fmt: skip
        if crowd is not None:
            _crowd_checks(crowd, probs if items is None else None, out if items is None else None,
                          annotators_out, method, item_column, labels, taxonomy)  # fmt: skip

    run(job)


def _label_errors(
    labeled: Path,
    probs: Path | None,
    out: Path,
    budget: int | None,
    filter_by: str,
    rank_by: str,
    n_folds: int,
    text_column: str,
    item_column: str | None,
    labels: Path | None,
    taxonomy: Path | None,
) -> None:
    from crowdloop.io import read_table, write_table
    from crowdloop.quality import review_list

    source = str(labeled)
    frame = read_table(labeled)
    item = _id_column(frame, item_column, source)
    _require_columns(frame, ["label"], source)
    if probs is None and text_column not in frame.columns:
        raise InputError(
            f"no --probs and no '{text_column}' column to train a model on", source=source,
            hint="Give out-of-fold probabilities with --probs, or the item texts in a text column.",
        )  # fmt: skip
    extra = [_probability_labels(probs, item_column)] if probs is not None else []
    space = _label_space(labels, taxonomy, [frame["label"].to_numpy(), *extra])
    codes = space.encode(frame["label"].to_numpy(), source=source, field="label", first_row=2)
    tasks = pd.Index(frame[item].to_numpy(dtype=object))
    if probs is not None:
        matrix = _aligned_probs(probs, space, tasks, source, item_column)
        origin = f"probabilities from {probs}"
    else:
        from crowdloop.models import TextClassifier, normalize_text, out_of_fold_proba

        texts = frame[text_column].to_numpy(dtype=object)
        with steps(f"training the default model on {len(frame):,} items, out-of-fold", n_folds) as done:
            matrix = out_of_fold_proba(TextClassifier(), texts, frame["label"].to_numpy(dtype=object),
                                       n_folds=n_folds, groups=normalize_text(texts), label_space=space,
                                       progress=done)  # fmt: skip
        origin = f"default model, {n_folds}-fold out-of-fold"
    classes = np.asarray(space.labels, dtype=object)
    review = review_list(classes[codes], matrix, classes, items=tasks, budget=budget, filter_by=filter_by,
                         rank_by=rank_by)  # fmt: skip
    write_table(review, out)
    flagged, listed = review.attrs["flagged"], int(review["flagged"].sum())
    rows = [
        ("items / labels", f"{len(frame):,} / {len(space):,}"),
        ("probabilities", origin),
        (f"flagged by {filter_by}", f"{flagged:,} ({flagged / len(frame):.1%})"),
        ("review list", f"{len(review):,} lowest {rank_by}, {listed:,} of them flagged (column flagged)"),
        *[
            (str(r.item), f"{r.given_label} -> {r.suggested_label} ({r.score:.3f})")
            for r in review.head(5).itertuples()
        ],
    ]
    show(f"label errors: {len(review):,} items to review -> {out}", rows)


def _crowd_checks(
    answers_path: Path,
    probs: Path | None,
    out: Path | None,
    annotators_out: Path,
    method: str,
    item_column: str | None,
    labels: Path | None,
    taxonomy: Path | None,
) -> None:
    from crowdloop.aggregation.auto import choose_method
    from crowdloop.aggregation.registry import method_class
    from crowdloop.io import write_table
    from crowdloop.quality import annotator_report, consensus_model_disagreements

    data, gold = load(answers_path, labels=labels, taxonomy=taxonomy, gold=None, task=item_column or "task")
    name = choose_method(data)[0] if method == "auto" else method
    with console.status(f"fitting {name} on {data.n_answers:,} answers ..."):
        model = method_class(name)().fit(data, gold)
    report = annotator_report(data, model.posterior_)
    write_table(report, annotators_out)
    flagged = report[report["flag"] != ""]
    rows = [("annotators / flagged", f"{len(report):,} / {len(flagged):,}")]
    rows += [(str(r.worker), f"{r.flag}: {r.reason}") for r in flagged.head(5).itertuples()]
    show(f"annotators ({name} consensus) -> {annotators_out}", rows)
    if probs is None:
        return
    matrix = _aligned_probs(probs, data.labels, data.items, str(answers_path), item_column)
    disagreements = consensus_model_disagreements(
        model.posterior_, matrix, items=data.items, classes=np.asarray(data.labels.labels, dtype=object)
    )
    write_table(disagreements, out)
    rows = [("items where crowd and model disagree", f"{len(disagreements):,} of {data.n_items:,}")]
    rows += [(str(r.item), r.reason) for r in disagreements.head(5).itertuples()]
    show(f"consensus against the model -> {out}", rows)


def _project_errors(url: str, project: str) -> None:
    """The service's check of a project's accepted labels (``LabelingService.check_labels``)."""
    from crowdloop.service import open_service

    service = open_service(url)
    try:
        found = service.check_labels(service.get_project(project).id)
    finally:
        service.close()
    rows = [("model", found.model or "none yet"), ("accepted labels checked", f"{found.checked:,}"),
            ("sent to review", f"{len(found.disputed):,}")]  # fmt: skip
    rows += [(d.item, f"{d.label} ({d.label_probability:.2f}) -> {d.model_label} ({d.model_probability:.2f})")
             for d in found.disputed[:5]]  # fmt: skip
    show(f"label errors in project {project}", rows)


@app.command()
def plan(
    curve: Annotated[
        Path | None,
        typer.Argument(help="Learning curve: columns labels, accuracy (optional n_eval). Omitted: the example."),
    ] = None,
    items: Annotated[
        Path | None, typer.Option("--items", help="Labelled items (text, label) to measure a learning curve on.")
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="Target accuracy (default 0.85; a project's: its policy's target).")
    ] = None,
    price_per_label: Annotated[float, typer.Option(help="Price of one label.")] = 0.10,
    annotator_hour_price: Annotated[float, typer.Option(help="Price of one annotator hour.")] = 6.0,
    engineer_hour_ratio: Annotated[
        float, typer.Option(help="An ML engineer's hour in annotator hours (10-15).")
    ] = 12.5,
    engineer_hours: Annotated[float, typer.Option(help="Engineer hours a model change takes.")] = 80.0,
    current_labels: Annotated[int | None, typer.Option(help="Labels you have (default: the curve's largest).")] = None,
    plot: Annotated[Path, typer.Option("--plot", help="Where to write the PNG.")] = Path("learning_curve.png"),
    curve_out: Annotated[Path | None, typer.Option(help="Write the measured curve (with --items).")] = None,
    text_column: TextColumn = "text",
    label_column: Annotated[str, typer.Option(help="Column with the label (with --items).")] = "label",
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 200,
    project: Annotated[
        str | None, typer.Option("--project", help="Plan a project of the service from its model versions (--db).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Forecast the labels a target accuracy needs, and whether to add data or change the model.

    Fits acc(n) = a - b n^-c with bootstrap intervals to a learning curve file, or to one measured
    on --items by training the default model on growing subsets, or (--project) to the accuracy on
    gold of a project's model versions against the labels each could train on, priced by what the
    project's labels and answers cost; prints the forecast and the recommendation with its cost,
    and writes the plot."""
    from crowdloop.planning import CostModel, fit_learning_curve, measure_learning_curve
    from crowdloop.planning import plan as make_plan

    def job() -> None:
        if project is not None:
            if curve is not None or items is not None:
                raise InputError("--project plans from the service's model versions: give no curve or --items")
            _project_plan(database_url(db), project, target, engineer_hours, engineer_hour_ratio, plot, n_boot)
            return
        if curve is not None and items is not None:
            raise InputError("give a learning-curve file or --items, not both")
        costs = CostModel(price_per_label, annotator_hour_price, engineer_hour_ratio, engineer_hours)
        if items is not None:
            points = _measure(items, text_column, label_column, measure_learning_curve)
            if curve_out is not None:
                from crowdloop.io import write_table

                write_table(points, curve_out)
        else:
            path = curve
            if path is None:
                console.print("No learning curve given: using the example shipped with crowdloop.")
                path = example_path("quality_curve.csv")
            points = _read_curve(path)
        n_eval = points["n_eval"].to_numpy() if "n_eval" in points else None
        fitted = fit_learning_curve(points["labels"], points["accuracy"], n_eval=n_eval, n_boot=n_boot)
        goal = 0.85 if target is None else target
        result = make_plan(fitted, goal, costs, current_labels)
        needed, asymptote = result.labels_needed, fitted.asymptote
        rows = [
            ("fitted curve", f"acc(n) = {fitted.a:.3f} - {fitted.b:.3g} n^-{fitted.c:.3f}"),
            ("asymptote", f"{asymptote.estimate:.3f} ({fitted.level:.0%} interval "
                          f"{asymptote.low:.3f}-{asymptote.high:.3f})"),
            ("labels now / accuracy", f"{result.current_labels:,} / {result.current_accuracy.estimate:.3f}"),
            (f"labels for {goal:.3f}", _interval_text(needed)),
            ("cost of the labels", _interval_text(result.data_cost)),
            ("cost of a model change", f"{result.model_change_cost:,.0f}"),
            ("recommendation", result.recommendation),
            ("why", result.reason),
        ]  # fmt: skip
        if find_spec("matplotlib") is None:  # the forecast stands without the plotting extra
            console.print("[yellow]no plot:[/] plotting needs matplotlib: pip install 'crowdloop\\[plot]'")
        else:
            from crowdloop.planning.plot import plot_learning_curve

            rows.append(("plot", str(plot_learning_curve(fitted, plot, target=goal))))
        show("how much data?", rows)

    run(job)


def _project_plan(
    url: str, project: str, target: float | None, hours: float, ratio: float, plot: Path, n_boot: int
) -> None:
    """``LabelingService.plan`` of a project, printed, and its picture written (with matplotlib)."""
    from crowdloop.service import open_service

    drawn = find_spec("matplotlib") is not None
    service = open_service(url)
    try:
        found = service.plan(service.get_project(project).id, target=target, engineer_hours=hours,
                             engineer_hour_ratio=ratio, plot=plot if drawn else None, n_boot=n_boot)  # fmt: skip
    finally:
        service.close()
    rows = [(f"version {p.version}", f"{p.labels:,} labels: {p.accuracy:.3f} on {p.gold:,} gold") for p in found.points]
    rows += [
        ("fitted curve", f"acc(n) = {found.curve['a']:.3f} - {found.curve['b']:.3g} n^-{found.curve['c']:.3f}"),
        ("labels now / accuracy", f"{found.current_labels:,} / {_number(found.current_accuracy.estimate, '.3f')}"),
        (f"labels for {found.target:.3f}", _interval_text(found.labels_needed)),
        ("a label / an annotator hour", f"{found.price_per_label:,.2f} / {found.annotator_hour_price:,.2f}"),
        ("cost of the labels", _interval_text(found.data_cost)),
        ("cost of a model change", " - ".join(f"{x:,.0f}" for x in found.model_change_range)),
        ("recommendation", found.recommendation),
        ("why", found.reason),
        ("plot", str(plot) if drawn else "plotting needs matplotlib: pip install 'crowdloop[plot]'"),
    ]
    show(f"how much data? project {project}, model {found.model}", rows)


def _number(x: float | None, spec: str = ",.0f") -> str:
    return "unbounded" if x is None or x == float("inf") else format(x, spec)


def _interval_text(value) -> str:
    return f"{_number(value.estimate)} (interval {_number(value.low)}-{_number(value.high)})"


def _read_curve(path: Path) -> pd.DataFrame:
    from crowdloop.io import read_table

    frame = read_table(path)
    _require_columns(frame, ["labels", "accuracy"], str(path))
    out = {}
    for column in ("labels", "accuracy", "n_eval"):
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise InputError("expected a number", source=str(path), rows=(bad + 2).tolist(), field=column)
        out[column] = values.to_numpy(dtype=np.float64)
    bad = np.flatnonzero((out["accuracy"] < 0) | (out["accuracy"] > 1))
    if bad.size:
        raise InputError("accuracy must be in [0, 1]", source=str(path), rows=(bad + 2).tolist(), field="accuracy")
    return pd.DataFrame(out)


def _measure(items: Path, text_column: str, label_column: str, measure) -> pd.DataFrame:
    from crowdloop.io import read_table

    frame = read_table(items)
    _require_columns(frame, [text_column, label_column], str(items))
    from crowdloop.planning.measure import DEFAULT_POINTS

    with steps(f"measuring a learning curve on {len(frame):,} items", DEFAULT_POINTS) as done:
        return measure(
            frame[text_column].to_numpy(dtype=object), frame[label_column].to_numpy(dtype=object), progress=done
        )
