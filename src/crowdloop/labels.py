"""Label spaces: K labels with stable integer codes, and taxonomies (trees of labels).

A ``LabelSpace`` maps user labels to codes ``0..K-1`` and back. A ``Taxonomy`` is a label
space whose labels are tree nodes (``A > B > C`` paths); any node, inner or leaf, is a valid
label, so a worker who only knows "Electronics > Audio" can say so.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crowdloop.errors import InputError, TaxonomyError, UnknownLabelError

PATH_SEPARATOR = " > "
MAX_TAXONOMY_DEPTH = 64
"""The deepest path a taxonomy may hold (the Google Product Taxonomy's is 7)."""
_INTEGER = re.compile(r"^-?\d+$")
_GOOGLE_LINE = re.compile(r"^\s*(\d+)\s+-\s+(.*\S)\s*$")


class LabelSpace:
    """K distinct labels with stable integer codes (the order given)."""

    def __init__(self, labels: Iterable[Hashable], *, source: str | None = None) -> None:
        labels = list(labels)
        if not labels:
            raise InputError("the label space is empty", source=source, hint="Give at least one label.")
        index = pd.Index(labels)
        empty = [i + 1 for i, label in enumerate(labels) if _is_empty(label)]
        if empty:
            raise InputError("empty label", source=source, rows=empty)
        duplicated = np.flatnonzero(index.duplicated()) + 1
        if duplicated.size:
            raise InputError(f"duplicate label {labels[duplicated[0] - 1]!r}", source=source, rows=duplicated.tolist())
        self._index = index
        self._all_str = all(isinstance(label, str) for label in labels)

    @classmethod
    def from_values(cls, values: Iterable[Hashable]) -> LabelSpace:
        """The sorted distinct values (the order crowd-kit uses for its columns)."""
        values = values if isinstance(values, (pd.Series, pd.Index, np.ndarray)) else np.asarray(values, dtype=object)
        distinct = pd.unique(pd.Series(values).dropna()).tolist()  # Python scalars, whatever the dtype
        if all(isinstance(v, str) and _INTEGER.match(v) for v in distinct):
            return cls(sorted(distinct, key=int))
        return cls(sorted(distinct, key=_sort_key))

    @property
    def labels(self) -> list[Hashable]:
        return self._index.tolist()

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self):
        return iter(self._index)

    def __contains__(self, label: object) -> bool:
        return bool((self._lookup(pd.Index([label])) >= 0)[0])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._index.equals(other._index)

    def __hash__(self) -> int:
        return hash(tuple(self._index))

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._index[:5])
        return f"{type(self).__name__}({len(self)} labels: {head}{', ...' if len(self) > 5 else ''})"

    def code(self, label: Hashable) -> int:
        """The code of one label; raises ``UnknownLabelError`` when it is not in the space."""
        return int(self.encode([label])[0])

    def encode(
        self,
        values: Sequence[Hashable] | np.ndarray | pd.Series,
        *,
        source: str | None = None,
        field: str | None = None,
        first_row: int = 1,
        unit: str = "line",
    ) -> np.ndarray:
        """Codes (int32) of many labels; one error names every row whose label is unknown.

        ``first_row`` is the number reported for ``values[0]`` (2 for a CSV with a header line).
        """
        values = values if isinstance(values, (pd.Series, np.ndarray)) else np.asarray(values, dtype=object)
        # look up each distinct value once (a column of a million answers has a handful of labels)
        value_codes, distinct = pd.factorize(values)
        codes = np.append(self._lookup(pd.Index(np.asarray(distinct, dtype=object))), -1)[value_codes]
        unknown = np.flatnonzero(codes < 0)
        if unknown.size:
            bad = list(dict.fromkeys(np.asarray(values, dtype=object)[unknown[:20]]))[:3]
            raise UnknownLabelError(
                f"label {', '.join(repr(b) for b in bad)} is not in the label space of {len(self)} labels",
                source=source,
                rows=(unknown + first_row).tolist(),
                field=field,
                unit=unit,
                hint="Check the spelling against the label list or taxonomy in use.",
            )
        return codes.astype(np.int32)

    def decode(self, codes: np.ndarray | Sequence[int]) -> np.ndarray:
        """Labels of codes, as an object array."""
        return self._values[np.asarray(codes, dtype=np.intp)]

    def credit(self, answers: np.ndarray | Sequence[int], truths: np.ndarray | Sequence[int]) -> np.ndarray:
        """How right each answer (code) is about its true label (code), in [0, 1]: here 1 for the
        true label and 0 for any other (a taxonomy also credits answers on the true path)."""
        return (np.asarray(answers) == np.asarray(truths)).astype(np.float64)

    def name(self, code: int) -> str:
        """The text of one label code (what the API shows and takes)."""
        return str(self._values[code])

    @functools.cached_property
    def _values(self) -> np.ndarray:
        return self._index.to_numpy(dtype=object)

    def _lookup(self, values: pd.Index) -> np.ndarray:
        codes = self._index.get_indexer(values)
        if self._all_str and (codes < 0).any():
            retry = self._index.get_indexer(values.astype(str).str.strip())
            codes = np.where(codes < 0, retry, codes)
        return codes

    @classmethod
    def read(cls, path: str | Path) -> LabelSpace:
        """A label list (one per line) or a taxonomy (``A > B`` paths or ``ID - A > B`` lines)."""
        lines = _read_lines(path)
        if any(PATH_SEPARATOR.strip() in text or _GOOGLE_LINE.match(text) for _, text in lines):
            return Taxonomy.read(path)
        return cls([text for _, text in lines], source=str(path))


