"""The error hierarchy: every failure a user can cause says what is wrong, where, and what to do."""

from __future__ import annotations

from collections.abc import Sequence


class CrowdloopError(Exception):
    """Base class of every error crowdloop raises on purpose."""


class InputError(CrowdloopError):
    """Bad input data: names the source (file or frame), the rows and the field."""

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        rows: Sequence[int] | None = None,
        field: str | None = None,
        hint: str | None = None,
        unit: str = "line",
    ) -> None:
        self.problem = problem
        self.source = source
        self.rows = list(rows) if rows is not None else []
        self.field = field
        self.hint = hint
        self.unit = unit
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            more = f" and {len(self.rows) - 5} more" if len(self.rows) > 5 else ""
            noun = self.unit if len(self.rows) == 1 else f"{self.unit}s"
            where.append(f"{noun} {shown}{more}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = f"{', '.join(where)}: {self.problem}" if where else self.problem
        return f"{text}. {self.hint}" if self.hint else text


class UnknownLabelError(InputError):
    """A label that is not in the project's label space or taxonomy."""


class TooLargeError(InputError):
    """Input over a size limit (bytes, lines, rows or columns, counted after decompression)."""


class TaxonomyError(InputError):
    """A malformed taxonomy: unknown parent, duplicate id or path, empty line content."""


class ConfigError(CrowdloopError):
    """An option or parameter with a value that cannot work."""


class NotFoundError(CrowdloopError):
    """A project, item, annotator or lease that does not exist (or is not visible to the caller)."""


class AuthError(CrowdloopError):
    """A missing, unknown or revoked API token."""


class ForbiddenError(CrowdloopError):
    """An authenticated annotator whose role or status does not allow the action (e.g. banned)."""


class ConflictError(CrowdloopError):
    """The action clashes with the stored state: a duplicate name, an expired or finished lease."""
