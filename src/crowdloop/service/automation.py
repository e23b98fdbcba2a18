r"""Labels without humans, and the audit that keeps them honest.

An open item nobody has answered or holds, whose confidence under the model version in use reaches
the threshold that version proved on gold (``models.autolabel.choose_threshold``: the Clopper-Pearson
lower bound of the accuracy above it, the gold reweighted to the items it would label, is at least
the project's target) and whose predicted label is of a stratum that gold proved, is settled as ``accepted``
with source ``model`` and no human answer. A share ``audit_rate`` of those items (drawn by a hash of
the item and version, so a rerun draws the same) goes to people instead, *without* the model's vote
or suggestion, so that their label is an independent check: the audit. People are served the audit
before any other item (``consensus.priority.ahead_of_all``), since its outcome keeps or takes back
every label of the version. The share is at least the one that gives the audit as many items as a
sample needs to prove the target on its own with one wrong item (99 at .97), of the items the
version could label when it was trained (``audit_share``): the gold above a version's threshold is
what the version passed on, chosen from many versions tested on it, so it flatters the version,
and 5% of the items is too few to outweigh it. On the Flipkart sample through the API a version
trained on 524 labels passed on 77 gold items, all right, and labelled 749 items .945 right; its 41
audited items were all right (at .945, one time in ten), and the labels stood.

The audit counts the audited items people have settled and those whose label is the model's; one
the crowd would accept on another label goes to a reviewer first (``item_decisions.audit_disputes``),
so that the outcome is the truth and not the crowd's own errors, up to 1 - target of its labels,
which no model could pass. The evidence on a version's labels is the gold above its threshold
($k_g$ right of $n_g$) and the audit ($k_a$ of $n_a$); when the one-sided Clopper-Pearson lower
bound of $(k_g + k_a) / (n_g + n_a)$ falls below the target, the labels the version gave are taken
back (the evidence says they are not as right as promised, so their items go to people; the refit
that follows decides and weighs them) and, if the version is in use, automation stops
(``projects.automation_stopped`` = the version) until a newer version proves a threshold again; an
``automation_stopped`` event gives the figures. The watch lasts as long as a version's labels do,
not as long as it is the newest: on the Flipkart sample through the API a version the crowd
contradicted on 6 of its 44 audited items kept its labels (.92 right, half of the items) because
two newer versions had been trained meanwhile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crowdloop.consensus.priority import ahead_of_all, highest
from crowdloop.models.autolabel import automation_stratum, clopper_pearson_lower, fewest_passing
from crowdloop.service.database import Database
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import log_event, project_row
from crowdloop.service.training import CONFIDENCE_LEVEL, MODEL_NAME, store_prediction_page
from crowdloop.service.types import AuditFigures, ModelVersionMetrics
from crowdloop.store import model_queries as mq
from crowdloop.store import queries as q
from crowdloop.store.schema import utcnow

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def audit_draw(items: np.ndarray, version_id: int) -> np.ndarray:
    """A uniform number in [0, 1) per item and version (a multiplicative hash, Knuth's golden ratio):
    the same item and version always draw the same."""
    with np.errstate(over="ignore"):
        mixed = (np.asarray(items, dtype=np.uint64) + np.uint64(version_id) * np.uint64(1_000_003)) * _GOLDEN
    return (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)


def audit_share(audit_rate: float, pool_n: int | None, target: float) -> float:
    """The share of a version's sure items its audit takes: the project's ``audit_rate``, and at
    least as many as a sample needs to prove the target on its own with one wrong item
    (``fewest_passing``: 99 at .97) among the ``pool_n`` items the version could label when it was
    trained (module docstring). ``audit_rate`` 0: no audit."""
    if audit_rate <= 0 or not pool_n:
        return audit_rate
    return min(1.0, max(audit_rate, fewest_passing(target, CONFIDENCE_LEVEL, 1) / pool_n))


def automation_allowed(metrics: dict[str, Any] | None, version_id: int, stopped: int | None) -> bool:
    """The version proved a threshold on gold and automation was not stopped at it or later."""
    return bool(metrics) and metrics.get("threshold") is not None and (stopped is None or stopped < version_id)


class Automation:
    """Labels without humans (``split_sure``) and the audit (``check_audit``, ``audit_figures``)."""

    def __init__(self, db: Database, config: ProjectConfig) -> None:
        self.db, self.config = db, config

    def split_sure(self, project_id: int, row: dict, ids: np.ndarray, probs: np.ndarray, fence: Any) -> np.ndarray:
        """One page of a version's probabilities for open items, in one transaction: the sure and
        untouched ones are labelled by the model or audited, the others get the prediction (which
        votes and suggests). Returns (predicted, automated, audited)."""
        confidence, label = probs.max(axis=1), probs.argmax(axis=1)
        metrics = row.get("metrics") or {}

        def work(session: Session) -> np.ndarray:
            fence(session)
            project = project_row(session, project_id)
            sure = np.zeros(len(ids), dtype=bool)
            if automation_allowed(metrics, row["id"], project.automation_stopped):
                sure = confidence >= metrics["threshold"]
                if metrics.get("threshold_strata") is not None:  # only the strata the gold proved
                    labels = self.config.labels(project)
                    sure &= np.isin(automation_stratum(labels, label), metrics["threshold_strata"])
            if sure.any():
                statement = self.db.locked(mq.UNTOUCHED, skip=True)
                untouched = set(session.execute(statement, {"items": ids[sure].tolist()}).scalars())
                sure &= np.isin(ids, list(untouched))
            policy = self.config.policy(project)
            rate = audit_share(project.audit_rate, metrics.get("threshold_pool_n"), policy.target)
            audit = sure & (audit_draw(ids, row["id"]) < rate)
            model = sure & ~audit
            now = utcnow()
            if model.any():
                labels = self.config.labels(project)
                session.execute(mq.MODEL_LABEL, [
                    {"item": int(i), "label": int(k), "confidence": float(c), "version": row["id"], "now": now}
                    for i, k, c in zip(ids[model], label[model], confidence[model], strict=True)
                ])  # fmt: skip
                threshold = metrics["threshold"]
                reason = f"model {MODEL_NAME} {row['version']}: confidence >= {threshold:.4f} (proven on gold)"
                self._events(session, project_id, "accepted", [
                    (int(i), {"from": "more", "label": labels.name(int(k)), "confidence": float(c), "answers": 0,
                              "source": "model", "version": row["version"], "reason": reason})
                    for i, k, c in zip(ids[model], label[model], confidence[model], strict=True)
                ], now)  # fmt: skip
            if audit.any():
                session.execute(mq.NEW_AUDITS, [
                    {"item_id": int(i), "project_id": project_id, "model_version_id": row["id"], "label": int(k),
                     "confidence": float(c), "created_at": now}
                    for i, k, c in zip(ids[audit], label[audit], confidence[audit], strict=True)
                ])  # fmt: skip
                # unanswered and with no vote of the version, the item scores the most any can
                price = policy.prices.crowd
                first = float(ahead_of_all(highest(price), price))
                session.execute(mq.AUDIT_PRIORITY, [{"item": int(i), "priority": first} for i in ids[audit]])
            rest = ~sure
            store_prediction_page(session, row["id"], ids[rest], probs[rest])
            return np.array([int(rest.sum()), int(model.sum()), int(audit.sum())])

        return self.db.run_page(work)

    def _events(self, session: Session, project_id: int, kind: str, rows: list[tuple[int, dict]], now: Any) -> None:
        if rows:
            session.execute(q.NEW_EVENTS, [
                {"project_id": project_id, "item_id": item, "annotator_id": None, "kind": kind, "detail": detail,
                 "created_at": now}
                for item, detail in rows
            ])  # fmt: skip

    def audit_figures(self, session: Session, project_id: int) -> dict[int, tuple[int, int]]:
        """Per model version: (audited items people settled, those whose label is the model's)."""
        return {int(v): (int(n), int(k)) for v, n, k in session.execute(mq.AUDIT_OUTCOMES, {"project": project_id})}

    def model_progress(
        self, session: Session, project: Any, n_items: int
    ) -> tuple[int, AuditFigures | None, list[ModelVersionMetrics]]:
        """Items the model labelled, the audit of the version in use and every version's metrics."""
        rows = session.execute(mq.SERVICE_VERSIONS, {"project": project.id, "name": MODEL_NAME}).all()
        if not rows:
            return 0, None, []
        labelled = dict(session.execute(mq.MODEL_LABELLED, {"project": project.id}).all())
        versions = []
        for r in rows:
            m = r.metrics or {}
            versions.append(ModelVersionMetrics(
                version=r.version, state=r.state, created_at=r.created_at, training_size=r.training_size or 0,
                training_hash=r.training_hash or "", gold_n=m.get("gold_n", 0),
                gold_accuracy=m.get("gold_accuracy"), gold_ece=m.get("gold_ece"), threshold=m.get("threshold"),
                items_labelled=int(labelled.get(r.id, 0)), at_answers=m.get("at_answers", 0),
                at_cost=m.get("at_cost", 0.0), at_cost_per_item=m.get("at_cost", 0.0) / max(m.get("at_items", 0), 1),
                at_settled=m.get("at_settled", 0), at_automated=m.get("at_automated", 0),
            ))  # fmt: skip
        active = [r for r in rows if r.state == "active"]
        audit = None
        if active:
            current = active[-1]
            n, right = self.audit_figures(session, project.id).get(current.id, (0, 0))
            if automation_allowed(current.metrics, current.id, project.automation_stopped):
                state = "on"
            else:
                state = "stopped" if project.automation_stopped is not None else "off"
            bound = float(clopper_pearson_lower(right, n, 1 - CONFIDENCE_LEVEL)) if n else None
            audit = AuditFigures(state, current.version, n, right, right / n if n else None, bound)
        return int(sum(labelled.values())), audit, versions

    def check_audit(self, project_id: int, fence: Any) -> str | None:
        """Watch the audit of every version that labelled items: when the lower bound on a version's
        labels falls below the target, take back the labels it gave (module docstring) and, if it is
        the version in use, stop automation; returns the reasons (None: nothing stopped). A newer
        version does not end the watch on an older one: its labels stay only while their audit
        holds."""

        def work(session: Session) -> str | None:
            fence(session)
            project = project_row(session, project_id)
            versions = session.execute(mq.SERVICE_VERSIONS, {"project": project_id, "name": MODEL_NAME}).all()
            active = [v for v in versions if v.state == "active"]
            in_use = active[-1].id if active and automation_allowed(
                active[-1].metrics, active[-1].id, project.automation_stopped) else None  # fmt: skip
            labelled = dict(session.execute(mq.MODEL_LABELLED, {"project": project_id}).all())
            audits = self.audit_figures(session, project_id)
            target = self.config.policy(project).target
            reasons = []
            for version in versions:
                n, right = audits.get(version.id, (0, 0))
                if not n or (version.id != in_use and not labelled.get(version.id)):
                    continue  # nothing audited yet, or nothing left to stop or take back
                metrics = version.metrics
                total, correct = metrics["threshold_gold_n"] + n, metrics["threshold_gold_right"] + right
                bound = float(clopper_pearson_lower(correct, total, 1 - CONFIDENCE_LEVEL))
                if bound >= target:
                    continue
                reason = (
                    f"audit: {right} of {n} labels of version {version.version} right; with the gold above "
                    f"its threshold ({correct} of {total}) the {CONFIDENCE_LEVEL:.0%} lower bound {bound:.4f} "
                    f"< target {target}"
                )
                if version.id == in_use:
                    session.execute(mq.STOP_AUTOMATION, {"project": project_id, "version": version.id})
                reopened = session.execute(
                    mq.REOPEN_MODEL_LABELS, {"project": project_id, "version": version.id, "now": utcnow()}
                ).rowcount
                log_event(session, project_id, "automation_stopped", {
                    "version": version.version, "in_use": version.id == in_use, "audited": n, "audit_right": right,
                    "lower_bound": bound, "target": target, "reopened": reopened, "reason": reason,
                })  # fmt: skip
                reasons.append(reason)
            return "; ".join(reasons) or None

        return self.db.run(work)
