"""Synthetic taxonomies: the shape of a product taxonomy (thousands of categories, up to six
levels, a few dozen top categories) with made-up names, for tests and benchmarks that must not
read a real one."""

from __future__ import annotations

import numpy as np

GOOGLE_PRODUCT_TAXONOMY_SIZE = 5595
"""Categories in the Google Product Taxonomy (version 2021-09-21)."""
_SYLLABLES = np.array([c + v for c in "bdkmlnrstvz" for v in "aeiou"])


def synthetic_taxonomy(
    n: int = GOOGLE_PRODUCT_TAXONOMY_SIZE, *, roots: int = 21, max_depth: int = 6, seed: int = 0
) -> list[str]:
    """``n`` distinct ``A > B > C`` paths, parents before children: ``roots`` top categories, then
    each new category under a uniformly drawn earlier one of depth below ``max_depth``; names are one
    or two pseudo-words of two or three syllables.

    >>> paths = synthetic_taxonomy(50, roots=3, seed=1)
    >>> len(set(paths)), sum(" > " not in p for p in paths)
    (50, 3)
    """
    rng = np.random.default_rng(seed)
    paths: list[str] = []
    depth: list[int] = []
    taken: set[str] = set()
    while len(paths) < n:
        parent = -1 if len(paths) < roots else int(rng.integers(len(paths)))
        if parent >= 0 and depth[parent] >= max_depth:
            continue
        words = rng.choice(_SYLLABLES, size=(int(rng.integers(1, 3)), int(rng.integers(2, 4))))
        name = " ".join("".join(w).capitalize() for w in words)
        path = name if parent < 0 else f"{paths[parent]} > {name}"
        if path not in taken:
            taken.add(path)
            paths.append(path)
            depth.append(1 if parent < 0 else depth[parent] + 1)
    return paths
