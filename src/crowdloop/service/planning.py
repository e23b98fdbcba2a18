r"""How much data: the learning curve of the project's model versions, the labels a target accuracy
needs, what they cost against a change of the model, and what to do (``crowdloop.planning``).

Each version of the newest version's model is a point of the curve: its accuracy on the gold items
it has predictions for (its top label against the gold label; the number of those items weighs
the point, ``fit_learning_curve``'s ``n_eval``) at the labels it trained on: its training-set size
when the service trained it, else (uploaded predictions) the gold items and the items settled
(accepted or reviewed) when it was stored. The power law $a - b n^{-c}$ with its
bootstrap band gives the labels the target needs (``planning.plan``). Prices come from the
project: a label costs what a settled item has cost so far (every paid answer, gold and reviews
included, over the settled items), an annotator hour is the crowd price of the answers one hour
holds at the median answer time (``ASSUMED_SECONDS`` when no answer was timed), and a model change
is ``engineer_hours`` of an engineer whose hour costs ``engineer_hour_ratio`` annotator hours (10-15;
``model_change_range`` gives both ends).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdloop.errors import ConflictError
from crowdloop.planning import CostModel, fit_learning_curve
from crowdloop.planning import plan as make_plan
from crowdloop.planning.curve import Interval
from crowdloop.service.database import Database
from crowdloop.service.reports import Reports
from crowdloop.service.rows import SETTLED
from crowdloop.service.types import CurvePoint, PlanRange, PlanReport
from crowdloop.store import learning as sql
from crowdloop.store.schema import utcnow

if TYPE_CHECKING:
    from crowdloop.service.projects import Projects

ASSUMED_SECONDS = 30.0
"""Seconds per answer assumed when no answer was timed."""
ENGINEER_RATIO = (10.0, 15.0)
"""An ML engineer's hour in annotator hours: the range, and its middle as the default."""
TIMES_READ = 5_000


class Planning:
    """``plan``: how much data, from the project's model versions."""

    def __init__(self, db: Database, projects: Projects, reports: Reports) -> None:
        self.db, self.projects, self.reports = db, projects, reports

    def plan(
        self,
        project_id: int,
        *,
        target: float | None = None,
        engineer_hours: float = 80.0,
        engineer_hour_ratio: float = sum(ENGINEER_RATIO) / 2,
        plot: str | Path | None = None,
        n_boot: int = 200,
    ) -> PlanReport:
        """The learning curve of the model versions, the labels ``target`` accuracy (default: the
        policy's target) needs, their cost against a model change, and the recommendation (see the
        module docstring); ``plot``: where to write the picture (PNG, needs the ``plot`` extra).
        ``ConflictError`` while fewer than 3 versions with gold predictions, at 3 label counts, exist."""
        info = self.projects.get_project(project_id)
        target = info.policy.target if target is None else float(target)
        model, points = self.db.read(lambda s: _curve_points(s, project_id))
        counts = {p.labels for p in points}
        if len(counts) < 3:
            raise ConflictError(
                f"a learning curve needs model versions at 3 label counts with predictions for gold items; "
                f"project {project_id} has {len(points)} version(s) at {len(counts)} label count(s): store "
                "the predictions of more versions, trained as labels come in"
            )
        progress = self.reports.progress(project_id)
        seconds, labels_now = self.db.read(lambda s: _times_and_labels(s, project_id))
        settled = sum(progress.status_counts.get(s, 0) for s in SETTLED)
        prices = info.policy.prices
        per_label = progress.cost / settled if settled else prices.crowd * max(info.policy.min_overlap, 1)
        hour = prices.crowd * 3600.0 / seconds
        costs = CostModel(per_label, hour, engineer_hour_ratio, engineer_hours)
        curve = fit_learning_curve(
            [p.labels for p in points], [p.accuracy for p in points], n_eval=[p.gold for p in points], n_boot=n_boot
        )
        result = make_plan(curve, target, costs, labels_now)
        if plot is not None:
            from crowdloop.planning.plot import plot_learning_curve

            plot_learning_curve(curve, plot, target=target)
        return PlanReport(
            project_id=project_id,
            model=model,
            points=points,
            curve={"a": curve.a, "b": curve.b, "c": curve.c},
            asymptote=_range(curve.asymptote),
            target=target,
            current_labels=labels_now,
            current_accuracy=_range(result.current_accuracy),
            labels_needed=_range(result.labels_needed),
            data_cost=_range(result.data_cost),
            price_per_label=per_label,
            annotator_hour_price=hour,
            seconds_per_answer=seconds,
            model_change_cost=result.model_change_cost,
            model_change_range=[engineer_hours * r * hour for r in ENGINEER_RATIO],
            recommendation=result.recommendation,
            reason=result.reason,
        )


def _curve_points(db: Any, project_id: int) -> tuple[str | None, list[CurvePoint]]:
    """The versions of the newest version's model with gold predictions, as curve points."""
    versions = db.execute(sql.MODEL_VERSIONS, {"project": project_id}).all()
    if not versions:
        return None, []
    name = versions[-1].name
    gold = int(db.execute(sql.GOLD_COUNT, {"project": project_id}).scalar())
    points = []
    for v in (v for v in versions if v.name == name):  # a few versions: one statement each
        rows = db.execute(sql.GOLD_PREDICTED, {"model": v.id}).all()
        if not rows:
            continue
        right = sum(int(r.labels[int(np.argmax(r.probs))] == r.truth) for r in rows)
        labels = v.training_size
        if not labels:  # uploaded: what it could have trained on
            labels = gold + int(db.execute(sql.SETTLED_BY, {"project": project_id, "at": v.created_at}).scalar())
        points.append(CurvePoint(v.version, labels, right / len(rows), len(rows)))
    return name, points


def _times_and_labels(db: Any, project_id: int) -> tuple[float, int]:
    """The median seconds of the newest timed answers, and the labels the project has now."""
    times = db.execute(sql.ANSWER_TIMES, {"project": project_id, "size": TIMES_READ}).scalars().all()
    seconds = float(np.median(times)) / 1000 if times else ASSUMED_SECONDS
    labels = int(db.execute(sql.GOLD_COUNT, {"project": project_id}).scalar()) + int(
        db.execute(sql.SETTLED_BY, {"project": project_id, "at": utcnow()}).scalar()
    )
    return max(seconds, 1e-3), labels


def _range(value: Interval) -> PlanRange:
    """An interval for JSON: an unbounded end is None."""
    return PlanRange(*(None if not math.isfinite(x) else float(x) for x in (value.estimate, value.low, value.high)))
