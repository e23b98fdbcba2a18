"""The loop's hot path in few statements: SQLite's trace callback counts what a submit runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service

LABELS = ["a", "b", "c"]


def test_a_submit_reads_the_votes_and_their_temperatures_in_one_statement(tmp_path) -> None:
    """BEGIN, the lease (with annotator, project and item), closing it, the answer, the annotator's
    evidence, the item's answers, the model's votes with its temperature, the decision, COMMIT."""
    service = open_service(f"sqlite:///{tmp_path / 'loop.db'}", seed=0)
    try:
        policy = ConsensusPolicy(target=0.99, max_overlap=5, escalate_early=False)  # stays open: no event
        project = service.create_project("p", LabelSpace(LABELS), policy, gold_rate=0.0)
        service.import_items(project.id, [ItemIn(f"i{k}", {}) for k in range(5)])
        votes = {f"i{k}": {"a": 0.5, "b": 0.3, "c": 0.2} for k in range(5)}
        service.add_model_predictions(project.id, "m", "v1", votes)
        annotator = service.authenticate(service.add_annotator(project.id, "w")[1])
        task = service.next_task(annotator)
        run: list[str] = []

        @event.listens_for(service.engine, "checkout")
        def trace(dbapi_connection: Any, *_: Any) -> None:
            dbapi_connection.set_trace_callback(run.append)

        service.submit(annotator, task.lease_id, "a")
        assert len(run) == 9, run
        assert sum("model_versions" in sql for sql in run) == 2  # the lease's "has models" and the votes
    finally:
        service.close()
