"""A simulated crowd working a project through the service's loop, for the tests."""

from __future__ import annotations

import numpy as np


def answer_in_turns(service, people: dict, skills: dict, truth: dict, labels: list, rng: np.random.Generator,
                    rounds: int) -> None:  # fmt: skip
    """Each annotator in turn takes a task and answers it (right with their skill, else another
    label at random), for at most ``rounds`` rounds or until nobody gets a task."""
    for _ in range(rounds):
        progressed = False
        for name, who in people.items():
            task = service.next_task(who)
            if task is None:
                continue
            right = rng.random() < skills[name]
            label = truth[task.item] if right else str(rng.choice([x for x in labels if x != truth[task.item]]))
            service.submit(who, task.lease_id, label, duration_ms=3000)
            progressed = True
        if not progressed:
            return
