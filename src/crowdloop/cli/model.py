"""The model's opinion on files: ``train``, ``suggest``, ``autolabel``.

ITEMS files have one row per item: ``item`` (or ``task``, or the column ``--item-column`` names),
``text`` and optionally ``label`` (a label someone accepted, e.g. by consensus; empty when unknown)
and ``synthetic`` (true for generated items); label files (``--gold``, ``--accepted``, ``--pseudo``)
have the item id the same way and ``label``. What the commands write names it ``item``. Models
live in a registry directory, one version per ``train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from crowdloop.cli.common import ItemColumn, app, console, example_path, run, show, steps
from crowdloop.errors import ConfigError, InputError

ItemsArgument = Annotated[
    Path | None,
    typer.Argument(help="Items: CSV/TSV/JSONL/Parquet with columns item (or task), text[, label, synthetic]. "
                   "Omitted: the example shipped with crowdloop."),
]  # fmt: skip
RegistryOption = Annotated[Path, typer.Option("--registry", help="Model registry directory (one folder per version).")]
VersionOption = Annotated[str | None, typer.Option("--version", help="Model version (default: the latest).")]
TextColumn = Annotated[str, typer.Option(help="Column with the item's text (e.g. the product title).")]
DEFAULT_REGISTRY = Path("crowdloop-models")
TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f", ""}


PREDICT_CHUNK = 5_000


def read_items(path: Path | None, item: str | None, text: str) -> pd.DataFrame:
    """Items with ``item``, ``text``, ``label`` (None when empty) and ``synthetic``; one clear error
    per problem. ``item``: the id column (default: ``item``, else ``task``)."""
    from crowdloop.io import read_table
    from crowdloop.io.tables import id_column

    if path is None:
        console.print("No items file given: using the example shipped with crowdloop.")
        path = example_path("model_items.csv")
    source = str(path)
    frame = read_table(path)
    item = id_column(frame, item, source)
    if text not in frame.columns:
        raise InputError(f"missing column '{text}' (columns are: {', '.join(frame.columns)})", source=source)
    ids = frame[item].astype(str).str.strip()
    empty = np.flatnonzero(ids.eq("").to_numpy())
    if empty.size:
        raise InputError("empty item id", source=source, rows=(empty + 2).tolist(), field=item)
    dup = np.flatnonzero(ids.duplicated().to_numpy())
    if dup.size:
        raise InputError(f"item {ids.iloc[dup[0]]!r} listed twice", source=source, rows=(dup + 2).tolist(), field=item)
    texts = frame[text].astype(str).str.strip()
    blank = np.flatnonzero(texts.eq("").to_numpy())
    if blank.size:
        raise InputError("empty text", source=source, rows=(blank + 2).tolist(), field=text)
    labels = frame["label"].astype(str).str.strip() if "label" in frame.columns else pd.Series("", index=frame.index)
    flags = frame["synthetic"].astype(str).str.strip().str.lower() if "synthetic" in frame.columns else None
    if flags is not None:
        bad = np.flatnonzero(~flags.isin(TRUE | FALSE).to_numpy())
        if bad.size:
            raise InputError("expected true or false", source=source, rows=(bad + 2).tolist(), field="synthetic")
    return pd.DataFrame({
        "item": ids.to_numpy(object), "text": texts.to_numpy(object),
        "label": labels.where(labels.ne(""), None).to_numpy(object),
        "synthetic": flags.isin(TRUE).to_numpy(bool) if flags is not None else np.zeros(len(frame), bool),
    })  # fmt: skip


def read_labels(path: Path, items: pd.DataFrame, *, confidence: bool = False, item: str | None = None) -> pd.DataFrame:
    """An ``item, label[, confidence]`` file of items in ITEMS, indexed by item (the id column as
    in ``read_items``; ``item`` when the file has it, else ``item`` or ``task``)."""
    from crowdloop.io import read_table
    from crowdloop.io.tables import id_column

    source = str(path)
    frame = read_table(path)
    column = id_column(frame, item if item in frame.columns else None, source)
    needed = ["label", *(["confidence"] if confidence else [])]
    for name in needed:
        if name not in frame.columns:
            raise InputError(f"missing column '{name}' (columns are: {', '.join(frame.columns)})", source=source)
    tasks = frame[column].astype(str).str.strip()
    unknown = np.flatnonzero(~tasks.isin(items["item"]).to_numpy())
    if unknown.size:
        raise InputError(f"item {tasks.iloc[unknown[0]]!r} is not in the items file", source=source,
                         rows=(unknown + 2).tolist(), field=column)  # fmt: skip
    empty = np.flatnonzero(frame["label"].astype(str).str.strip().eq("").to_numpy())
    if empty.size:
        raise InputError("empty label", source=source, rows=(empty + 2).tolist(), field="label")
    out = pd.DataFrame({"label": frame["label"].astype(str).str.strip().to_numpy(object)}, index=tasks.to_numpy())
    if confidence:
        values = pd.to_numeric(frame["confidence"], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0) & (values <= 1)))
        if bad.size:
            raise InputError("expected a probability in [0, 1]", source=source, rows=(bad + 2).tolist(),
                             field="confidence")  # fmt: skip
        out["confidence"] = values
    if out.index.duplicated().any():
        raise InputError(f"item {out.index[out.index.duplicated()][0]!r} listed twice", source=source, field=column)
    return out


@app.command()
def train(
    items: ItemsArgument = None,
    gold: Annotated[Path | None, typer.Option("--gold", help="Gold labels: columns task, label.")] = None,
    accepted: Annotated[
        Path | None, typer.Option("--accepted", help="Accepted consensus labels: columns task, label.")
    ] = None,
    pseudo: Annotated[
        Path | None, typer.Option("--pseudo", help="Model labels: columns task, label, confidence.")
    ] = None,
    pseudo_threshold: Annotated[float, typer.Option(help="Keep pseudo-labels at least this confident.")] = 0.9,
    pseudo_weight: Annotated[
        float | None, typer.Option(help="Weight of a pseudo-label (default: its confidence).")
    ] = None,
    synthetic_ratio: Annotated[
        float | None, typer.Option(help="Share of synthetic items in the training set (default: all of them).")
    ] = None,
    hierarchical: Annotated[bool, typer.Option(help="Per-level heads over the 'A > B > C' label paths.")] = False,
    folds: Annotated[int, typer.Option(help="Folds of the out-of-fold metrics.")] = 3,
    registry: RegistryOption = DEFAULT_REGISTRY,
    item_column: ItemColumn = None,
    text_column: TextColumn = "text",
) -> None:
    """Train the text model on gold + accepted (+ pseudo) labels and save it as a new version.

    Labels in the items file count as accepted. Metrics are out-of-fold, on real (non-synthetic)
    human-labeled items only."""
    from crowdloop.labels import LabelSpace
    from crowdloop.models import HierarchicalClassifier, TextClassifier, normalize_text, out_of_fold_proba
    from crowdloop.models.registry import ModelRegistry
    from crowdloop.models.training import evaluate_proba, mix_synthetic, training_set
    from crowdloop.models.training import train as fit

    def job() -> None:
        table = read_items(items, item_column, text_column)
        texts = pd.Series(table["text"].to_numpy(object), index=table["item"])
        labeled = table.dropna(subset=["label"])
        accepted_labels = pd.Series(labeled["label"].to_numpy(object), index=labeled["item"])
        if accepted is not None:
            accepted_labels = pd.concat([read_labels(accepted, table, item=item_column)["label"], accepted_labels])
            accepted_labels = accepted_labels[~accepted_labels.index.duplicated()]
        pseudo_labels = None
        if pseudo is not None:
            if not 0 < pseudo_threshold <= 1:
                raise ConfigError(f"--pseudo-threshold must be in (0, 1], got {pseudo_threshold}")
            pseudo_labels = read_labels(pseudo, table, confidence=True, item=item_column)
            pseudo_labels = pseudo_labels[pseudo_labels["confidence"] >= pseudo_threshold]
        frame = training_set(
            texts,
            gold=read_labels(gold, table, item=item_column)["label"] if gold is not None else None,
            accepted=accepted_labels,
            pseudo=pseudo_labels,
            pseudo_weight=pseudo_weight,
            synthetic=pd.Series(table["synthetic"].to_numpy(bool), index=table["item"]),
        )
        if synthetic_ratio is not None:
            frame = mix_synthetic(frame, synthetic_ratio)
        if frame["label"].nunique() < 2:
            raise InputError("the training set has fewer than 2 distinct labels", hint="Label more items.")
        model = HierarchicalClassifier(TextClassifier()) if hierarchical else TextClassifier()
        space = LabelSpace.from_values(frame["label"])
        with steps(f"training on {len(frame):,} items ({folds} folds, then all)", folds + 1) as done:
            oof = out_of_fold_proba(model, frame["text"], frame["label"], n_folds=folds,
                                    groups=normalize_text(frame["text"]), label_space=space,
                                    sample_weight=frame["weight"], progress=done)  # fmt: skip
            fitted = fit(model, frame)
            done(folds + 1)
        human = frame["source"].ne("pseudo").to_numpy()  # a model is not graded on its own labels
        metrics = evaluate_proba(oof[human], space, frame[human].reset_index(drop=True))
        version = ModelRegistry(registry).save(fitted, frame, {f"oof_{k}": v for k, v in metrics.items()})
        counts = frame["source"].value_counts()
        show(f"model {version} in {registry}", [
            ("training items", f"{len(frame):,} ({', '.join(f'{k} {v:,}' for k, v in counts.items())}; "
             f"{int(frame['synthetic'].sum()):,} synthetic)"),
            ("labels", f"{space.__len__():,}"),
            ("out-of-fold accuracy", f"{metrics['accuracy']:.3f} on {metrics['n_real']:,} real human-labeled items"),
            ("out-of-fold ECE", f"{metrics['ece']:.3f}"),
        ])  # fmt: skip

    run(job)


def _load_model(registry: Path, version: str | None):
    from crowdloop.models.registry import ModelRegistry

    store = ModelRegistry(registry)
    return store, store.load(version), version or store.versions()[-1]


def predict(model, texts: np.ndarray) -> np.ndarray:
    """``model.predict_proba`` of ``texts``, ``PREDICT_CHUNK`` at a time, with a progress bar."""
    parts = []
    with steps(f"predicting {len(texts):,} items", len(texts)) as done:
        for start in range(0, len(texts), PREDICT_CHUNK):
            parts.append(model.predict_proba(texts[start : start + PREDICT_CHUNK]))
            done(min(start + PREDICT_CHUNK, len(texts)))
    return np.concatenate(parts) if parts else np.zeros((0, len(model.classes_)))


@app.command()
def suggest(
    items: ItemsArgument = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write item,rank,label,probability,shown.")] = Path(
        "suggestions.csv"
    ),
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Suggestions per item.")] = 3,
    hide_rate: Annotated[
        float, typer.Option(help="Share of items whose suggestions are hidden (to measure anchoring).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the hidden share.")] = 0,
    registry: RegistryOption = DEFAULT_REGISTRY,
    version: VersionOption = None,
    item_column: ItemColumn = None,
    text_column: TextColumn = "text",
) -> None:
    """Pre-labels: the model's top-k labels per item for the annotator's screen.

    With --hide-rate, a random share of items is marked shown=false: show those without suggestions,
    so that the anchoring the suggestions cause can be measured on the answers."""
    from crowdloop.io import write_table
    from crowdloop.models.prelabels import hide_mask
    from crowdloop.models.prelabels import top_k as top_k_labels

    def job() -> None:
        table = read_items(items, item_column, text_column)
        _, model, used = _load_model(registry, version)
        probs = predict(model, table["text"].to_numpy(object))
        frame = top_k_labels(probs, model.classes_, top_k, items=table["item"].to_numpy(object))
        hidden = hide_mask(len(table), hide_rate, seed)
        frame["shown"] = ~np.repeat(hidden, len(frame) // len(table))
        write_table(frame, out)
        show(f"suggestions by model {used}", [("items", f"{len(table):,}"), ("per item", str(len(frame) // len(table))),
                                              ("hidden", f"{int(hidden.sum()):,}"), ("written", str(out))])  # fmt: skip

    run(job)


def class_strata(model) -> np.ndarray:
    """The stratum of each of ``model.classes_`` in the automation proof (``automation_stratum``):
    its top-level branch when the classes are taxonomy paths (a ``HierarchicalClassifier``, or any
    class holding the path separator), else the class itself."""
    from crowdloop.labels import PATH_SEPARATOR, LabelSpace, Taxonomy
    from crowdloop.models.autolabel import automation_stratum
    from crowdloop.models.hierarchical import HierarchicalClassifier

    classes = np.asarray(model.classes_, dtype=object)
    hierarchical = isinstance(model, HierarchicalClassifier)
    if hierarchical or any(PATH_SEPARATOR in str(c) for c in classes):
        separator = model.separator if hierarchical else PATH_SEPARATOR
        labels = Taxonomy.from_paths([str(c) for c in classes], separator=separator)
        names = [PATH_SEPARATOR.join(part.strip() for part in str(c).split(separator.strip())) for c in classes]
        return automation_stratum(labels, labels.encode(names))
    labels = LabelSpace(classes)
    return automation_stratum(labels, labels.encode(classes))


@app.command()
def autolabel(
    items: ItemsArgument = None,
    gold: Annotated[Path | None, typer.Option("--gold", help="Gold labels: columns task, label.")] = None,
    target: Annotated[float, typer.Option(help="Accuracy the auto-labeled items must reach.")] = 0.95,
    confidence: Annotated[float, typer.Option(help="Confidence that they reach it (lower bound).")] = 0.95,
    out: Annotated[Path, typer.Option("--out", "-o", help="Auto-labeled items: item,label,confidence.")] = Path(
        "autolabeled.csv"
    ),
    ask_out: Annotated[Path, typer.Option("--ask-out", help="Items for humans: item,suggestion,confidence.")] = Path(
        "to_ask.csv"
    ),
    registry: RegistryOption = DEFAULT_REGISTRY,
    version: VersionOption = None,
    item_column: ItemColumn = None,
    text_column: TextColumn = "text",
) -> None:
    """Let the model label the unlabeled items it is sure of; the rest go to humans.

    The threshold is the lowest confidence at which the gold items' accuracy is at least TARGET with
    the stated CONFIDENCE (one-sided Clopper-Pearson bound, fixed-sequence testing from high to low),
    the gold reweighted to the open items by the label the model predicts (its top-level branch in a
    taxonomy); an open item whose predicted label (branch) has no gold above the threshold goes to
    humans. Gold items the model was trained on are left out of that choice (their confidence is
    optimistic)."""
    from crowdloop.io import write_table
    from crowdloop.models.autolabel import Pool, choose_threshold
    from crowdloop.models.autolabel import autolabel as split_items

    def job() -> None:
        table = read_items(items, item_column, text_column)
        gold_path = gold if gold is not None or items is not None else example_path("model_gold.csv")
        if gold_path is None:
            raise InputError(
                "auto-labeling needs gold", hint="Give --gold with labels of items the model did not train on."
            )
        truth = read_labels(gold_path, table, item=item_column)["label"]
        store, model, used = _load_model(registry, version)
        probs = predict(model, table["text"].to_numpy(object))
        is_gold = table["item"].isin(truth.index).to_numpy()
        fresh = is_gold & ~store.seen(table["text"].to_numpy(object), used)
        if not fresh.any():
            raise InputError("every gold item was in the model's training set", source=str(gold_path),
                             hint="Train without them (e.g. leave --gold out of 'crowdloop train').")  # fmt: skip
        top, sure = probs.argmax(axis=1), probs.max(axis=1)
        labels, stratum = np.asarray(model.classes_, dtype=object)[top], class_strata(model)[top]
        right = labels[fresh] == truth.reindex(table["item"][fresh]).to_numpy(object)
        open_items = ~is_gold & table["label"].isna().to_numpy()  # items that still need a label
        # the gold reweighted to the items the model would label, as the service does
        choice = choose_threshold(sure[fresh], right, target, confidence, stratum=stratum[fresh],
                                  pool=Pool(sure[open_items], stratum[open_items]))  # fmt: skip
        done, ask = split_items(probs[open_items], model.classes_, table["item"][open_items].to_numpy(object),
                                choice, stratum[open_items])  # fmt: skip
        write_table(done, out)
        write_table(ask, ask_out)
        left_out, n_items = int(is_gold.sum() - fresh.sum()), len(done) + len(ask)
        proven = np.isfinite(choice.threshold)
        bound = "-" if not proven else f"{choice.lower_bound:.3f} (gold accuracy {choice.gold_accuracy:.3f} on "
        if proven:
            reweighted = not np.isclose(choice.effective_n, choice.n_gold)
            bound += f"{choice.n_gold}" + (f", {choice.effective_n:.1f} reweighted to the open items)" if reweighted
                                           else ")")  # fmt: skip
        held = int(np.sum(sure[open_items] >= choice.threshold)) - len(done)
        show(f"auto-labeling with model {used}", [
            ("gold used", f"{int(fresh.sum()):,}" + (f" ({left_out} seen in training left out)" if left_out else "")),
            ("threshold", "none reaches the target: nothing automated" if not proven else f"{choice.threshold:.4f}"),
            (f"lower bound at {confidence:.0%}", bound),
            ("automated", f"{len(done):,} of {n_items:,} ({len(done) / max(n_items, 1):.1%})"
             + (f"; {held:,} more above the threshold go to humans: no gold proved their label" if held else "")),
            ("written", f"{out}, {ask_out}"),
        ])  # fmt: skip

    run(job)
