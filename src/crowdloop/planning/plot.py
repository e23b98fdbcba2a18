"""A PNG of a learning curve: the measured points, the fitted power law with its bootstrap band,
the target and the forecast labels. Needs matplotlib (``pip install 'crowdloop[plot]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdloop.errors import ConfigError
from crowdloop.planning.curve import LearningCurve, power_law


def plot_learning_curve(curve: LearningCurve, path: str | Path, *, target: float | None = None) -> Path:
    """Write the plot to ``path`` (PNG) and return the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("plotting needs matplotlib: pip install 'crowdloop[plot]'") from exc
    n_max = curve.n_labels.max()
    needed = curve.labels_for(target).estimate if target is not None else np.nan
    right = n_max * 4 if not np.isfinite(needed) else max(n_max * 1.5, needed * 1.3)
    grid = np.geomspace(curve.n_labels.min(), right, 200)
    a, b, c = curve.replicates.T
    band = power_law(grid[:, None], a[None, :], b[None, :], c[None, :])
    tail = (1 - curve.level) / 2
    low, high = np.quantile(band, [tail, 1 - tail], axis=1)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.fill_between(grid, low, high, alpha=0.25, label=f"{curve.level:.0%} bootstrap band")
    axes.plot(grid, power_law(grid, curve.a, curve.b, curve.c), label=f"{curve.a:.3f} - {curve.b:.3g} n^-{curve.c:.2f}")
    axes.plot(curve.n_labels, curve.accuracy, "o", color="black", label="measured")
    if target is not None:
        axes.axhline(target, linestyle="--", color="grey", label=f"target {target:.2f}")
        if np.isfinite(needed):
            axes.axvline(needed, linestyle=":", color="grey", label=f"{needed:,.0f} labels forecast")
    axes.set_xscale("log")
    axes.set_xlabel("labels")
    axes.set_ylabel("accuracy")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
