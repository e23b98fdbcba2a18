"""One decision everywhere: the labeling service and ``crowdloop decide`` take the same decision
from the same answers, gold and policy; the calibrator is stored as data, never a pickle."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.cli import app
from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import GoldIn, ItemIn, open_service
from crowdloop.service.project_config import ProjectConfig
from crowdloop.store.schema import Project

sys.path.insert(0, str(Path(__file__).parent))
from crowd_loop import answer_in_turns

LABELS = ["a", "b", "c"]
PATHS = ["A > a1", "A > a2", "A > a3", "B > b1", "B > b2"]  # wrong answers: a sibling more often than not
POLICY = ConsensusPolicy(target=0.9, max_overlap=5, prior_accuracy=0.4, escalate_early=False)


@pytest.fixture(params=["flat", "taxonomy"])
def served(tmp_path, request):
    """A project on SQLite whose annotators answered through the loop, then refitted; the prior
    accuracy is stated low so that nothing is accepted before the refit learns the skills, and items
    are not escalated early, so that they stay in the pool (gold is handed out only beside real work)."""
    rng = np.random.default_rng(7)
    service = open_service(f"sqlite:///{tmp_path / 'loop.db'}", seed=3)
    labels = LabelSpace(LABELS) if request.param == "flat" else Taxonomy.from_paths(PATHS)
    leaves = LABELS if request.param == "flat" else PATHS
    project = service.create_project("same", labels, POLICY, gold_rate=0.4)
    truth = {f"t{i:03d}": str(rng.choice(leaves)) for i in range(150)}
    # imported out of the ids' text order: the database ids and ``decide``'s sorted ids disagree
    service.import_items(project.id, [ItemIn(k, {}) for k in sorted(truth, key=lambda k: k[::-1])])
    gold = dict(list(truth.items())[:60])
    service.add_gold(project.id, [GoldIn(k, v) for k, v in gold.items()])
    skills = {"w1": 0.92, "w2": 0.85, "w3": 0.8, "w4": 0.75, "w5": 0.7, "w6": 0.55}
    people = {name: service.add_annotator(project.id, name)[0] for name in skills}
    answer_in_turns(service, people, skills, truth, leaves, rng, 60)  # two or three answers per item: most stay open
    # what the loop accepted before the refit stays accepted: the refit decides the open items again
    settled = {t for t in truth if t not in gold and service.item_state(project.id, t).status == "accepted"}
    report = service.refit(project.id)
    yield service, project, gold, report, settled
    service.close()


def test_the_service_and_decide_take_the_same_decision(served, tmp_path) -> None:
    service, project, gold, report, settled = served
    frame = service.answers_frame(project.id)
    gold = {task: label for task, label in gold.items() if task in set(frame["task"])}  # the gold answered
    frame[["task", "worker", "label"]].to_csv(tmp_path / "answers.csv", index=False)
    pd.DataFrame({"task": list(gold), "label": list(gold.values())}).to_csv(tmp_path / "gold.csv", index=False)
    labels = service.projects.get_project(project.id).labels
    taxonomy = []
    if isinstance(labels, Taxonomy):
        (tmp_path / "taxonomy.txt").write_text("\n".join(labels.labels) + "\n")
        taxonomy = ["--taxonomy", str(tmp_path / "taxonomy.txt")]
        assert 0 < report.sibling_share < 1 and 0 < report.vague_share < 1  # learned, stored for the service
    out = tmp_path / "decisions.csv"
    result = CliRunner().invoke(
        app,
        ["decide", str(tmp_path / "answers.csv"), "--gold", str(tmp_path / "gold.csv"), "-o", str(out),
         "--target", "0.9", "--max-overlap", "5", "--prior-accuracy", "0.4", "--keep-asking", *taxonomy],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decided = pd.read_csv(out, dtype={"label": object}).set_index("task")
    open_ = [task for task in decided.index if task not in gold and task not in settled]
    states = [service.item_state(project.id, task) for task in open_]
    assert report.calibrated and len(states) >= 30 and len({s.status for s in states}) >= 2
    for state in states:
        row = decided.loc[state.item]
        assert (state.status, state.label) == (row["status"], row["label"] if isinstance(row["label"], str) else None)
        assert state.confidence == pytest.approx(row["confidence"], abs=1e-6)
        assert state.needed == row["next"]


def test_the_calibrator_is_stored_as_data(served, monkeypatch) -> None:
    service, project, *_ = served
    with service.engine.connect() as connection:
        stored = connection.execute(Project.__table__.select().where(Project.id == project.id)).one().calibrator
    assert isinstance(stored, dict)  # JSON, not bytes
    calibrator = TopLabelCalibrator.from_dict(stored)
    again = TopLabelCalibrator.from_dict(calibrator.to_dict())
    raw, n = np.linspace(0.4, 0.999, 50), np.tile([1, 2, 3, 5, 8], 10)
    assert np.array_equal(
        again.predict(raw, n_answers=n, quantile=0.2), calibrator.predict(raw, n_answers=n, quantile=0.2)
    )

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    service.config = ProjectConfig()  # the next decision reads the stored calibrator again
    assert service.refit(project.id).calibrated
    assert service.item_state(project.id, "t100").status in ("accepted", "more", "escalated")
