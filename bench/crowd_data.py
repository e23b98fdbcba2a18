"""The real crowd datasets beside the project (``../shared/data/crowd``), as crowd-kit frames.

Each loader returns ``(answers, truth)``: a frame with ``task``, ``worker``, ``label`` (integer
labels, as published) and a Series task -> true label. Missing data: ``available()`` is empty.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

DATA = Path(os.environ.get("CROWDLOOP_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CROWD = DATA / "crowd"
CATEGORICAL = [
    "zheng_product",
    "zheng_possent",
    "zheng_relevance",
    "zheng_adult",
    "bluebirds",
    "dog",
    "face",
    "sentiment_polarity",
    "zencrowd",
]


def available() -> list[str]:
    return [name for name in CATEGORICAL if (CROWD / name).is_dir()]


def load(name: str) -> tuple[pd.DataFrame, pd.Series]:
    folder = CROWD / name
    if name == "sentiment_polarity":
        raw = pd.read_csv(folder / "SP.csv", header=None, names=["worker", "task", "label", "gold"])
        truth = raw.groupby("task")["gold"].first().rename("truth")
        return raw[["task", "worker", "label"]], truth
    answers = pd.read_csv(folder / "answer.csv")
    answers.columns = ["task", "worker", "label"]
    truth = pd.read_csv(folder / "truth.csv")
    truth.columns = ["task", "truth"]
    return answers, truth.set_index("task")["truth"]
