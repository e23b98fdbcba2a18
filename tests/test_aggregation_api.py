"""crowd-kit's names and contract: every classification aggregator imports from
``crowdloop.aggregation`` and behaves as crowd-kit's class of the same name on a crowd-kit frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import crowdloop.aggregation as aggregation

CROWDKIT_NAMES = ["MajorityVote", "Wawa", "ZeroBasedSkill", "DawidSkene", "OneCoinDawidSkene", "GLAD", "MACE"]
OURS = ["ClassConditionalDawidSkene", "TaxonomySkillModel"]
FITTED = {
    # crowd-kit 1.4.2's fitted attributes of each class (ours has at least these)
    "MajorityVote": ["labels_", "probas_", "skills_"],
    "Wawa": ["labels_", "probas_", "skills_"],
    "ZeroBasedSkill": ["labels_", "probas_", "skills_"],
    "DawidSkene": ["labels_", "probas_", "priors_", "errors_"],
    "OneCoinDawidSkene": ["labels_", "probas_", "priors_", "errors_", "skills_"],
    "GLAD": ["labels_", "probas_", "alphas_", "betas_"],
    "MACE": ["labels_", "probas_", "spamming_", "thetas_"],
    "ClassConditionalDawidSkene": ["labels_", "probas_", "priors_", "errors_", "skills_"],
    "TaxonomySkillModel": ["labels_", "probas_", "skills_"],
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A crowd-kit frame: string tasks and workers, string labels, 3-4 answers per task."""
    rng = np.random.default_rng(3)
    labels = np.array(["neg", "neu", "pos"])
    truth = rng.integers(0, 3, 60)
    skill = rng.uniform(0.5, 0.95, 12)
    rows = []
    for task in range(60):
        for worker in rng.choice(12, rng.integers(3, 5), replace=False):
            right = rng.random() < skill[worker]
            label = truth[task] if right else (truth[task] + rng.integers(1, 3)) % 3
            rows.append((f"task{task}", f"worker{worker}", labels[label]))
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


@pytest.mark.parametrize("name", CROWDKIT_NAMES + OURS)
def test_exported_under_crowdkit_names_with_crowdkit_contract(name: str, frame: pd.DataFrame) -> None:
    cls = getattr(aggregation, name)
    assert name in aggregation.__all__
    model = cls()
    assert model.fit(frame) is model
    for attribute in FITTED[name]:
        assert hasattr(model, attribute), f"{name} has no {attribute}"
    tasks = pd.Index(sorted(frame["task"].unique()))
    labels = model.labels_
    assert isinstance(labels, pd.Series) and labels.index.name == "task"
    assert sorted(labels.index) == list(tasks)
    assert set(labels) <= {"neg", "neu", "pos"}
    probas = model.probas_
    assert isinstance(probas, pd.DataFrame) and list(probas.columns) == ["neg", "neu", "pos"]
    np.testing.assert_allclose(probas.sum(axis=1).to_numpy(), 1.0, atol=1e-5)
    assert (probas.idxmax(axis=1).reindex(labels.index) == labels).all()
    if "skills_" in FITTED[name]:
        assert set(model.skills_.index) == set(frame["worker"])
    pd.testing.assert_series_equal(cls().fit_predict(frame), labels)
    pd.testing.assert_frame_equal(cls().fit_predict_proba(frame), probas)
