r"""The project's own model, trained by the service off the request path (``service.worker``).

Training set: every item whose label people settled (gold, accepted by the crowd, reviewed; never a
label the model gave itself), its text the payload's ``text_fields`` (default: every string field)
joined, one row each (``models.training.training_set``). The model is the default text classifier
(``models.text.TextClassifier``), or for a taxonomy the ``models.hierarchical`` per-level heads, so
an unsure leaf still gives a sure branch. It is retrained once enough new labels have settled:
$\max(50, 0.1\,n)$ more than the $n$ of the last version.

Each version is measured on gold it did not train on (cross-fitting, Chernozhukov et al. 2018): a
version is two models (``models.routed.FoldRouted``), each fitted on everything but the gold of
one fold of the titles (a stable hash of the normalized title: copies of a title share a fold) and
those titles' copies, and every text, gold or open, is labelled by the model of its own fold. So
each gold item is predicted by a model that never saw it, by the very rule that labels the open
items: the whole gold is held out from the labelling procedure. From those probabilities,
accuracy and calibration (ECE, ``models.calibrate.model_reliability``), and the confidence above
which the version may label items with no human answer (``models.autolabel.choose_threshold``,
fixed-sequence Clopper-Pearson tests at the project's target with the function's own start, as
``crowdloop autolabel`` has it: the walk tolerates the wrong gold items the surest half of the gold,
at most 200 items, could hold and pass with, ``chance_errors_for``, and starts at the fewest surest
items with which they can pass). Serving
one fold's model left only its own fold, half the gold, as evidence (on 100 gold items almost never enough to prove .97:
``bench/bench_threshold_power.py``); pooling the gold of fold models that do not label anything proves nothing
about the one that does: with a couple of hundred labels over a hundred categories two fold models
differ so much that a proof on the gold of five (all right on their surest 78 gold items) let the
first version of the Flipkart sample through the API label 31% of the items .89 right. Labels the
crowd settled are no evidence either: the model learns the crowd's conventions from them and
agrees with its systematic errors (proven on them, a version labelled 21% of the items .94 right).
So a small project's gold proves a threshold only for models sure and right on enough of it. The
threshold is applied to the fold models, never to one fitted on all the data, whose confidences
are on another scale. The bound is taken at $1 - $
``consensus.decider.CAUTION``, the level at which every label the crowd settles is accepted: a
label without humans needs the proof a crowd label needs, no less. The gold is reweighted to the
items the model would label now (``models.autolabel.Pool``: the untouched open items, by the
top-level branch of the label it predicts, ``automation_stratum``; people take the items the model
is unsure of first, so what is left is rich in the labels it is sure of, rightly or not), and it
labels only items of the strata the gold proved: on the Flipkart sample through the API, a model
proven on the gold as it was labelled a pool .92 right.
A version significantly less accurate than the one in use on the same gold (paired,
``models.comparison``) is kept (``rejected``) but never used. A new
version votes as the gold says it should (``models.calibrate.vote_calibration``): its rows mixed
with the uniform by the share of its gold it was confidently wrong on (so that no row of it can
veto agreeing annotators) and tempered, until the refit learns its weight beside the crowd's.

A version is written as ``pending`` with its artifact (``models.artifacts``: arrays, SHA-256
checked) and its gold rows; its predictions for the open items follow page by page, then it becomes
``active`` (votes and suggests) and the refit learns its reliability (``Jobs.refit``: the
temperature it votes with, the calibrator). A process that dies in between leaves a pending
version whose artifact the next run loads to finish the pages it had not written: nothing is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from crowdloop.consensus.decider import CAUTION
from crowdloop.errors import ConflictError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.models import artifacts
from crowdloop.models.autolabel import Pool, automation_stratum, choose_threshold
from crowdloop.models.calibrate import floored, model_reliability, vote_calibration
from crowdloop.models.comparison import WORSE_LEVEL, significantly_worse
from crowdloop.models.hierarchical import HierarchicalClassifier
from crowdloop.models.oof import align_proba
from crowdloop.models.routed import FoldRouted, text_folds
from crowdloop.models.text import TextClassifier, normalize_text
from crowdloop.models.training import train as fit_training_set
from crowdloop.models.training import training_set
from crowdloop.service.database import Database
from crowdloop.service.rows import PAGE, WRITE_PAGE, log_event, project_row
from crowdloop.store import model_queries as mq
from crowdloop.store.schema import utcnow

if TYPE_CHECKING:
    from crowdloop.service.automation import Automation
    from crowdloop.service.jobs import Jobs
    from crowdloop.service.projects import Projects
    from crowdloop.service.reports import Reports

MODEL_NAME = "crowdloop"
"""The name of the service's own model among a project's model versions."""
MIN_NEW_LABELS = 50
NEW_LABEL_SHARE = 0.1
TOP_K = 10
GOLD_FOLDS = 2
CONFIDENCE_LEVEL = 1 - CAUTION


Fence = Callable[[Session], None]
"""Raises ``ClaimLost`` (``service.jobs``) unless the caller still holds the job (run in each writing transaction)."""


def item_texts(payloads: list[dict], fields: list[str] | None) -> list[str]:
    """The text of each payload: its ``fields`` (None: every string field, in payload order)
    joined by a space; an item with none gives an empty string."""
    if fields is None:
        return [" ".join(v for v in p.values() if isinstance(v, str)).strip() for p in payloads]
    return [" ".join(str(p[f]) for f in fields if isinstance(p.get(f), str | int | float)).strip() for p in payloads]


def retrain_due(settled: int, last_size: int | None) -> bool:
    """Whether ``settled`` labels are enough more than the last version's training set
    (``max(MIN_NEW_LABELS, NEW_LABEL_SHARE * last)`` more; the first version at ``MIN_NEW_LABELS``)."""
    last = last_size or 0
    return settled - last >= max(MIN_NEW_LABELS, math.ceil(NEW_LABEL_SHARE * last))


@dataclass(frozen=True)
class TrainingReport:
    """What a model job did: the version it wrote (or finished) and its state, the training set,
    cross-fitted gold accuracy and ECE, the proven threshold (None: automate nothing), items
    predicted, labelled by the model and sent to audit, and the seconds it took."""

    project_id: int
    version_id: int
    version: str
    state: str
    training_size: int
    gold_accuracy: float | None
    gold_ece: float | None
    threshold: float | None
    predicted: int
    automated: int
    audited: int
    seconds: float


class Training:
    """The project's own model: train, measure on gold, version, predict, label the sure items."""

    def __init__(self, db: Database, projects: Projects, reports: Reports, jobs: Jobs, automation: Automation) -> None:
        self.db, self.projects, self.reports, self.jobs, self.automation = db, projects, reports, jobs, automation
        # fitted models by version id (loaded from their artifacts at most once per process)
        self._fitted: dict[int, FoldRouted | TextClassifier | HierarchicalClassifier] = {}

    def service_versions(self, project_id: int) -> list[dict[str, Any]]:
        """The service's own model versions, oldest first: id, version, state, training size and
        hash, metrics (gold accuracy, ECE, threshold, ...) and time."""
        rows = self.db.read(lambda s: s.execute(mq.SERVICE_VERSIONS, {"project": project_id, "name": MODEL_NAME}).all())
        return [dict(r._mapping) for r in rows]

    def model_job(self, project_id: int, fence: Fence | None = None, *, force: bool = False) -> TrainingReport | None:
        """One pass of the project's model job: finish a pending version, train a new one when
        enough labels have settled (``force``: now) unless the version in use awaits its sample's
        verdict (a newer version would leave the sample unused), predict open items the version in
        use has not seen, draw its sample and watch the audit. None when there was nothing to do."""
        fence = fence or (lambda session: None)
        project = self.db.read(lambda s: project_row(s, project_id))
        if project.text_fields == []:
            return None
        versions = self.service_versions(project_id)
        pending = [v for v in versions if v["state"] == "pending"]
        report = None
        if pending:
            report = self._finish(project_id, pending[-1], fence, started=time.perf_counter())
        else:
            settled = self.db.read(lambda s: s.execute(mq.SETTLED_LABELS, {"project": project_id}).scalar())
            last = versions[-1]["training_size"] if versions else None
            if force or (retrain_due(int(settled), last) and not self.automation.confirming(project_id)):
                report = self._train(project_id, versions, fence)
            else:
                active = [v for v in versions if v["state"] == "active"]
                if active:
                    done = self._cover(project_id, active[-1], fence)
                    if done[0]:
                        report = self._report(project_id, active[-1], done, 0.0)
        drawn = self.automation.draw_sample(project_id, fence)
        if report is not None and report.state == "active" and drawn:  # its predictions of them, taken back
            report = dataclasses.replace(report, predicted=report.predicted - drawn, audited=report.audited + drawn)
        if self.automation.check_audit(project_id, fence) is not None:
            with contextlib.suppress(ConflictError):  # the reopened items decided and weighed
                self.jobs.refit(project_id)
        return report

    # --- training -------------------------------------------------------------------------------
    def _training_frame(self, project_id: int, labels: LabelSpace, fields: list[str] | None) -> pd.DataFrame:
        rows, last = [], 0
        while True:
            page = self.db.read(
                lambda s, last=last: s.execute(
                    mq.TRAINING_PAGE, {"project": project_id, "last": last, "limit": PAGE}
                ).all()
            )
            rows += page
            if len(page) < PAGE:
                break
            last = page[-1].id
        texts = item_texts([r.payload for r in rows], fields)
        code = np.array([r.truth if r.is_gold else r.label for r in rows], dtype=np.int64)
        gold = np.array([bool(r.is_gold) for r in rows], dtype=bool)
        frame = pd.DataFrame({"item": [str(r.id) for r in rows], "text": texts, "code": code, "gold": gold})
        keep = frame["text"].str.len().gt(0).to_numpy() & (frame["code"].to_numpy() >= 0)
        if isinstance(labels, Taxonomy):  # a label settled at a branch is no class of the leaf model
            keep &= labels.is_leaf[np.maximum(frame["code"].to_numpy(), 0)]
        return frame[keep].reset_index(drop=True)

    @staticmethod
    def _fit(frame: pd.DataFrame, labels: LabelSpace) -> TextClassifier | HierarchicalClassifier:
        """The default text model on ``frame`` (``models.training``: gold first, one row per item)."""
        texts = pd.Series(frame["text"].to_numpy(object), index=frame["item"].to_numpy(object))
        hierarchical = isinstance(labels, Taxonomy)
        values = labels.decode(frame["code"].to_numpy()) if hierarchical else frame["code"].to_numpy()
        gold = frame["gold"].to_numpy(bool)
        train_set = training_set(
            texts,
            gold=pd.Series(values[gold], index=frame["item"][gold].to_numpy(object), dtype=object),
            accepted=pd.Series(values[~gold], index=frame["item"][~gold].to_numpy(object), dtype=object),
        )
        with warnings.catch_warnings():  # few rows per class early on: scikit-learn's notes, not errors
            warnings.simplefilter("ignore", UserWarning)
            return fit_training_set(HierarchicalClassifier() if hierarchical else TextClassifier(), train_set)

    @staticmethod
    def _proba(model: Any, texts: np.ndarray, labels: LabelSpace) -> np.ndarray:
        """The model's probabilities on the codes of ``labels`` (n, K); a ``FoldRouted`` version's
        from the model of each text's fold."""
        if isinstance(model, FoldRouted):
            out = np.zeros((len(texts), len(labels)))
            folds = model.folds(texts)
            for f, part in enumerate(model.models):
                chosen = folds == f
                if chosen.any():
                    out[chosen] = Training._proba(part, texts[chosen], labels)
            return out
        probs = model.predict_proba(texts)
        classes = model.classes_
        if isinstance(model, HierarchicalClassifier):
            return align_proba(probs, classes, labels)
        out = np.zeros((len(texts), len(labels)))
        out[:, np.asarray(classes, dtype=np.int64)] = probs
        return out

    def _cross_fitted(self, frame: pd.DataFrame, labels: LabelSpace) -> tuple[Any, np.ndarray, np.ndarray]:
        """The version: a model per fold of the gold's titles (``models.routed``), each fitted
        without its fold's gold and the titles' copies, each text labelled by its fold's model;
        for every gold row the probabilities of that model (which never saw it) and its true code.
        With too little gold for two folds of two classes, the model on everything and no gold."""
        gold = np.flatnonzero(frame["gold"].to_numpy(bool))
        codes = frame["code"].to_numpy()
        texts = frame["text"].to_numpy(object)
        folds = text_folds(texts, GOLD_FOLDS)
        key = normalize_text(texts)
        trains = [~np.isin(key, key[gold[folds[gold] == f]]) for f in range(GOLD_FOLDS)]
        if any(not (folds[gold] == f).any() or len(np.unique(codes[t])) < 2 for f, t in enumerate(trains)):
            return self._fit(frame, labels), np.empty((0, len(labels))), np.empty(0, dtype=np.int64)
        model = FoldRouted([self._fit(frame[train], labels) for train in trains])
        return model, self._proba(model, texts[gold], labels), codes[gold]

    def _train(self, project_id: int, versions: list[dict], fence: Fence) -> TrainingReport | None:
        started = time.perf_counter()
        info = self.projects.get_project(project_id)
        project = self.db.read(lambda s: project_row(s, project_id))
        frame = self._training_frame(project_id, info.labels, project.text_fields)
        if len(frame) < MIN_NEW_LABELS or frame["code"].nunique() < 2:
            return None
        model, gold_probs, gold_truth = self._cross_fitted(frame, info.labels)
        metrics: dict[str, Any] = {"kind": "hierarchical" if info.is_taxonomy else "flat", "gold_n": len(gold_truth)}
        if len(gold_truth):
            reliability = model_reliability(gold_probs, gold_truth)  # the model's own probabilities
            vote = vote_calibration(gold_probs, gold_truth)
            gold_probs = vote.floored(gold_probs)  # as the version's rows vote: each row's order unchanged
            top = gold_probs.argmax(axis=1)  # each by the fold model that never saw it, as the version labels it
            choice = choose_threshold(
                gold_probs.max(axis=1),
                top == gold_truth,
                target=info.policy.target,
                confidence_level=CONFIDENCE_LEVEL,
                stratum=automation_stratum(info.labels, top),
                pool=self._automation_pool(project_id, model, info.labels, project.text_fields, vote.floor),
            )
            metrics |= {
                "gold_accuracy": reliability.accuracy,
                "gold_ece": reliability.ece,
                "threshold": None if math.isinf(choice.threshold) else choice.threshold,
                # the gold's effective size and right answers reweighted to the pool, and the strata it proved
                "threshold_gold_n": round(choice.effective_n, 2) if choice.n_gold else 0,
                "threshold_gold_right": round(choice.effective_n * choice.gold_accuracy, 2) if choice.n_gold else 0,
                "threshold_strata": None if choice.strata is None else choice.strata.tolist(),
                "threshold_lower_bound": None if math.isnan(choice.lower_bound) else choice.lower_bound,
                "gold_temperature": vote.temperature,
                "gold_floor": vote.floor,
            }
        gold_ids = frame["item"].to_numpy()[frame["gold"].to_numpy(bool)].astype(np.int64)
        current = [v for v in versions if v["state"] == "active"]
        worse = None
        if current and len(gold_truth):
            worse = self._worse_on_gold(current[-1], gold_ids, gold_probs.argmax(axis=1), gold_truth)
        metrics |= {"seconds_training": time.perf_counter() - started, **self._snapshot(project_id)}
        data, digest = artifacts.pack(model)
        training_hash = hashlib.sha256(
            json.dumps([frame["item"].tolist(), frame["code"].tolist(), project.text_fields]).encode()
        ).hexdigest()
        state = "rejected" if worse else "pending"
        version = str(len(versions) + 1)

        def write(session: Session) -> int:
            fence(session)
            version_id = session.execute(
                mq.NEW_VERSION,
                {"project_id": project_id, "name": MODEL_NAME, "version": version,
                 "temperature": metrics.get("gold_temperature", 1.0),
                 "prediction_count": 0, "state": state, "training_size": len(frame),
                 "training_hash": training_hash, "metrics": _finite(metrics), "created_at": utcnow()},
            ).scalar_one()  # fmt: skip
            session.execute(mq.NEW_ARTIFACT, {"model_version_id": version_id, "sha256": digest, "data": data})
            if len(gold_truth) and not worse:  # the cross-fitted gold rows: the refit learns the vote's weight on them
                store_prediction_page(session, version_id, gold_ids, gold_probs)
            detail = {"version": version, "state": state, "training_size": len(frame), **_finite(metrics)}
            if worse:
                detail["reason"] = worse
            log_event(session, project_id, "model_version", detail)
            return version_id

        version_id = self.db.run(write)
        self._fitted[version_id] = model
        row = next(v for v in self.service_versions(project_id) if v["id"] == version_id)
        if worse:
            return self._report(project_id, row, (0, 0, 0), time.perf_counter() - started)
        return self._finish(project_id, row, fence, started=started)

    def _worse_on_gold(
        self, current: dict, gold_ids: np.ndarray, predicted: np.ndarray, truth: np.ndarray
    ) -> str | None:
        """Why the new version is worse than ``current`` on the gold both predicted
        (``models.comparison``: paired, McNemar), or None when it is not."""
        rows = self.db.read(lambda s: s.execute(mq.GOLD_TOP_LABELS, {"version": current["id"]}).all())
        old_ids = np.array([item for item, labels in rows if labels], dtype=np.int64)
        old_top = np.array([labels[0] for _, labels in rows if labels], dtype=np.int64)
        both = np.isin(gold_ids, old_ids)
        if not both.any():
            return None
        order = np.argsort(old_ids)
        old_right = old_top[order][np.searchsorted(old_ids[order], gold_ids[both])] == truth[both]
        new_right = predicted[both] == truth[both]
        if not significantly_worse(old_right, new_right):
            return None
        return (
            f"worse than version {current['version']} on the same {int(both.sum())} gold items: "
            f"{int(new_right.sum())} right against {int(old_right.sum())} (McNemar, one-sided {WORSE_LEVEL})"
        )

    def _automation_pool(
        self, project_id: int, model: Any, labels: LabelSpace, fields: list[str] | None, floor: float
    ) -> Pool:
        """The items ``model`` could label now, with its confidence on each (its rows ``floored``
        as they vote) and their stratum."""
        confidence, stratum, last = [], [], 0
        while True:
            page = self.db.read(
                lambda s, last=last: s.execute(
                    mq.AUTOMATION_POOL, {"project": project_id, "last": last, "limit": PAGE}
                ).all()
            )
            texts = np.array(item_texts([r.payload for r in page], fields), dtype=object)
            texts = texts[[len(t) > 0 for t in texts]] if len(texts) else texts
            if len(texts):
                probs = floored(self._proba(model, texts, labels), floor)
                confidence.append(probs.max(axis=1))
                stratum.append(automation_stratum(labels, probs.argmax(axis=1)))
            if len(page) < PAGE:
                break
            last = page[-1].id
        if not confidence:
            return Pool(np.empty(0), np.empty(0, dtype=np.int64))
        return Pool(np.concatenate(confidence), np.concatenate(stratum))

    def _snapshot(self, project_id: int) -> dict[str, Any]:
        """Where the project stood when the version was trained (progress over time)."""
        progress = self.reports.progress(project_id)
        return {
            "at_answers": progress.answers,
            "at_items": progress.items,
            "at_cost": progress.cost,
            "at_settled": sum(progress.status_counts.get(s, 0) for s in ("accepted", "reviewed")),
            "at_automated": progress.automated,
        }

    # --- predictions, activation ---------------------------------------------------------------
    def _model(self, version_id: int) -> FoldRouted | TextClassifier | HierarchicalClassifier:
        if version_id not in self._fitted:
            row = self.db.read(lambda s: s.execute(mq.ARTIFACT, {"version": version_id}).one())
            self._fitted.clear()  # one version in use at a time
            self._fitted[version_id] = artifacts.unpack(row.data, row.sha256)
        return self._fitted[version_id]

    def _finish(self, project_id: int, row: dict, fence: Fence, *, started: float) -> TrainingReport:
        """Predict every open item, make the version the one in use, learn its weight (refit)."""
        done = self._cover(project_id, row, fence)

        def activate(session: Session) -> None:
            fence(session)
            session.execute(mq.SET_VERSION_STATE, {"version_id": row["id"], "state": "active"})

        self.db.run(activate)
        with contextlib.suppress(ConflictError):  # a refit running meanwhile reads the version in use
            self.jobs.refit(project_id)
        row = {**row, "state": "active"}
        return self._report(project_id, row, done, time.perf_counter() - started)

    def _cover(self, project_id: int, row: dict, fence: Fence) -> tuple[int, int, int]:
        """Predict the open items ``row``'s version has no opinion on, a page per transaction;
        the sure ones are labelled by the model or audited (``service.automation``). Returns
        (predicted, automated, audited)."""
        info = self.projects.get_project(project_id)
        fields = self.db.read(lambda s: project_row(s, project_id)).text_fields
        floor = (row.get("metrics") or {}).get("gold_floor") or 0.0  # a version without gold, or from before it
        totals = np.zeros(3, dtype=np.int64)
        last = 0
        while True:
            page = self.db.read(
                lambda s, last=last: s.execute(
                    mq.UNPREDICTED, {"project": project_id, "version": row["id"], "last": last, "limit": PAGE}
                ).all()
            )
            if not page:
                return tuple(int(x) for x in totals)
            last = page[-1].id
            texts = np.array(item_texts([r.payload for r in page], fields), dtype=object)
            has_text = np.array([len(t) > 0 for t in texts], dtype=bool)
            ids = np.array([r.id for r in page], dtype=np.int64)[has_text]
            if not len(ids):
                continue
            probs = floored(self._proba(self._model(row["id"]), texts[has_text], info.labels), floor)
            for start in range(0, len(ids), WRITE_PAGE):  # short writes: answers keep coming in
                part = slice(start, start + WRITE_PAGE)
                totals += self.automation.split_sure(project_id, row, ids[part], probs[part], fence)

    def _report(self, project_id: int, row: dict, done: tuple, seconds: float) -> TrainingReport:
        metrics = row.get("metrics") or {}
        return TrainingReport(
            project_id=project_id,
            version_id=row["id"],
            version=row["version"],
            state=row["state"],
            training_size=row["training_size"] or 0,
            gold_accuracy=metrics.get("gold_accuracy"),
            gold_ece=metrics.get("gold_ece"),
            threshold=metrics.get("threshold"),
            predicted=done[0],
            automated=done[1],
            audited=done[2],
            seconds=seconds,
        )


