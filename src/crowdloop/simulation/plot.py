"""Accuracy against cost per item, one point per policy (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from crowdloop.errors import ConfigError

INSTALL_HINT = "pip install 'crowdloop[plot]'"


def plot_available() -> bool:
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_accuracy_cost(summary: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Write a PNG of ``accuracy`` (y, with its ``accuracy_lo``/``accuracy_hi`` interval when
    known) against ``cost_per_item`` (x), one labelled point per row of ``summary`` (``policy``)."""
    if not plot_available():
        raise ConfigError(f"plotting needs matplotlib: {INSTALL_HINT}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    x, y = summary["cost_per_item"].to_numpy(float), summary["accuracy"].to_numpy(float)
    if {"accuracy_lo", "accuracy_hi"} <= set(summary.columns):
        low = (y - summary["accuracy_lo"].to_numpy(float)).clip(min=0)
        high = (summary["accuracy_hi"].to_numpy(float) - y).clip(min=0)
        axes.errorbar(x, y, yerr=[pd.Series(low).fillna(0), pd.Series(high).fillna(0)], fmt="none", ecolor="0.6")
    axes.scatter(x, y, s=36, zorder=3)
    for name, xi, yi in zip(summary["policy"], x, y, strict=True):
        axes.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(6, -4), fontsize=8)
    axes.set_xlabel("cost per item (price units: crowd answers, expert reviews, model)")
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.set_xlim(left=min(-0.1, x.min() - 0.1), right=x.max() * 1.35 + 0.2)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
