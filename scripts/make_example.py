"""Regenerate the example shipped with crowdloop (``src/crowdloop/examples``): a simulated crowd
categorising 600 products into the small retail taxonomy, 3 answers each, 40 workers, and gold
labels for 60 of the products. Run from the repository root: ``python scripts/make_example.py``."""

from pathlib import Path

import numpy as np

from crowdloop.labels import Taxonomy
from crowdloop.simulation.taxonomy_crowd import simulate_taxonomy_crowd

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "crowdloop" / "examples"


def main() -> None:
    taxonomy = Taxonomy.read(EXAMPLES / "example_taxonomy.txt")
    answers, truth = simulate_taxonomy_crowd(taxonomy, n_items=600, n_workers=40, answers_per_item=3, random_state=7)
    answers["task"] = answers["task"].map(lambda i: f"p{i:04d}")
    answers["worker"] = [f"w{code:03d}" for code in answers["worker"].factorize()[0]]  # hide the archetypes
    truth.index = truth.index.map(lambda i: f"p{i:04d}")
    answers.to_csv(EXAMPLES / "example_answers.csv", index=False)
    gold = truth.iloc[np.random.default_rng(7).choice(len(truth), 60, replace=False)].sort_index()
    gold.rename_axis("task").rename("label").to_csv(EXAMPLES / "example_gold.csv")
    truth.rename_axis("task").rename("label").to_csv(EXAMPLES / "example_truth.csv")


if __name__ == "__main__":
    main()
