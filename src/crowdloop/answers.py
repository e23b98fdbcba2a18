"""Answers: the (item, worker, label) table as int-coded parallel arrays.

Every algorithm works on codes; the code tables (``items``, ``workers``, ``labels``) turn results
back into the user's ids. A model's opinion enters as *soft answers*: one probability row per item.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.errors import ConfigError, InputError, UnknownLabelError
from crowdloop.labels import LabelSpace, Taxonomy

DuplicatePolicy = Literal["first", "last", "all", "error"]
DUPLICATE_POLICIES: tuple[str, ...] = ("first", "last", "all", "error")
"""What to do when a worker answered the same item more than once: keep the first answer (the
default, as crowd-kit users drop duplicates; later answers are usually retries of a submit), keep
the last (a worker who corrected themselves), keep all, or raise an error naming the rows."""


def probability_tolerance(n_labels: int) -> float:
    """How far from 1 a row of probabilities may sum and still be taken (and renormalised): 0.01,
    plus 0.0005 per label for values rounded to 3 decimals (each off by up to half a unit)."""
    return 0.01 + 0.0005 * n_labels


TEMPERATURE_BOUNDS = (1e-3, 20.0)
"""The range a learned temperature is kept in, unless stated otherwise."""

TEMPERATURE_PRIOR_ITEMS = 10.0
"""Default weight of the prior on a soft worker's log-temperature, in gold items (see ``Temperature``)."""


@dataclass(frozen=True)
class Temperature:
    r"""What is known of a soft worker's temperature $\alpha$: its probability rows vote as
    $p^\alpha$ (normalised), so $\alpha = 1$ takes them at face value, $\alpha < 1$ flattens an
    overconfident model and $\alpha \to 0$ ignores it.

    ``value`` states it (1.0: "the model is calibrated"); otherwise it is learned within ``bounds``
    (a pair ``(low, high)``), as the maximum a posteriori under a normal prior on $\alpha$
    centred at 1 that is worth ``prior_items`` gold items (``em.SoftVotes``), which keeps the estimate
    sane when few items have more than one human answer; 0 is plain maximum likelihood.
    """

    value: float | None = None
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS
    prior_items: float = TEMPERATURE_PRIOR_ITEMS

    def __post_init__(self) -> None:
        if self.value is not None and not (np.isfinite(self.value) and self.value > 0):
            raise ConfigError(f"a temperature must be a positive number, got {self.value!r}")
        low, high = self.bounds
        if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
            raise ConfigError(f"temperature bounds must satisfy 0 < low <= high, got {self.bounds!r}")
        if not (np.isfinite(self.prior_items) and self.prior_items >= 0):
            raise ConfigError(f"the temperature prior's weight must be >= 0 items, got {self.prior_items!r}")

    @classmethod
    def of(cls, spec: Temperature | float | tuple[float, float] | None) -> Temperature:
        """From a ``Temperature``, a stated value (``1.0``), bounds (``(0.5, 2.0)``) or None (learn)."""
        if spec is None:
            return cls()
        if isinstance(spec, Temperature):
            return spec
        if isinstance(spec, (tuple, list)):
            return cls(bounds=(float(spec[0]), float(spec[1])))
        return cls(value=float(spec))

    @classmethod
    def parse(cls, text: str) -> Temperature:
        """The command-line form: ``1`` (stated), ``0.5:2`` (bounds) or ``learn``."""
        text = text.strip()
        try:
            if text == "learn":
                return cls()
            if ":" in text:
                low, high = text.split(":", 1)
                return cls(bounds=(float(low), float(high)))
            return cls(value=float(text))
        except ValueError:
            raise ConfigError(f"a temperature is a number, LOW:HIGH or 'learn', got {text!r}") from None


@dataclass(frozen=True, eq=False)
class SoftAnswers:
    """Probability rows given by a model (or any soft annotator): row r is worker ``worker[r]``'s
    distribution over the true label of item ``item[r]``; ``probs`` is a CSR matrix (m x K).
    ``temperatures`` holds what the user stated about a soft worker's temperature (worker code ->
    ``Temperature``; absent: learned with the defaults)."""

    item: np.ndarray
    worker: np.ndarray
    probs: sp.csr_matrix
    temperatures: Mapping[int, Temperature] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item)

    def temperature(self, worker: int) -> Temperature:
        return self.temperatures.get(int(worker)) or Temperature()


