"""A demo project to try the loop at once: the shipped retail taxonomy, generated product items (a
few of them gold), an owner, a reviewer and two annotators with their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import NotFoundError
from crowdloop.labels import Taxonomy
from crowdloop.service import ItemIn, LabelingService

DEMO_PROJECT = "demo"
_STYLES = ("Classic", "Compact", "Deluxe", "Eco", "Pro", "Travel", "Kids", "Premium")
_COLOURS = ("black", "white", "red", "blue", "green", "grey")


@dataclass(frozen=True)
class DemoProject:
    project_id: int
    tokens: dict[str, str]
    """name -> token for the owner, the reviewer and the annotators."""
    items: int
    gold: int


def demo_items(taxonomy: Taxonomy, n_items: int, n_gold: int, *, seed: int = 0) -> list[ItemIn]:
    """Product titles made from the leaf names of ``taxonomy`` ("Compact red Headphones, model 12");
    the first ``n_gold`` carry their true category as gold."""
    rng = np.random.default_rng(seed)
    leaves = np.flatnonzero(taxonomy.is_leaf)
    codes = rng.choice(leaves, size=n_items)
    labels = taxonomy.decode(codes)
    styles, colours = rng.choice(_STYLES, size=n_items), rng.choice(_COLOURS, size=n_items)
    rows = []
    for i, label in enumerate(labels):
        leaf = str(label).rsplit(" > ", 1)[-1]
        title = f"{styles[i]} {colours[i]} {leaf}, model {rng.integers(1, 100)}"
        rows.append(ItemIn(f"demo-{i:03d}", {"title": title}, gold=str(label) if i < n_gold else None))
    return rows


def load_demo(service: LabelingService, *, n_items: int = 60, n_gold: int = 10) -> DemoProject:
    """Create the demo project, or on a restart find the one that exists, as it is, and give its
    members new tokens that replace the earlier ones (each member holds one valid token).
    ``items`` counts every item, gold included."""
    try:
        project = service.get_project(DEMO_PROJECT)
    except NotFoundError:
        project = None
    if project is not None:
        members = [a for a in service.annotator_skills(project.id) if a.kind == "human"]
        tokens = {a.name: service.rotate_token(a.id) for a in members}
        progress = service.progress(project.id)
        return DemoProject(project.id, tokens, progress.items + progress.gold_items, progress.gold_items)
    taxonomy = Taxonomy.read(Path(str(resources.files("crowdloop") / "examples" / "example_taxonomy.txt")))
    project = service.create_project(
        DEMO_PROJECT, taxonomy, ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=3), gold_rate=0.15
    )
    tokens = {}
    for name, role in (("owner", "owner"), ("reviewer", "reviewer"), ("alice", "annotator"), ("bob", "annotator")):
        tokens[name] = service.add_annotator(project.id, name, role=role)[1]
    rows = demo_items(taxonomy, n_items, n_gold)
    service.import_items(project.id, rows)
    return DemoProject(project.id, tokens, n_items, n_gold)