def store_prediction_page(session: Session, version_id: int, ids: np.ndarray, probs: np.ndarray) -> None:
    """Store the probabilities of a page of items (``_prediction_rows``) as predictions of the version."""
    rows = _prediction_rows(version_id, ids, probs)
    if rows:
        session.execute(mq.NEW_PREDICTIONS, rows)
        session.execute(mq.COUNT_PREDICTIONS, {"version_id": version_id, "added": len(rows)})


def _prediction_rows(version_id: int, ids: np.ndarray, probs: np.ndarray) -> list[dict[str, Any]]:
    """Each item's ``TOP_K`` labels (codes) and probabilities, as ``Prediction`` rows."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    values = significant(np.take_along_axis(probs, top, axis=1))
    return [
        {"model_version_id": version_id, "item_id": int(i), "labels": t.tolist(), "probs": v.tolist()}
        for i, t, v in zip(ids, top, values, strict=True)
    ]


def significant(values: np.ndarray, digits: int = 6) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (short in JSON): rounded to decimals, a
    label's probability below 5e-7 became 0, a certainty against it that no answer could outweigh."""
    values = np.asarray(values, dtype=np.float64)
    nonzero = values != 0
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(np.where(nonzero, values, 1.0)))))
    return np.where(nonzero, np.round(values * scale) / scale, 0.0)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics (NaN and infinities as None)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
