"""Pre-labels on the annotator's screen: the newest model version's top labels for a task, hidden
for a random share of leases, and the anchoring they cause.

Which leases hide their suggestions is decided per lease by the lease id's own random bits (a
uniform draw from the operating system's generator): no shared state, and a task served again to
the annotator who holds it looks the same. The lease and the answer keep the suggestions either
way, with ``suggestions_shown``, so that ``suggestion_effect`` can compare the answers given with
and without them (``crowdloop.models.prelabels.anchoring_effect``: agreement with a wrong
suggestion, shown against hidden, Newcombe's interval for the difference; median answer times).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace
from crowdloop.models.prelabels import anchoring_effect
from crowdloop.service.database import Executor
from crowdloop.service.types import SuggestionMeasure
from crowdloop.store import learning as sql

_DRAW_BITS = 52
MEASURED_ANSWERS = 5_000
"""The newest answers of each kind (to gold items, to reviewed items) the measures read: progress
stays cheap on a large project, and the intervals are narrow long before."""
BOOTSTRAP = 500
"""Bootstrap replicates of the time ratio's interval."""


def top_suggestions(codes: list[int], probs: list[float], labels: LabelSpace, k: int) -> list[dict]:
    """The ``k`` most probable of a stored prediction's labels, as ``{"label", "probability"}``."""
    top = sorted(zip(codes, probs, strict=True), key=lambda x: -x[1])[:k]
    return [{"label": labels.name(code), "probability": round(float(p), 4)} for code, p in top]


def shows_suggestions(lease_id: str, hide_rate: float) -> bool:
    """Whether the lease shows its suggestions: False for a share ``hide_rate`` of lease ids (hex)."""
    draw = int(lease_id[: _DRAW_BITS // 4], 16) / 2.0**_DRAW_BITS
    return draw >= hide_rate


def suggestion_effect(db: Executor, project_id: int, labels: LabelSpace) -> list[SuggestionMeasure]:
    """The measures of ``anchoring_effect`` on the newest answers that came with suggestions, to
    gold items (truth: the gold label) and to items a reviewer settled (truth: the reviewer's
    label), ``MEASURED_ANSWERS`` of each; empty while one side (shown or hidden) has no answer."""
    rows = [
        *db.execute(sql.GOLD_SUGGESTED, {"project": project_id, "size": MEASURED_ANSWERS}).all(),
        *db.execute(sql.REVIEWED_SUGGESTED, {"project": project_id, "size": MEASURED_ANSWERS}).all(),
    ]
    rows = [r for r in rows if r.suggestions]
    if not rows:
        return []
    frame = pd.DataFrame(
        {
            "label": labels.decode(np.array([r.label for r in rows], dtype=np.int64)).astype(str),
            "suggested": [str(r.suggestions[0]["label"]) for r in rows],
            "shown": [bool(r.suggestions_shown) for r in rows],
            "truth": labels.decode(np.array([r.truth for r in rows], dtype=np.int64)).astype(str),
            "seconds": [np.nan if r.duration_ms is None else r.duration_ms / 1000 for r in rows],
        }
    )
    try:
        table = anchoring_effect(frame, n_boot=BOOTSTRAP)
    except InputError:  # every answer shown, or every one hidden: nothing to compare yet
        return []
    return [SuggestionMeasure(**{k: _plain(v) for k, v in row.items()}) for row in table.to_dict("records")]


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
