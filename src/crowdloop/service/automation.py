r"""Labels without humans, and the samples and audits that keep them honest.

A model version's threshold is proven on gold (``models.autolabel.choose_threshold``: the
Clopper-Pearson lower bound of the accuracy above it, the gold reweighted to the items it would
label, is at least the project's target), but every version of a project is tested on the same
gold, so across some fifteen versions one below the target passes by luck in 35-49% of projects
(``bench/bench_version_multiplicity.py``). On the Flipkart sample through the API a version trained
on 524 labels passed on 77 gold items, all right, and labelled 749 items .945 right.

So a version proven on gold labels nothing until it is *confirmed* on a fresh sample
(``draw_sample``): of the untouched open items above its threshold (in the strata the gold proved),
$m$ drawn at random (by a hash of the item and version, so a rerun draws the same) go to people
first (``consensus.priority.ahead_of_all``) and blind (without the version's vote or suggestion).
$m$ is the fewest with which a sample can prove the target on its own, all right
(``fewest_passing``: 53 at .97), or the share ``audit_rate`` of the items if that is more: at the
same level, a sample of 99 that may hold one wrong item passes a version 99% right a little more
often (.74 against .60) but takes 120 people's labels per confirmed version against 70, and 290
against 130 for one at the target itself (simulated, each sample stopped at its verdict). The
sample's test is the gold's, at a fixed size: it passes when the Clopper-Pearson lower bound of its
right share reaches the target (``sample_verdict``, decided as soon as the items still unsettled
cannot change the outcome; those of a failed sample are released then, to be predicted, voted and
served as any item: blind, an item needs more answers and reaches a reviewer more often). A version
that passes labels its untouched items above the threshold (``accepted``, source ``model``, no human
answer) and every such item predicted later, of which a share ``audit_rate`` is audited the same
way; one that fails labels nothing, and automation stops (``projects.automation_stopped`` = the
version) until a newer version proves itself. The bench above puts some version below the target
proven in 9-12% of projects this way, for about 40% of the items labelled by the model.
``audit_rate`` 0 turns both the sample and the audit off: the gold alone decides.

An audited or sampled item the crowd would accept on another label than the model's goes to a
reviewer first (``item_decisions.audit_disputes``), so that the outcome is the truth and not the
crowd's own errors. The watch lasts as long as a confirmed version's labels do: when the sample and
audit together are evidence that its labels are below the target (the upper bound of their right
share, at the same level, falls below it) the labels the version gave are taken back (their items
go to people; the refit that follows decides and weighs them) and, if it is in use, automation
stops; an ``automation_stopped`` event gives the figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crowdloop.consensus.priority import ahead_of_all, highest
from crowdloop.models.autolabel import (
    automation_stratum,
    clopper_pearson_lower,
    clopper_pearson_upper,
    fewest_passing,
)
from crowdloop.service.database import Database
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, WRITE_PAGE, log_event, project_row
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


def sample_size(audit_rate: float, pool_n: int, target: float) -> int:
    """The items a version's confirming sample takes of the ``pool_n`` it could label: as many as
    prove the target on their own, all right (``fewest_passing``: 53 at .97), or the share
    ``audit_rate`` if that is more (module docstring)."""
    return max(fewest_passing(target, CONFIDENCE_LEVEL), math.ceil(audit_rate * pool_n))


def sample_verdict(right: int, settled: int, drawn: int, target: float) -> bool | None:
    """The test of a sample of ``drawn`` items, ``settled`` of them settled by people and ``right``
    of those the model's label: True when the lower bound reaches ``target`` even if every item
    still unsettled proves wrong, False when it cannot even if every one proves right, None while
    the outcome is open."""
    alpha = 1 - CONFIDENCE_LEVEL
    if clopper_pearson_lower(right, drawn, alpha) >= target:
        return True
    if clopper_pearson_lower(right + drawn - settled, drawn, alpha) < target:
        return False
    return None


def confirmed(confirmed_at: Any, audit_rate: float) -> bool:
    """Whether a version may label: its sample passed (``confirmed_at``), or the project takes no
    samples (``audit_rate`` 0)."""
    return confirmed_at is not None or audit_rate <= 0


def automation_allowed(metrics: dict[str, Any] | None, version_id: int, stopped: int | None) -> bool:
    """The version proved a threshold on gold and automation was not stopped at it or later."""
    return bool(metrics) and metrics.get("threshold") is not None and (stopped is None or stopped < version_id)


class Automation:
    """Labels without humans (``split_sure``, ``label_confirmed``), the confirming sample
    (``draw_sample``) and the watch (``check_audit``, ``audit_figures``)."""

    def __init__(self, db: Database, config: ProjectConfig) -> None:
        self.db, self.config = db, config

    def _sure(self, project: Any, metrics: dict, confidence: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Above the version's threshold, and of a stratum its gold proved."""
        sure = confidence >= metrics["threshold"]
        if metrics.get("threshold_strata") is not None:
            sure &= np.isin(automation_stratum(self.config.labels(project), label), metrics["threshold_strata"])
        return sure

    def _untouched(self, session: Session, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` no person has answered nor holds, locked (others' locks skipped)."""
        if not len(ids):
            return np.zeros(0, dtype=bool)
        statement = self.db.locked(mq.UNTOUCHED, skip=True)
        return np.isin(ids, list(session.execute(statement, {"items": ids.tolist()}).scalars()))

    def split_sure(self, project_id: int, row: dict, ids: np.ndarray, probs: np.ndarray, fence: Any) -> np.ndarray:
        """One page of a version's probabilities for open items, in one transaction: once the
        version is confirmed, its sure and untouched items are labelled by the model or audited;
        the others get the prediction (which votes and suggests; a sure one is labelled when the
        version is confirmed, ``label_confirmed``). Returns (predicted, automated, audited)."""
        confidence, label = probs.max(axis=1), probs.argmax(axis=1)
        metrics = row.get("metrics") or {}

        def work(session: Session) -> np.ndarray:
            fence(session)
            project = project_row(session, project_id)
            sure = np.zeros(len(ids), dtype=bool)
            if automation_allowed(metrics, row["id"], project.automation_stopped) and confirmed(
                row.get("confirmed_at"), project.audit_rate
            ):
                sure = self._sure(project, metrics, confidence, label)
                sure[sure] = self._untouched(session, ids[sure])
            audit = sure & (audit_draw(ids, row["id"]) < project.audit_rate)
            model = sure & ~audit
            self._label(session, project, row, ids[model], label[model], confidence[model])
            self._audit(session, project, row["id"], ids[audit], label[audit], confidence[audit])
            store_prediction_page(session, row["id"], ids[~sure], probs[~sure])
            return np.array([int((~sure).sum()), int(model.sum()), int(audit.sum())])

        return self.db.run_page(work)

    def _label(self, session: Session, project: Any, row: dict, ids: np.ndarray, label: np.ndarray,
               confidence: np.ndarray) -> None:  # fmt: skip
        """The items ``ids`` settled on the version's labels, no human answer, with their events."""
        if not len(ids):
            return
        now, labels = utcnow(), self.config.labels(project)
        session.execute(mq.MODEL_LABEL, [
            {"item": int(i), "label": int(k), "confidence": float(c), "version": row["id"], "now": now}
            for i, k, c in zip(ids, label, confidence, strict=True)
        ])  # fmt: skip
        threshold = row["metrics"]["threshold"]
        reason = f"model {MODEL_NAME} {row['version']}: confidence >= {threshold:.4f} (proven on gold)"
        if row.get("confirmed_at") is not None:
            reason += " and on a sample"
        session.execute(q.NEW_EVENTS, [
            {"project_id": project.id, "item_id": int(i), "annotator_id": None, "kind": "accepted", "created_at": now,
             "detail": {"from": "more", "label": labels.name(int(k)), "confidence": float(c), "answers": 0,
                        "source": "model", "version": row["version"], "reason": reason}}
            for i, k, c in zip(ids, label, confidence, strict=True)
        ])  # fmt: skip

    def _audit(self, session: Session, project: Any, version_id: int, ids: np.ndarray, label: np.ndarray,
               confidence: np.ndarray) -> None:  # fmt: skip
        """The items ``ids`` sent to people, blind (any prediction of the version removed) and
        first, to judge the version's ``label``."""
        if not len(ids):
            return
        removed = session.execute(mq.DROP_PREDICTIONS, {"version": version_id, "items": ids.tolist()}).rowcount
        if removed:
            session.execute(mq.COUNT_PREDICTIONS, {"version_id": version_id, "added": -removed})
        now = utcnow()
        session.execute(mq.NEW_AUDITS, [
            {"item_id": int(i), "project_id": project.id, "model_version_id": version_id, "label": int(k),
             "confidence": float(c), "created_at": now}
            for i, k, c in zip(ids, label, confidence, strict=True)
        ])  # fmt: skip
        # unanswered and with no vote of the version, the item scores the most any can
        price = self.config.policy(project).prices.crowd
        first = float(ahead_of_all(highest(price), price))
        session.execute(mq.AUDIT_PRIORITY, [{"item": int(i), "priority": first} for i in ids])

    def _sure_predicted(self, project: Any, row: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The untouched open items that hold the version's prediction above its threshold: ids,
        labels and confidences."""
        ids, label, confidence = [], [], []
        last = 0
        while True:
            rows = self.db.read(
                lambda s, last=last: s.execute(
                    mq.CONFIRMABLE, {"version": row["id"], "last": last, "limit": PAGE}
                ).all()
            )
            if not rows:
                break
            last = rows[-1].id
            ids.append(np.array([r.id for r in rows], dtype=np.int64))
            label.append(np.array([r.labels[0] for r in rows], dtype=np.int64))
            confidence.append(np.array([r.probs[0] for r in rows], dtype=np.float64))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        ids, label, confidence = np.concatenate(ids), np.concatenate(label), np.concatenate(confidence)
        sure = self._sure(project, row["metrics"], confidence, label)
        return ids[sure], label[sure], confidence[sure]

    def draw_sample(self, project_id: int, fence: Any) -> int:
        """The confirming sample of the version in use, when it proved a threshold, awaits
        confirmation and has none yet: ``sample_size`` of its sure untouched items, those of the
        smallest hash draws, their predictions removed (people judge them blind), served first.
        Only when it leaves the version at least as many items to label as it takes: a sampled
        item loses at most the model's vote, one answer, and a labelled item saves at least one.
        Returns the items drawn."""
        project = self.db.read(lambda s: project_row(s, project_id))
        row = self._version_in_use(project)
        if row is None or confirmed(row["confirmed_at"], project.audit_rate) or self._drawn(project_id).get(row["id"]):
            return 0
        ids, label, confidence = self._sure_predicted(project, row)
        size = sample_size(project.audit_rate, len(ids), self.config.policy(project).target)
        if len(ids) < 2 * size:
            return 0
        chosen = np.argsort(audit_draw(ids, row["id"]), kind="stable")[:size]

        def work(session: Session) -> int:
            fence(session)
            picked = chosen[self._untouched(session, ids[chosen])]
            self._audit(session, project, row["id"], ids[picked], label[picked], confidence[picked])
            return len(picked)

        return self.db.run(work)

    def confirming(self, project_id: int) -> bool:
        """Whether the version in use has a sample drawn and is not confirmed yet."""
        project = self.db.read(lambda s: project_row(s, project_id))
        row = self._version_in_use(project)
        if row is None or confirmed(row["confirmed_at"], project.audit_rate):
            return False
        return bool(self._drawn(project_id).get(row["id"]))

    def _drawn(self, project_id: int) -> dict[int, int]:
        """Per model version: the items its sample and audit drew."""
        return self.db.read(lambda s: dict(s.execute(mq.AUDIT_SIZES, {"project": project_id}).all()))

    def label_confirmed(self, project_id: int, row: dict, fence: Any) -> int:
        """The sure untouched items holding a confirmed version's prediction, labelled by the model
        a page per transaction (a share ``audit_rate`` of them audited); returns the items labelled."""
        ids, label, confidence = self._sure_predicted(self.db.read(lambda s: project_row(s, project_id)), row)
        done = 0
        for start in range(0, len(ids), WRITE_PAGE):
            part = slice(start, start + WRITE_PAGE)

            def work(session: Session, part: slice = part) -> int:
                fence(session)
                project = project_row(session, project_id)
                if not automation_allowed(row["metrics"], row["id"], project.automation_stopped):
                    return 0
                page, page_label, page_confidence = ids[part], label[part], confidence[part]
                keep = self._untouched(session, page)
                audit = keep & (audit_draw(page, row["id"]) < project.audit_rate)
                model = keep & ~audit
                self._label(session, project, row, page[model], page_label[model], page_confidence[model])
                self._audit(session, project, row["id"], page[audit], page_label[audit], page_confidence[audit])
                return int(model.sum())

            done += self.db.run_page(work)
        return done

    def _version_in_use(self, project: Any) -> dict | None:
        """The newest active version, when automation is allowed at it."""
        rows = self.db.read(lambda s: s.execute(mq.SERVICE_VERSIONS, {"project": project.id, "name": MODEL_NAME}).all())
        active = [dict(r._mapping) for r in rows if r.state == "active"]
        if active and automation_allowed(active[-1]["metrics"], active[-1]["id"], project.automation_stopped):
            return active[-1]
        return None

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
                at_settled=m.get("at_settled", 0), at_automated=m.get("at_automated", 0), confirmed_at=r.confirmed_at,
            ))  # fmt: skip
        active = [r for r in rows if r.state == "active"]
        audit = None
        if active:
            current = active[-1]
            n, right = self.audit_figures(session, project.id).get(current.id, (0, 0))
            if not automation_allowed(current.metrics, current.id, project.automation_stopped):
                state = "stopped" if project.automation_stopped is not None else "off"
            else:
                state = "on" if confirmed(current.confirmed_at, project.audit_rate) else "confirming"
            bound = float(clopper_pearson_lower(right, n, 1 - CONFIDENCE_LEVEL)) if n else None
            audit = AuditFigures(state, current.version, n, right, right / n if n else None, bound)
        return int(sum(labelled.values())), audit, versions

    def check_audit(self, project_id: int, fence: Any) -> str | None:
        """Judge the sample of the version in use (confirm it, and label its sure items, or stop
        automation) and watch the audit of every confirmed version that labelled items: when the
        evidence says a version's labels are below the target, take them back (module docstring)
        and, if it is the version in use, stop automation; returns the reasons for stopping (None:
        nothing stopped). A newer version does not end the watch on an older one."""
        alpha = 1 - CONFIDENCE_LEVEL

        def work(session: Session) -> tuple[list[str], dict | None]:
            fence(session)
            project = project_row(session, project_id)
            versions = session.execute(mq.SERVICE_VERSIONS, {"project": project_id, "name": MODEL_NAME}).all()
            active = [v for v in versions if v.state == "active"]
            in_use = active[-1].id if active and automation_allowed(
                active[-1].metrics, active[-1].id, project.automation_stopped) else None  # fmt: skip
            labelled = dict(session.execute(mq.MODEL_LABELLED, {"project": project_id}).all())
            audits = self.audit_figures(session, project_id)
            drawn = dict(session.execute(mq.AUDIT_SIZES, {"project": project_id}).all())
            target = self.config.policy(project).target
            reasons, passed = [], None
            for version in versions:
                n, right = audits.get(version.id, (0, 0))
                if not confirmed(version.confirmed_at, project.audit_rate):
                    if version.id != in_use:  # superseded or stopped before its verdict: nothing to judge
                        if drawn.get(version.id, 0) > n:
                            session.execute(mq.RELEASE_SAMPLE, {"version": version.id})
                        continue
                    verdict = sample_verdict(right, n, drawn[version.id], target) if drawn.get(version.id) else None
                    if verdict:
                        session.execute(mq.CONFIRM_VERSION, {"version_id": version.id, "now": utcnow()})
                        passed = {**version._mapping, "confirmed_at": utcnow()}
                        log_event(session, project_id, "automation_confirmed", {
                            "version": version.version, "sample": drawn[version.id], "settled": n,
                            "right": right, "target": target,
                        })  # fmt: skip
                    elif verdict is False:
                        session.execute(mq.RELEASE_SAMPLE, {"version": version.id})
                        reasons.append(self._stop(session, project_id, version, True, 0, (
                            f"sample: {right} of {n} labels of version {version.version} right, "
                            f"{drawn[version.id] - n} to come; its {CONFIDENCE_LEVEL:.0%} lower bound cannot "
                            f"reach the target {target}"
                        ), n=n, right=right, target=target))  # fmt: skip
                    continue
                if not n or (version.id != in_use and not labelled.get(version.id)):
                    continue  # nothing audited yet, or nothing left to stop or take back
                upper = float(clopper_pearson_upper(right, n, alpha))
                if upper >= target:
                    continue
                reopened = session.execute(
                    mq.REOPEN_MODEL_LABELS, {"project": project_id, "version": version.id, "now": utcnow()}
                ).rowcount
                reasons.append(self._stop(session, project_id, version, version.id == in_use, reopened, (
                    f"audit: {right} of {n} labels of version {version.version} right; the {CONFIDENCE_LEVEL:.0%} "
                    f"upper bound {upper:.4f} < target {target}"
                ), n=n, right=right, target=target))  # fmt: skip
            return reasons, passed

        reasons, passed = self.db.run(work)
        if passed is not None:
            self.label_confirmed(project_id, passed, fence)
        return "; ".join(reasons) or None

    @staticmethod
    def _stop(session: Session, project_id: int, version: Any, in_use: bool, reopened: int, reason: str, *,
              n: int, right: int, target: float) -> str:  # fmt: skip
        """Automation stopped at ``version`` if it is in use, with the event that says why."""
        if in_use:
            session.execute(mq.STOP_AUTOMATION, {"project": project_id, "version": version.id})
        log_event(session, project_id, "automation_stopped", {
            "version": version.version, "in_use": in_use, "audited": n, "audit_right": right, "target": target,
            "reopened": reopened, "reason": reason,
        })  # fmt: skip
        return reason