@dataclass(frozen=True, eq=False)
class Answers:
    """Answers as parallel int32 arrays ``item``, ``worker``, ``label`` plus the code tables."""

    item: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    items: pd.Index
    workers: pd.Index
    labels: LabelSpace
    weight: np.ndarray | None = None
    time: np.ndarray | None = None
    soft: SoftAnswers | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def n_answers(self) -> int:
        return len(self.item)

    def __len__(self) -> int:
        return self.n_answers

    def __repr__(self) -> str:
        soft = f", {len(self.soft)} soft" if self.soft is not None else ""
        return (
            f"Answers({self.n_answers} answers{soft}, {self.n_items} items, "
            f"{self.n_workers} workers, {self.n_labels} labels)"
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        labels: LabelSpace | None = None,
        task: str = "task",
        worker: str = "worker",
        label: str = "label",
        weight: str | None = None,
        time: str | None = None,
        duplicates: DuplicatePolicy = "first",
        source: str | None = None,
        first_row: int | None = None,
    ) -> Answers:
        """Build from a frame with (by default) crowd-kit's columns ``task``, ``worker``, ``label``.

        ``source`` names the file the frame came from (errors then cite file lines, counting the
        header as line 1); without it errors cite 1-based frame rows. Without ``labels`` the label
        space is the sorted distinct labels.
        """
        unit = "line" if source else "row"
        first = first_row if first_row is not None else (2 if source else 1)
        source = source or "answers"
        if duplicates not in DUPLICATE_POLICIES:
            raise InputError(f"unknown duplicate policy {duplicates!r}; use one of {', '.join(DUPLICATE_POLICIES)}")
        wanted = [c for c in (task, worker, label, weight, time) if c is not None]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InputError(
                f"missing column {', '.join(repr(c) for c in missing)} "
                f"(columns are: {', '.join(map(str, frame.columns))})",
                source=source,
                hint="Name the columns with --task-column/--worker-column/--label-column.",
            )
        if len(frame) == 0:
            raise InputError("there are no answers", source=source)
        # each column is factorized once; the checks and the label lookup then run on distinct values
        item_codes, items = _factorize(frame[task])
        _require_present(item_codes, items, task, source, first, unit)
        worker_codes, workers = _factorize(frame[worker])
        _require_present(worker_codes, workers, worker, source, first, unit)
        value_codes, values = _factorize(frame[label], sort=False)
        _require_present(value_codes, values, label, source, first, unit)
        if labels is None:
            labels = LabelSpace.from_values(values)
        try:
            label_codes = labels.encode(values)[value_codes]
        except UnknownLabelError:  # again on every row, so that the error names the rows
            labels.encode(frame[label].to_numpy(), source=source, field=label, first_row=first, unit=unit)
            raise
        keep = _deduplicate(item_codes, worker_codes, len(workers), duplicates, source, first, unit)
        extra = {
            name: _numeric(frame[column], column, source, first, unit)[keep]
            for name, column in (("weight", weight), ("time", time))
            if column is not None
        }
        return cls(
            item=item_codes[keep],
            worker=worker_codes[keep],
            label=label_codes[keep],
            items=items,
            workers=workers,
            labels=labels,
            **extra,
        )

    def to_frame(self) -> pd.DataFrame:
        """Hard answers as a crowd-kit frame (``task``, ``worker``, ``label``)."""
        return pd.DataFrame(
            {
                "task": self.items.to_numpy()[self.item],
                "worker": self.workers.to_numpy()[self.worker],
                "label": self.labels.decode(self.label),
            }
        )

    def with_soft(
        self,
        worker: Hashable,
        items: pd.Index | np.ndarray | list,
        probs: np.ndarray | sp.spmatrix | pd.DataFrame,
        *,
        labels: Sequence[Hashable] | None = None,
        temperature: Temperature | float | tuple[float, float] | None = None,
        unknown_items: Literal["error", "add"] = "error",
        source: str = "probabilities",
        partial: bool = False,
    ) -> Answers:
        """Add one soft annotator (e.g. a model) giving the probability row ``probs[r]`` for ``items[r]``.

        Column j of ``probs`` is the label ``labels[j]``; by default the columns of a DataFrame, else
        the label space in order. A label no human gave joins the label space (sorted in, when the
        space is sorted). Rows must be non-negative and sum to 1 within ``probability_tolerance``
        (they are renormalised); ``partial``: rows hold only the model's top labels and sum to at
        most 1, the mass they leave shared equally by the labels they leave out (how the decision
        reads a stored prediction), and are kept as given. ``temperature`` states what is known of
        the model's temperature (``Temperature.of``: 1.0 = calibrated, ``(low, high)`` = bounds;
        None: learned). Items without hard answers are an error unless ``unknown_items="add"`` (a
        model may see items no human has).
        """
        if isinstance(probs, pd.DataFrame):
            labels = list(probs.columns) if labels is None else labels
            probs = probs.to_numpy(dtype=np.float64)
        matrix = sp.csr_matrix(probs, dtype=np.float64)
        ids = pd.Index(items)
        answers = self if labels is None else self.with_labels(labels, source=source)
        columns = np.arange(answers.n_labels) if labels is None else answers.labels.encode(list(labels))
        if matrix.shape != (len(ids), len(columns)):
            raise InputError(
                f"probabilities have shape {matrix.shape}, expected ({len(ids)} items, {len(columns)} labels)",
                source=source,
                hint="Pass labels= (the label of each column), or a DataFrame with one column per label.",
            )
        if matrix.nnz and not np.isfinite(matrix.data).all():
            rows = np.unique(np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[~np.isfinite(matrix.data)])
            raise InputError("probability is not a number", source=source, rows=(rows + 1).tolist(), unit="row")
        if matrix.nnz and matrix.data.min() < 0:
            rows = np.unique(np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[matrix.data < 0])
            raise InputError("negative probability", source=source, rows=(rows + 1).tolist(), unit="row")
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        tolerance = probability_tolerance(len(columns))
        off = np.flatnonzero(sums - 1 > tolerance if partial else np.abs(sums - 1) > tolerance)
        if off.size:
            raise InputError(
                f"probabilities must sum to {'at most ' if partial else ''}1 per item "
                f"(item {ids[off[0]]!r} sums to {sums[off[0]]:.4f})",
                source=source,
                rows=(off + 1).tolist(),
                unit="row",
            )
        matrix = sp.csr_matrix(sp.diags(1.0 / (np.maximum(sums, 1.0) if partial else sums)) @ matrix)
        if labels is not None:  # columns in label-space order
            matrix = sp.csr_matrix(
                (matrix.data, columns[matrix.indices], matrix.indptr), shape=(len(ids), answers.n_labels)
            )
            matrix.sort_indices()
        item_table = answers.items
        codes = item_table.get_indexer(ids)
        if (codes < 0).any():
            unknown = np.flatnonzero(codes < 0)
            if unknown_items == "error":
                raise InputError(
                    f"item {ids[unknown[0]]!r} has no answers",
                    source=source,
                    rows=(unknown + 1).tolist(),
                    unit="row",
                    hint="Give probabilities only for items in the answers.",
                )
            item_table = item_table.append(pd.Index(ids[unknown]).unique())
            codes = item_table.get_indexer(ids)
        worker_table = answers.workers if worker in answers.workers else answers.workers.append(pd.Index([worker]))
        code = worker_table.get_loc(worker)
        previous = answers.soft
        soft = SoftAnswers(
            item=codes.astype(np.int32),
            worker=np.full(len(ids), code, dtype=np.int32),
            probs=matrix,
            temperatures={**(previous.temperatures if previous is not None else {}), code: Temperature.of(temperature)},
        )
        if previous is not None:
            soft = replace(
                soft,
                item=np.concatenate([previous.item, soft.item]),
                worker=np.concatenate([previous.worker, soft.worker]),
                probs=sp.vstack([previous.probs, soft.probs], format="csr"),
            )
        return replace(answers, items=item_table, workers=worker_table, soft=soft)

    def with_labels(self, labels: Sequence[Hashable], *, source: str = "labels") -> Answers:
        """The same answers over a label space that also holds ``labels`` (codes remapped: the new
        labels are sorted in when the space is in sorted order, else appended)."""
        new = pd.Index(list(labels)).difference(pd.Index(self.labels.labels), sort=False)
        if new.empty:
            return self
        if isinstance(self.labels, Taxonomy):
            raise UnknownLabelError(
                f"label {new[0]!r} is not in the taxonomy", source=source, hint="Give probabilities over its labels."
            )
        current = self.labels.labels
        space = LabelSpace.from_values([*current, *new])
        if LabelSpace.from_values(current) != self.labels:
            space = LabelSpace([*current, *new])
        remap = space.encode(current).astype(np.int32)
        soft = self.soft
        if soft is not None:
            probs = sp.csr_matrix(
                (soft.probs.data, remap[soft.probs.indices], soft.probs.indptr), shape=(len(soft), len(space))
            )
            probs.sort_indices()
            soft = replace(soft, probs=probs)
        return replace(self, label=remap[self.label], labels=space, soft=soft)

    def subset(self, rows: np.ndarray) -> Answers:
        """The hard answers at ``rows`` (a boolean mask or indices) with the same code tables, so that
        codes stay comparable; soft answers are kept whole."""
        pick = {name: getattr(self, name) for name in ("weight", "time") if getattr(self, name) is not None}
        return replace(
            self,
            item=self.item[rows],
            worker=self.worker[rows],
            label=self.label[rows],
            **{name: values[rows] for name, values in pick.items()},
        )

    def encode_gold(
        self,
        gold: Mapping[Hashable, Hashable] | pd.Series | None,
        *,
        source: str = "gold",
        first_row: int = 1,
        unit: str = "row",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gold as (item codes, label codes); an item without answers or an unknown label is an error
        naming ``source`` and the row (``first_row``: the number of the first entry, 2 for a file
        with a header line, whose ``unit`` is "line")."""
        if gold is None:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32)
        series = gold if isinstance(gold, pd.Series) else pd.Series(dict(gold), dtype=object)
        if series.empty:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32)
        codes = self.items.get_indexer(series.index)
        unknown = np.flatnonzero(codes < 0)
        if unknown.size:
            raise InputError(
                f"gold item {series.index[unknown[0]]!r} is not among the answered items",
                source=source,
                rows=(unknown + first_row).tolist(),
                unit=unit,
                field="task" if unit == "line" else None,
                hint="Gold must use the same task ids as the answers.",
            )
        labels = self.labels.encode(series.to_numpy(), source=source, field="label", first_row=first_row, unit=unit)
        return codes.astype(np.int32), labels

    def answers_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def answers_per_worker(self) -> np.ndarray:
        return np.bincount(self.worker, minlength=self.n_workers)


def as_answers(data: Answers | pd.DataFrame, labels: LabelSpace | None = None) -> Answers:
    """Accept either ``Answers`` or a crowd-kit frame (``task``, ``worker``, ``label``)."""
    if isinstance(data, Answers):
        return data
    if isinstance(data, pd.DataFrame):
        return Answers.from_frame(data, labels=labels)
    raise InputError(f"expected Answers or a pandas DataFrame, got {type(data).__name__}")


def _factorize(values: pd.Series, sort: bool = True) -> tuple[np.ndarray, pd.Index]:
    """Codes (int32; -1 for a missing value) and the distinct values (sorted when they can be)."""
    try:
        codes, uniques = pd.factorize(values, sort=sort)
    except TypeError:  # ids of mixed types cannot be sorted
        codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int32), pd.Index(uniques)


def _require_present(codes: np.ndarray, uniques: pd.Index, name: str, source: str, first: int, unit: str) -> None:
    """A missing value (code -1) or a blank string is an error naming its rows."""
    empty = codes < 0
    if not pd.api.types.is_numeric_dtype(uniques):
        blank = uniques.astype(str).str.strip().to_numpy() == ""
        if blank.any():
            empty = empty | np.append(blank, False)[codes]
    if empty.any():
        raise InputError(
            "empty value", source=source, rows=(np.flatnonzero(empty) + first).tolist(), field=name, unit=unit
        )


def _numeric(column: pd.Series, name: str, source: str, first: int, unit: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise InputError(
            "expected a non-negative number",
            source=source,
            rows=(np.flatnonzero(bad) + first).tolist(),
            field=name,
            unit=unit,
        )
    return values


def _deduplicate(
    item: np.ndarray, worker: np.ndarray, n_workers: int, policy: str, source: str, first: int, unit: str
) -> np.ndarray:
    """Indices of the rows to keep under the duplicate policy (in input order)."""
    if policy == "all":
        return np.arange(len(item))
    key = item.astype(np.int64) * n_workers + worker
    ordered = np.sort(key)  # a vectorised sort is cheaper than hashing: most data has no duplicate
    if not (ordered[1:] == ordered[:-1]).any():
        return np.arange(len(item))
    pair = pd.Index(key)
    if policy == "error":
        dup = np.flatnonzero(pair.duplicated(keep="first"))
        if dup.size:
            raise InputError(
                "the worker answered this task before",
                source=source,
                rows=(dup + first).tolist(),
                unit=unit,
                hint="Choose a duplicate policy: --duplicates first|last|all.",
            )
        return np.arange(len(item))
    return np.flatnonzero(~pair.duplicated(keep=policy))
