"""The next batch to label: ``select``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from crowdloop.cli.common import ItemColumn, app, run, show, steps

STRATEGY_HELP = (
    "random | least_confidence | margin | entropy | qbc | qbc_kl | density | coreset | kmeans++ | "
    "margin+coreset | margin+kmeans++ | relabel (needs crowd answers: labelled items with a weak "
    "consensus compete with new ones)."
)


ItemsArgument = Annotated[
    Path | None,
    typer.Argument(help="Items: CSV/TSV/JSONL/Parquet with columns item (or task), text[, label]. "
                   "Omitted: the example shipped with crowdloop."),
]  # fmt: skip
LabelsFile = Annotated[
    Path | None,
    typer.Option("--labels", help="Labels so far: item,label, or crowd answers item,worker,label "
                 "(their consensus trains the model). Default: the items' label column."),
]  # fmt: skip
ProbsFile = Annotated[
    Path | None,
    typer.Option("--probs", help="A model's probabilities instead of training one: item,label,probability "
                 "or one column per label."),
]  # fmt: skip


@app.command()
def select(
    items: ItemsArgument = None,
    labels: LabelsFile = None,
    probs: ProbsFile = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help=STRATEGY_HELP)] = "margin",
    batch: Annotated[int, typer.Option("--batch", "-b", help="How many items to select.")] = 20,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write item,text,score,rank.")] = Path(
        "next_batch.csv"
    ),
    cold_start: Annotated[str, typer.Option(help="With no labels yet: kmeans++ | coreset | random.")] = "kmeans++",
    item_column: ItemColumn = None,
    text_column: Annotated[str, typer.Option(help="Column with the item's text.")] = "text",
    chunk_size: Annotated[int, typer.Option(help="Items scored at a time (bounds memory on large pools).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Pick the next batch of items to label: trains the default text model on the labels so far
    (or reads --probs) and scores the unlabelled items by --strategy. Writes item,text,score,rank
    (and kind = new | relabel with --strategy relabel); item ids may be in an item or a task column
    (or the one --item-column names) of every file."""
    from crowdloop.active.select import ModelProbabilities, next_batch
    from crowdloop.cli.model import read_items, read_labels
    from crowdloop.io import read_answers, read_probabilities, read_table, write_table
    from crowdloop.io.tables import id_column
    from crowdloop.labels import LabelSpace

    def job() -> None:
        table = read_items(items, item_column, text_column)
        texts = pd.Series(table["text"].to_numpy(object), index=pd.Index(table["item"], name="task"))
        known, answers = None, None
        if labels is not None:
            header = read_table(labels)
            if "worker" in header.columns:
                given = item_column if item_column in header.columns else None
                answers, _ = read_answers(labels, task=id_column(header, given, str(labels)))
            else:
                known = read_labels(labels, table, item=item_column)["label"]
        elif table["label"].notna().any():
            known = pd.Series(table["label"].to_numpy(object), index=texts.index).dropna()
        probabilities = None
        if probs is not None:
            frame = read_table(probs)
            long = {"label", "probability"} <= set(frame.columns)
            column = id_column(frame, item_column if item_column in frame.columns else None, str(probs))
            names = pd.unique(frame["label"]) if long else [c for c in frame.columns if c != column]
            space = LabelSpace(names, source=str(probs))
            ids, matrix = read_probabilities(probs, space, task=column)
            probabilities = ModelProbabilities(pd.Index(ids), matrix.toarray(), space)
        with steps(f"scoring {len(texts):,} items by {strategy}", 1) as done:
            selection = next_batch(texts, known, strategy, batch, answers=answers, probabilities=probabilities,
                                   cold_start=cold_start, chunk_size=chunk_size, random_state=seed)  # fmt: skip
            done(1)
        chosen = selection.batch.rename(columns={"task": "item"})
        result = chosen.assign(text=texts.reindex(chosen["item"]).to_numpy(object))
        columns = ["item", "text", *[c for c in result.columns if c not in ("item", "text")]]
        result = result[columns].assign(score=result["score"].round(6))
        write_table(result, out)
        rows = [*selection.notes, ("strategy", strategy), ("selected", f"{len(result):,}")]
        if "kind" in result.columns:
            rows.append(("relabel / new", f"{(result['kind'] == 'relabel').sum()} / {(result['kind'] == 'new').sum()}"))
        if result["score"].notna().any():
            rows.append(("score range", f"{np.nanmin(result['score']):.3f} .. {np.nanmax(result['score']):.3f}"))
        show(f"next batch -> {out}", rows)

    run(job)