class Taxonomy(LabelSpace):
    """A tree of labels. Each label is a path ``A > B > C``; its ancestors are labels too.

    Arrays (indexed by code): ``parent`` (-1 for a top-level node), ``depth`` (1 for top level),
    ``path_codes`` (K x max_depth: the codes from the top-level ancestor down to the node, -1 after).
    """

    def __init__(
        self,
        paths: Sequence[Sequence[str]],
        *,
        ids: Sequence[str] | None = None,
        source: str | None = None,
    ) -> None:
        _check_depth([len(p) for p in paths], source)
        names = [PATH_SEPARATOR.join(p) for p in paths]
        super().__init__(names, source=source)
        code_of = {name: i for i, name in enumerate(names)}
        self.parent = np.array(
            [code_of.get(PATH_SEPARATOR.join(p[:-1]), -1) if len(p) > 1 else -1 for p in paths], dtype=np.int32
        )
        orphans = [i + 1 for i, p in enumerate(paths) if len(p) > 1 and self.parent[i] < 0]
        if orphans:
            raise TaxonomyError(
                f"unknown parent {PATH_SEPARATOR.join(paths[orphans[0] - 1][:-1])!r}",
                source=source,
                rows=orphans,
                hint="Every inner node must be listed before its children.",
            )
        self.depth = np.array([len(p) for p in paths], dtype=np.int32)
        self.path_codes = np.full((len(paths), int(self.depth.max())), -1, dtype=np.int32)
        for depth in range(1, self.path_codes.shape[1] + 1):  # a node's path is its parent's and itself
            nodes = np.flatnonzero(self.depth == depth)
            self.path_codes[nodes, : depth - 1] = self.path_codes[self.parent[nodes], : depth - 1]
            self.path_codes[nodes, depth - 1] = nodes
        self.ids = list(ids) if ids is not None else None
        self._aliases = pd.Index(self.ids) if self.ids is not None else None
        self.is_leaf = np.ones(len(paths), dtype=bool)
        self.is_leaf[self.parent[self.parent >= 0]] = False

    @classmethod
    def from_paths(
        cls, paths: Iterable[str], *, separator: str = PATH_SEPARATOR, source: str | None = None
    ) -> Taxonomy:
        """A taxonomy from ``A > B > C`` strings; missing ancestors are added, duplicates dropped."""
        nodes: dict[tuple[str, ...], None] = {}
        for row, text in enumerate(paths, start=1):
            parts = tuple(part.strip() for part in str(text).split(separator.strip()))
            _check_depth([len(parts)], source, [row])
            if any(not part for part in parts):
                raise TaxonomyError("empty path segment", source=source, rows=[row])
            for d in range(1, len(parts) + 1):
                nodes.setdefault(parts[:d], None)
        return cls(sorted(nodes, key=lambda p: (len(p), p)), source=source)

    @classmethod
    def read(cls, path: str | Path) -> Taxonomy:
        """Read ``ID - A > B > C`` lines (Google Product Taxonomy) or ``A > B > C`` lines.

        With IDs the file must list every parent before its children and each ID and path once;
        a plain path file may omit inner nodes (they are added).
        """
        source = str(path)
        lines = _read_lines(path)
        google = [(row, _GOOGLE_LINE.match(text)) for row, text in lines]
        if not any(match for _, match in google):
            return cls.from_paths((text for _, text in lines), source=source)
        bad = [row for row, match in google if match is None]
        if bad:
            raise TaxonomyError("expected 'ID - A > B > C'", source=source, rows=bad)
        ids = [match.group(1) for _, match in google]
        paths = [tuple(part.strip() for part in match.group(2).split(PATH_SEPARATOR.strip())) for _, match in google]
        rows = [row for row, _ in google]
        _check_depth([len(p) for p in paths], source, rows)
        for kind, keys in (("id", ids), ("path", [PATH_SEPARATOR.join(p) for p in paths])):
            dup = np.flatnonzero(pd.Index(keys).duplicated())
            if dup.size:
                raise TaxonomyError(f"duplicate {kind} {keys[dup[0]]!r}", source=source, rows=[rows[i] for i in dup])
        empty = [rows[i] for i, p in enumerate(paths) if any(not part for part in p)]
        if empty:
            raise TaxonomyError("empty path segment", source=source, rows=empty)
        known: set[tuple[str, ...]] = set()
        for row, p in zip(rows, paths, strict=True):
            if len(p) > 1 and p[:-1] not in known:
                raise TaxonomyError(
                    f"unknown parent {PATH_SEPARATOR.join(p[:-1])!r}",
                    source=source,
                    rows=[row],
                    hint="Every inner node must be listed before its children.",
                )
            known.add(p)
        return cls(paths, ids=ids, source=source)

    def _lookup(self, values: pd.Index) -> np.ndarray:
        codes = super()._lookup(values)
        if self._aliases is not None and (codes < 0).any():
            by_id = self._aliases.get_indexer(values.astype(str).str.strip())
            codes = np.where(codes < 0, by_id, codes)
        return codes

    @property
    def max_depth(self) -> int:
        return self.path_codes.shape[1]

    def ancestors(self, code: int) -> list[int]:
        """Codes of the ancestors of ``code``, nearest first (excluding the node)."""
        return self.path_codes[code, : self.depth[code] - 1][::-1].tolist()

    def ancestor_at(self, codes: np.ndarray, depth: int) -> np.ndarray:
        """The ancestor at ``depth`` (1 = top level) of each code; the node itself when shallower."""
        codes = np.asarray(codes)
        column = self.path_codes[codes, min(depth, self.max_depth) - 1]
        return np.where(column >= 0, column, codes).astype(np.int32)

    def lca_depth(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Depth of the lowest common ancestor of each pair (0 when they share no top-level node)."""
        pa, pb = self.path_codes[np.asarray(a)], self.path_codes[np.asarray(b)]
        same = (pa == pb) & (pa >= 0)
        return np.cumprod(same, axis=-1).sum(axis=-1).astype(np.int32)

    def credit(self, answers: np.ndarray | Sequence[int], truths: np.ndarray | Sequence[int]) -> np.ndarray:
        """How right each answer is about its true label, in [0, 1]: an answer on the true path
        earns the share of it that it names, $d(a) / d(t)$ for an ancestor $a$ of the truth $t$
        ("Animals" for "Animals > Birds > Owls" is a third right: right, but it says less); the
        truth itself, or a node below a true inner node, is right; a node off the path is wrong.
        An annotator who always answers a top level thus scores low, as the posterior, which
        counts an ancestor answer as agreeing with every label below it, needs."""
        a, t = np.asarray(answers), np.asarray(truths)
        lca, depth_a, depth_t = self.lca_depth(a, t), self.depth[a], self.depth[t]
        return np.where(lca == depth_a, depth_a / depth_t, np.where(lca == depth_t, 1.0, 0.0)).astype(np.float64)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Tree distance (edges between the nodes, through a virtual root) of each pair."""
        a, b = np.asarray(a), np.asarray(b)
        return (self.depth[a] + self.depth[b] - 2 * self.lca_depth(a, b)).astype(np.int32)


def _check_depth(depths: Sequence[int], source: str | None, rows: Sequence[int] | None = None) -> None:
    """``TaxonomyError`` naming the first path deeper than ``MAX_TAXONOMY_DEPTH``."""
    deep = np.flatnonzero(np.asarray(depths) > MAX_TAXONOMY_DEPTH)
    if deep.size:
        first = int(deep[0])
        raise TaxonomyError(
            f"a path {depths[first]} levels deep; a taxonomy holds at most {MAX_TAXONOMY_DEPTH}",
            source=source,
            rows=[rows[first] if rows is not None else first + 1],
        )


def _is_empty(label: object) -> bool:
    return (
        label is None
        or (isinstance(label, float) and np.isnan(label))
        or (isinstance(label, str) and not label.strip())
    )


def _sort_key(value: object) -> tuple[str, object]:
    return (type(value).__name__, value) if not isinstance(value, (int, float, np.number)) else ("", value)


def _read_lines(path: str | Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based line numbers."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", source=str(path)) from exc
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1)]
    lines = [(i, line) for i, line in lines if line and not line.startswith("#")]
    if not lines:
        raise InputError("the file has no labels", source=str(path))
    return lines
