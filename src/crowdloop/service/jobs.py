"""The periodic full refit as a job over the database, never inside a request; one job of a kind
(``refit``, the model job) on a project at a time, across processes (``Claim``)."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus.fitting import CONFLICT_COLUMNS, StoredAnswers
from crowdloop.consensus.fitting import refit as fit_project
from crowdloop.errors import ConflictError
from crowdloop.service.database import Database, Executor
from crowdloop.service.item_decisions import ItemDecisions, redecide_open
from crowdloop.service.priorities import prioritize
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, log_event, project_row
from crowdloop.service.suggestions import suggestion_effect
from crowdloop.service.types import Clock, RefitReport, RefitSkipped
from crowdloop.store import queries as q
from crowdloop.store import refit_queries as rf
from crowdloop.store.schema import Project, utcnow

if TYPE_CHECKING:
    from crowdloop.service.projects import Projects

REFIT = "refit"
CLAIM_SECONDS = 60.0
"""How long a claim outlives its holder's last renewal (renewed every third of it while the job runs)."""


class ClaimLost(ConflictError):
    """Another process took over the job's claim after this one stalled: it writes nothing more."""


class Claim:
    """The right to run ``job`` on one project, held in the database (``job_claims``) so that one
    process at a time has it, whatever process asks. A thread renews it every ``seconds / 3``
    until ``release``; a holder that dies (kill -9) stops renewing, and its claim lapses after
    ``seconds`` for the next claimant to take. Every write of the job first ``check``s the claim in
    its own transaction: a holder that lost it (stalled past the expiry) writes nothing."""

    def __init__(self, db: Database, clock: Clock, project_id: int, job: str, holder: str, seconds: float) -> None:
        self.project_id, self.job, self.holder, self.seconds = project_id, job, holder, seconds
        self._db, self._clock = db, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renewing, name=f"crowdloop-{job}-claim", daemon=True)
        self._thread.start()

    def _params(self) -> dict[str, Any]:
        now = self._clock()
        return {"project": self.project_id, "kind": self.job, "claimant": self.holder, "now": now,
                "until": now + timedelta(seconds=self.seconds)}  # fmt: skip

    def _renewing(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            if not self._db.run(lambda db: db.execute(q.RENEW_CLAIM, self._params()).rowcount):
                return  # lost: the job finds out at its next check

    def check(self, db: Executor) -> None:
        """Renew the claim in the caller's transaction (``ClaimLost`` when it is no longer held)."""
        if not db.execute(q.RENEW_CLAIM, self._params()).rowcount:
            raise ClaimLost(
                f"the {self.job} of project {self.project_id} lost its claim (another {self.job} took it over "
                "after it stalled): it wrote nothing more"
            )

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def release(self) -> None:
        """Stop renewing and give the claim up (if it is still this holder's)."""
        self.stop_renewing()
        self._db.run(lambda db: db.execute(q.RELEASE_CLAIM, self._params()))


class Jobs:
    """The periodic full refit as a job over the database, never inside a request, and the claims
    of jobs (``claim``)."""

    def __init__(
        self, db: Database, config: ProjectConfig, decisions: ItemDecisions, projects: Projects, clock: Clock
    ) -> None:
        self.db, self.config, self.decisions, self.projects, self._clock = db, config, decisions, projects, clock

    def claim(self, project_id: int, job: str, *, seconds: float = CLAIM_SECONDS) -> Claim | None:
        """The claim to run ``job`` on the project for ``seconds`` past each renewal (None while
        another holder has it, in this process or any other)."""
        self.projects.get_project(project_id)  # NotFoundError
        claim_params = {"project": project_id, "kind": job, "claimant": secrets.token_hex(16), "now": self._clock()}
        claim_params["until"] = claim_params["now"] + timedelta(seconds=seconds)

        def take(db: Session) -> bool:
            if db.execute(q.TAKE_LAPSED_CLAIM, claim_params).rowcount:
                return True
            if db.execute(q.CLAIM_HOLDER, claim_params).first() is not None:
                return False
            db.execute(q.NEW_CLAIM, {"project_id": project_id, "job": job, "holder": claim_params["claimant"],
                                     "expires_at": claim_params["until"]})  # fmt: skip
            return True

        try:
            taken = self.db.run(take)
        except IntegrityError:  # claimed by another process between our read and our insert
            taken = False
        return Claim(self.db, self._clock, project_id, job, claim_params["claimant"], seconds) if taken else None

    def claim_refit(self, project_id: int) -> Claim:
        """The claim to refit the project, which ``refit`` uses up (``ConflictError`` while another
        refit of it runs, in this process or any other)."""
        claim = self.claim(project_id, REFIT)
        if claim is None:
            raise ConflictError(f"a refit of project {project_id} is running: it will take the latest answers")
        return claim

    def refit(self, project_id: int, *, claim: Claim | None = None) -> RefitReport:
        """Full EM refit (``crowdloop.consensus.fitting.refit``, the fit of ``crowdloop decide``, on
        every answer, gold clamped): annotator skills and their prior, the model versions'
        temperatures, the calibrator of the decision (stored as JSON), what suggestions do to answers
        (``service.suggestions``, stored for the progress: a bootstrap over thousands of answers on
        every progress request held the server's interpreter, and the annotators' requests waited),
        then every open item re-decided and weighed (``service.priorities``). A job (``crowdloop
        refit``), never inside a request.

        One refit of a project at a time: it runs under ``claim`` (from ``claim_refit``; taken here
        when None, ``ConflictError`` while another runs) and releases it when done. Two refits at
        once would each subtract the gold evidence counted since the last one."""
        claim = claim or self.claim_refit(project_id)
        try:
            return self._refit(project_id, claim)
        finally:
            claim.release()

    def refit_unless_running(self, project_id: int) -> RefitReport | RefitSkipped:
        """``refit``, or ``RefitSkipped`` when another refit of the project holds its claim (or took
        it over from this one after a stall): what a job over many projects does with a busy one."""
        claim = self.claim(project_id, REFIT)
        if claim is None:
            return RefitSkipped(project_id, "a refit of it is already running and will take the latest answers")
        try:
            return self.refit(project_id, claim=claim)
        except ClaimLost as exc:
            return RefitSkipped(project_id, str(exc))

    def _refit(self, project_id: int, claim: Claim) -> RefitReport:
        started = time.perf_counter()
        info = self.projects.get_project(project_id)
        stored, since = self._read_for_refit(project_id)
        result = fit_project(stored, info.labels, info.policy, info.rules)
        if result is None:
            return RefitReport(project_id, "none", 0, False, {}, 0, time.perf_counter() - started)
        measures = self.db.read(lambda s: suggestion_effect(s, project_id, info.labels))

        def write(session: Session) -> None:
            claim.check(session)
            project = session.get(Project, project_id)
            project.suggestion_effect = [dataclasses.asdict(m) for m in measures]
            project.calibrator = result.calibrator.to_dict() if result.calibrator is not None else None
            project.typical_skill = result.typical_skill
            project.skill_evidence = result.skill_evidence
            project.sibling_share = result.sibling_share
            project.vague_share = result.vague_share
            project.model_floor = result.model_floor
            project.skill_prior = result.prior
            project.refit_at = utcnow()
            skills = [
                {"annotator": int(a), "model_right": float(right), "model_total": float(total),
                 "right_before": since[int(a)][0], "total_before": since[int(a)][1],
                 "branch_skills": result.branch_skills.get(int(a))}
                for a, right, total in zip(result.annotators, result.right, result.total, strict=True)
            ]  # fmt: skip
            if skills:
                session.execute(rf.REFIT_SKILL, skills)
            temperatures = [{"version_id": v, "temperature": t} for v, t in result.temperatures.items()]
            if temperatures:
                session.execute(rf.SET_TEMPERATURE, temperatures)
            log_event(
                session,
                project_id,
                "refit",
                {
                    "skill_model": result.skill_model,
                    "annotators": len(result.annotators),
                    "answers": int(result.answers.sum()),
                    "calibrated": result.calibrator is not None,
                    "typical_skill": result.typical_skill,
                    "sibling_share": result.sibling_share,
                    "vague_share": result.vague_share,
                    "model_floor": result.model_floor,
                    "temperatures": {str(k): v for k, v in result.temperatures.items()},
                },
            )

        self.db.run(write)
        redecided = redecide_open(self.db, self.decisions, project_id, claim.check, job=True)
        prioritize(self.db, self.config, project_id, job=True)
        return RefitReport(
            project_id=project_id,
            skill_model=result.skill_model,
            annotators=len(result.annotators),
            calibrated=result.calibrator is not None,
            temperatures={str(k): v for k, v in result.temperatures.items()},
            items_redecided=redecided,
            seconds=time.perf_counter() - started,
            sibling_share=result.sibling_share,
            vague_share=result.vague_share,
            model_floor=result.model_floor,
        )

    def _read_for_refit(self, project_id: int) -> tuple[StoredAnswers, dict[int, tuple[float, float]]]:
        """Everything the refit needs, read in fixed-size pages: answers, gold and reviewed
        labels, the voting model rows, and each annotator's gold evidence counted so far."""

        def pages(statement: Any, **params: Any) -> list:
            out, last = [], 0
            while True:
                page = self.db.read(
                    lambda s, last=last: s.execute(statement, {**params, "last": last, "size": PAGE * 10}).all()
                )
                out.extend(page)
                if len(page) < PAGE * 10:
                    return out
                last = page[-1][0]

        answers = pages(rf.ANSWERS_PAGE, project=project_id)
        gold = pages(rf.GOLD_PAGE, project=project_id)
        since = {
            a: (r, t) for a, r, t in self.db.read(lambda s: s.execute(rf.GOLD_SINCE, {"project": project_id}).all())
        }
        versions = self.db.read(lambda s: self.decisions.voting_versions(s, project_row(s, project_id)))
        soft_rows = []
        for version_id in versions:
            soft_rows += [
                (version_id, item, label, prob)
                for _, item, labels, probs in pages(rf.PREDICTIONS_PAGE, version=version_id)
                for label, prob in zip(labels, probs, strict=True)
            ]
        names = pages(rf.NAMES_PAGE, project=project_id)
        conflicts = self._conflict_rows(project_id)
        hard = [a for a in answers if not a[4]]
        reviewed = {a[1]: a[3] for a in answers if a[4]}
        gold = dict(gold)
        stored = StoredAnswers(
            item=np.array([a[1] for a in hard], dtype=np.int64),
            annotator=np.array([a[2] for a in hard], dtype=np.int64),
            label=np.array([a[3] for a in hard], dtype=np.int64),
            gold_item=np.array(list(gold), dtype=np.int64),
            gold_label=np.array(list(gold.values()), dtype=np.int64),
            soft=pd.DataFrame(soft_rows, columns=["version", "item", "label", "prob"]),
            names=pd.Series(dict(names), dtype=object),
            reviewed_item=np.array([i for i in reviewed if i not in gold], dtype=np.int64),
            reviewed_label=np.array([k for i, k in reviewed.items() if i not in gold], dtype=np.int64),
            conflicts=conflicts[~conflicts["item"].isin(list(gold))],
        )
        return stored, since

    def _conflict_rows(self, project_id: int) -> pd.DataFrame:
        """For each reviewed item, the newest row a version in use wrote for it before the review
        (``fitting.StoredAnswers.conflicts``)."""
        rows = self.db.read(lambda s: s.execute(rf.CONFLICT_ROWS, {"project": project_id}).all())
        newest = pd.DataFrame(rows, columns=["item", "label", "prob", "temperature"]).drop_duplicates("item")
        return newest.explode(["label", "prob"], ignore_index=True).astype(
            {"item": np.int64, "label": np.int64, "prob": np.float64, "temperature": np.float64}
        )[list(CONFLICT_COLUMNS)]
