"""``auto``: choose a truth-inference model from the shape of the data."""

from __future__ import annotations

import numpy as np

from crowdloop.aggregation.posterior import fits_dense
from crowdloop.answers import Answers
from crowdloop.labels import Taxonomy

LARGE_LABEL_SPACE = 50
"""From this many labels on, full per-worker confusion matrices have too many cells to estimate."""


def choose_method(answers: Answers) -> tuple[str, str]:
    """The registry name of a suitable model and the reason, in words.

    - a taxonomy, or K >= 50, or a posterior too large to keep dense: the taxonomy-shaped skill
      model (per-worker skill, one pooled sparse confusion structure);
    - one answer per item: majority vote (there is no agreement to learn skills from); with a model's
      probabilities (soft answers) one-coin Dawid-Skene, one skill per worker learned from how
      often they agree with the model (the fewest parameters a thin crowd can inform);
    - otherwise Dawid-Skene, the most accurate model on the public benchmarks when each
      worker gives enough answers to fill a confusion matrix; with fewer answers per worker
      than cells in its matrix (K x K), the class-conditional variant (K parameters per worker).
    """
    k = answers.n_labels
    if isinstance(answers.labels, Taxonomy) or k >= LARGE_LABEL_SPACE or not fits_dense(answers.n_items, k):
        kind = "a taxonomy" if isinstance(answers.labels, Taxonomy) else f"{k} labels"
        return "taxonomy", f"{kind}: per-worker skill over a pooled, taxonomy-shaped confusion"
    per_item = answers.n_answers / max(answers.n_items, 1)
    if per_item < 1.5 and answers.soft is not None:
        return "onecoin", f"{per_item:.1f} answers per item and a model: one skill per worker, learned beside the model"
    if per_item < 1.5:
        return "mv", f"{per_item:.1f} answers per item: too few to learn worker skills"
    per_worker = float(np.median(answers.answers_per_worker()[np.unique(answers.worker)]))
    if per_worker < k * k:
        return "ccds", (
            f"median {per_worker:.0f} answers per worker, fewer than the {k * k} cells of a confusion matrix: "
            "class-conditional Dawid-Skene"
        )
    return "ds", f"median {per_worker:.0f} answers per worker over {k} labels: Dawid-Skene"
