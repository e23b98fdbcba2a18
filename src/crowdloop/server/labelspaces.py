"""Label spaces from request bodies and uploads, read with the same code as files: a label list, or
a taxonomy of ``A > B > C`` paths or Google Product Taxonomy lines ``ID - A > B > C``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace, Taxonomy


def read_label_space(text: str, source: str, *, taxonomy: bool = False) -> LabelSpace:
    """The lines of ``text`` as a taxonomy (``taxonomy=True``) or as what ``LabelSpace.read`` finds
    (a list, or a taxonomy when the lines are paths). Errors name ``source`` and the line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.txt"
        path.write_text(text, encoding="utf-8")
        try:
            return Taxonomy.read(path) if taxonomy else LabelSpace.read(path)
        except InputError as exc:
            raise type(exc)(
                exc.problem, source=source, rows=exc.rows, field=exc.field, hint=exc.hint, unit=exc.unit
            ) from None
