r"""The product-categorization experiment: five ways to label products, measured as accuracy against cost.

Items are real product titles with their real category paths (a taxonomy); a synthetic crowd
(``simulate_taxonomy_crowd``: archetypes, wrong answers mostly sibling categories) gives up to
``max_overlap`` answers per item; a text classifier's out-of-fold probabilities are the model's
opinion (never its own training label echoed back). Each seed draws a new crowd, new answer orders
and new honeypots, and ``replay`` reveals the answers to each policy in waves:

- ``humans, overlap 3``: majority vote over the first 3 answers of every item (fixed overlap);
- ``humans, dynamic``: ``DynamicConsensus`` on the human answers;
- ``model only``: the model's most probable label, no human answer;
- ``1 human + model >= t``: ``ModelAgreesConsensus`` (accept when a human and the model agree and
  the model's confidence is at least t, otherwise ask more);
- ``dynamic + model``: ``DynamicConsensus`` with the model as one more (soft) voter;
- with ``extra_targets``, the two dynamic policies again at each of those targets (``@ 0.90``).

Reported per policy (mean and 95% interval over seeds, items that are not honeypots): accuracy
(escalated items keep their leading label), accuracy when an expert labels the escalated items,
paid human answers per item, cost per item (crowd answers, expert reviews and model answers at
``Prices``), escalation rate and the share of items that needed one human answer only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.aggregation.registry import method_class
from crowdloop.answers import Answers
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.consensus.presets import ModelAgreesConsensus
from crowdloop.labels import Taxonomy
from crowdloop.simulation.replay import make_plan, replay, summarize, truth_codes
from crowdloop.simulation.taxonomy_crowd import PRODUCT_ARCHETYPES, Archetype, simulate_taxonomy_crowd

SAMPLE = "products.csv.gz"
NOTICE = "PRODUCTS_NOTICE.txt"
COLUMNS = (
    "accuracy",
    "accuracy_expert",
    "accepted_accuracy",
    "answers_per_item",
    "cost_per_item",
    "escalation_rate",
    "one_answer_share",
)
"""The metrics of ``compare_policies``, per policy and seed."""


def product_sample() -> pd.DataFrame:
    """The product titles shipped with crowdloop (``title``, ``category`` as ``A > B > C``): a sample
    of the Flipkart catalogue (CC BY-SA 4.0, see ``product_notice()``)."""
    with resources.files("crowdloop").joinpath("examples", SAMPLE).open("rb") as handle:
        return pd.read_csv(handle, compression="gzip", dtype=str, keep_default_na=False)


def product_notice() -> str:
    """Where the shipped product titles come from, and their licence."""
    return resources.files("crowdloop").joinpath("examples", NOTICE).read_text(encoding="utf-8").strip()


def model_probabilities(
    titles: Sequence[str] | np.ndarray,
    categories: Sequence[str] | np.ndarray,
    taxonomy: Taxonomy,
    *,
    n_folds: int = 4,
    cv: int = 2,
    random_state: int = 0,
) -> np.ndarray:
    """Out-of-fold probabilities (n, len(taxonomy)) of the default ``TextClassifier``; copies of a
    title (after normalisation) share a fold, so no title is scored by a model that saw it."""
    from crowdloop.models import TextClassifier, normalize_text, out_of_fold_proba

    titles = np.asarray(titles, dtype=object)
    return out_of_fold_proba(
        TextClassifier(cv=cv, random_state=random_state),
        titles,
        np.asarray(categories, dtype=object),
        n_folds=n_folds,
        groups=normalize_text(titles),
        random_state=random_state,
        label_space=taxonomy,
    )


def sparse_rows(probs: np.ndarray, floor: float = 1e-3) -> sp.csr_matrix:
    """Probability rows without their entries below ``floor`` (CSR): a softmax over hundreds of
    categories is mostly dust, and the crowd model's cost grows with stored entries. The largest
    entry of a row is always kept. The rows are not renormalised: the dust's mass stays with the
    labels left out (``Answers.with_soft(partial=True)``, as the service stores a model's top
    labels), so a label the model found unlikely is not one it ruled out."""
    probs = np.asarray(probs, dtype=np.float64)
    keep = (probs >= floor) | (probs == probs.max(axis=1, keepdims=True))
    return sp.csr_matrix(np.where(keep, probs, 0.0))


@dataclass(frozen=True)
class ProductSetup:
    """How the experiment is run: the crowd, the policy bounds and the honeypots."""

    archetypes: Sequence[Archetype] = PRODUCT_ARCHETYPES
    n_workers: int = 60
    inner_share: float = 0.05
    branch_spread: float = 0.5
    policy: ConsensusPolicy = field(
        default_factory=lambda: ConsensusPolicy(target=0.97, min_overlap=1, max_overlap=5, partial=False)
    )
    thresholds: Sequence[float] = (0.8,)
    extra_targets: Sequence[float] = ()
    gold_share: float = 0.1
    fixed_overlap: int = 3


@dataclass
class ProductComparison:
    """``per_seed``: one row per (policy, seed) with ``COLUMNS``; ``summary``: per policy the mean
    and 95% interval (``<metric>``, ``<metric>_lo``, ``<metric>_hi``), in the order run."""

    per_seed: pd.DataFrame
    summary: pd.DataFrame


def compare_policies(
    taxonomy: Taxonomy,
    categories: Sequence[str] | np.ndarray,
    probs: np.ndarray,
    setup: ProductSetup | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
) -> ProductComparison:
    """Run every policy (module docstring) on items whose true labels are ``categories`` (labels of
    ``taxonomy``) with the model's probability rows ``probs`` (aligned to ``taxonomy``)."""
    setup = setup or ProductSetup()
    truth = pd.Series(np.asarray(categories, dtype=object), index=pd.RangeIndex(len(categories), name="task"))
    policy = setup.policy
    rows = []
    for seed in seeds:
        frame, _ = simulate_taxonomy_crowd(
            taxonomy,
            n_workers=setup.n_workers,
            answers_per_item=policy.max_overlap,
            archetypes=setup.archetypes,
            inner_share=setup.inner_share,
            branch_spread=setup.branch_spread,
            truth=truth.to_numpy(),
            random_state=seed,
        )
        humans = Answers.from_frame(frame, labels=taxonomy)
        model_rows = sparse_rows(probs[humans.items.to_numpy(dtype=np.int64)])
        with_model = humans.with_soft("model", humans.items, model_rows, partial=True)
        runs = {f"humans, overlap {setup.fixed_overlap}": _fixed(humans, truth, setup, seed)}
        runs["humans, dynamic"] = _dynamic(humans, truth, DynamicConsensus(policy), setup, seed)
        runs["model only"] = _model_only(with_model, truth, setup, seed)
        for threshold in setup.thresholds:
            engine = ModelAgreesConsensus(policy, threshold=threshold)
            runs[f"1 human + model >= {threshold:.2f}"] = _dynamic(with_model, truth, engine, setup, seed)
        runs["dynamic + model"] = _dynamic(with_model, truth, DynamicConsensus(policy), setup, seed)
        for target in setup.extra_targets:  # the dynamic policies at other targets
            other = replace(policy, target=target)
            runs[f"humans, dynamic @ {target:.2f}"] = _dynamic(humans, truth, DynamicConsensus(other), setup, seed)
            runs[f"dynamic + model @ {target:.2f}"] = _dynamic(with_model, truth, DynamicConsensus(other), setup, seed)
        for name, metrics in runs.items():
            rows.append({"policy": name, "seed": seed, **metrics})
    per_seed = pd.DataFrame(rows)
    return ProductComparison(per_seed, _summary(per_seed))


def _dynamic(answers: Answers, truth: pd.Series, engine: DynamicConsensus, setup: ProductSetup, seed: int) -> dict:
    result = replay(answers, truth, engine, gold_share=setup.gold_share, seeds=(seed,))
    metrics = result.per_seed.iloc[0]
    out = {name: float(metrics[name]) for name in COLUMNS}
    if answers.soft is not None:
        out["cost_per_item"] += setup.policy.prices.model
    return out


def _fixed(answers: Answers, truth: pd.Series, setup: ProductSetup, seed: int) -> dict:
    n = setup.fixed_overlap
    plan = make_plan(answers, truth_codes(answers, truth), setup.gold_share, seed)
    revealed = np.where(plan.gold, answers.answers_per_item(), n)
    seen = answers.subset(plan.rows(answers, revealed))
    codes = method_class("mv")().fit(seen, plan.gold_series(answers)).posterior_.labels()
    accuracy = float((codes == plan.truth)[plan.evaluated].mean())
    paid = float(np.minimum(n, answers.answers_per_item())[plan.evaluated].mean())
    return {
        "accuracy": accuracy,
        "accuracy_expert": accuracy,
        "accepted_accuracy": accuracy,
        "answers_per_item": paid,
        "cost_per_item": paid * setup.policy.prices.crowd,
        "escalation_rate": 0.0,
        "one_answer_share": float(n == 1),
    }


def _model_only(answers: Answers, truth: pd.Series, setup: ProductSetup, seed: int) -> dict:
    from crowdloop.consensus.presets import model_top

    plan = make_plan(answers, truth_codes(answers, truth), setup.gold_share, seed)
    label, _ = model_top(answers)
    accuracy = float((label == plan.truth)[plan.evaluated].mean())
    return {
        "accuracy": accuracy,
        "accuracy_expert": accuracy,
        "accepted_accuracy": accuracy,
        "answers_per_item": 0.0,
        "cost_per_item": setup.policy.prices.model,
        "escalation_rate": 0.0,
        "one_answer_share": 0.0,
    }


def _summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name in pd.unique(per_seed["policy"]):
        stats = summarize(per_seed.loc[per_seed["policy"] == name, list(COLUMNS)])
        row: dict = {"policy": name}
        for metric in COLUMNS:
            row[metric] = stats.loc[metric, "mean"]
            row[f"{metric}_lo"] = stats.loc[metric, "lo"]
            row[f"{metric}_hi"] = stats.loc[metric, "hi"]
        out.append(row)
    return pd.DataFrame(out)
