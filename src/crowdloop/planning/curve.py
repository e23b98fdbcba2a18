r"""Learning curves: accuracy against the number of labels, a power law fitted with bootstrap intervals.

The model (the inverse power law of learning curves; Frey & Fisher 1999, Figueroa et al., BMC
Medical Informatics 2012, Hestness et al. 2017):

$$\mathrm{acc}(n) = a - b\,n^{-c}, \qquad 0 \le a \le 1,\ b \ge 0,\ c > 0,$$

$a$ the asymptote (the accuracy this model reaches with unlimited labels), fitted by weighted
least squares (``scipy.optimize.curve_fit`` with bounds; weights from the binomial error of each
point when the size of its evaluation set is known). Labels needed for a target $t < a$:
$n(t) = (b / (a - t))^{1/c}$; for $t \ge a$ no amount of labels gets there with this model.

Intervals by the bootstrap (Efron & Tibshirani 1993): with the evaluation-set sizes, each point's
correct count is redrawn from $\mathrm{Bin}(n_{eval}, \mathrm{acc})$ (resampling the per-item
correctness), the deviation scaled up by $\sqrt{\chi^2_\nu}$ when the points scatter around the
fit more than that noise explains (the reduced chi-square of the weighted fit, with 4 or more
points: the training-set draw and the model's own misfit count too); without the sizes, the
measured points are resampled with replacement. The curve is
refitted on every replicate; intervals are percentiles, and a forecast whose replicates often find
the target above the asymptote gets an infinite upper end.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from crowdloop.errors import ConfigError, InputError

MIN_POINTS = 3
C_BOUNDS = (0.01, 3.0)


def power_law(n: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray:
    """$a - b n^{-c}$."""
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)


def labels_for(target: float, a: np.ndarray | float, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """Labels $n$ with $\\mathrm{acc}(n) = $ ``target`` (``inf`` when the target is not below ``a``;
    at least 1 label). Vectorised over the parameters.

    >>> round(float(labels_for(0.8, 0.9, 1.0, 0.5)), 6), float(labels_for(0.95, 0.9, 1.0, 0.5))
    (100.0, inf)
    """
    a, b, c = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    gap = a - target
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.power(np.divide(b, gap, out=np.zeros_like(gap), where=gap > 0), 1.0 / c)
    return np.where(gap > 0, np.maximum(needed, 1.0), np.inf)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class LearningCurve:
    """A fitted power law, its bootstrap replicates (rows of ``a, b, c``) and the factor by which the
    bootstrap noise was scaled to the scatter of the points (1: the binomial noise explains it)."""

    a: float
    b: float
    c: float
    n_labels: np.ndarray
    accuracy: np.ndarray
    replicates: np.ndarray = field(repr=False)
    level: float = 0.9
    noise_scale: float = 1.0

    @property
    def asymptote(self) -> Interval:
        return self._interval(self.a, self.replicates[:, 0])

    def accuracy_at(self, n: float) -> Interval:
        """The forecast accuracy with ``n`` labels."""
        a, b, c = self.replicates.T
        return self._interval(float(power_law(n, self.a, self.b, self.c)), power_law(n, a, b, c))

    def labels_for(self, target: float) -> Interval:
        """Labels needed for ``target`` accuracy (``inf`` estimate when it is above the asymptote)."""
        if not 0 < target < 1:
            raise ConfigError(f"target accuracy must be in (0, 1), got {target!r}")
        a, b, c = self.replicates.T
        return self._interval(float(labels_for(target, self.a, self.b, self.c)), labels_for(target, a, b, c))

    def reaches(self, target: float) -> bool:
        """Whether the fitted asymptote is above ``target``."""
        return self.a > target

    def _interval(self, estimate: float, values: np.ndarray) -> Interval:
        tail = (1 - self.level) / 2
        low, high = np.quantile(
            np.nan_to_num(values, nan=np.inf, posinf=np.inf), [tail, 1 - tail], method="inverted_cdf"
        )
        return Interval(float(estimate), float(low), float(high))


def _check_points(n_labels: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n_labels, dtype=np.float64).ravel()
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    if len(n) != len(acc):
        raise InputError(f"{len(n)} label counts but {len(acc)} accuracies", source="learning curve")
    bad = np.flatnonzero(~np.isfinite(n) | (n < 1))
    if bad.size:
        raise InputError("label count must be a number >= 1", source="learning curve", rows=(bad + 1).tolist(),
                         field="labels", unit="point")  # fmt: skip
    bad = np.flatnonzero(~np.isfinite(acc) | (acc < 0) | (acc > 1))
    if bad.size:
        raise InputError("accuracy must be in [0, 1]", source="learning curve", rows=(bad + 1).tolist(),
                         field="accuracy", unit="point")  # fmt: skip
    if len(np.unique(n)) < MIN_POINTS:
        raise InputError(
            f"a learning curve needs accuracies at {MIN_POINTS} or more label counts, got {len(np.unique(n))}",
            source="learning curve", hint="Measure the accuracy at more training-set sizes.",
        )  # fmt: skip
    return n, acc


def _start(n: np.ndarray, acc: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """A starting point by variable projection: for each c on a grid, (a, b) by weighted linear
    least squares (the model is linear in them), kept within the bounds; the best c wins."""
    c = np.geomspace(*C_BOUNDS, 80)
    x = -np.power(n[None, :], -c[:, None])  # acc = a + b x
    sw, sx, sy = weight.sum(), (weight * x).sum(axis=1), (weight * acc).sum()
    sxx, sxy = (weight * x * x).sum(axis=1), (weight * x * acc).sum(axis=1)
    det = sw * sxx - sx**2
    b = np.clip(np.divide(sw * sxy - sx * sy, det, out=np.zeros_like(det), where=det > 0), 0.0, None)
    a = np.clip((sy - b * sx) / sw, 0.0, 1.0)
    loss = (weight * (a[:, None] + b[:, None] * x - acc[None, :]) ** 2).sum(axis=1)
    best = int(np.argmin(loss))
    return float(a[best]), float(b[best]), float(c[best])


def _fit(n: np.ndarray, acc: np.ndarray, sigma: np.ndarray | None) -> np.ndarray:
    """Weighted least-squares (a, b, c) within the bounds (``curve_fit``, from ``_start``)."""
    weight = np.ones_like(n) if sigma is None else 1.0 / sigma**2
    a0, b0, c0 = _start(n, acc, weight)
    lower, upper = (0.0, 0.0, C_BOUNDS[0]), (1.0, np.inf, C_BOUNDS[1])
    p0 = (min(max(a0, 1e-9), 1 - 1e-9), max(b0, 1e-9), c0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, _ = curve_fit(power_law, n, acc, p0=p0, sigma=sigma, bounds=(lower, upper), maxfev=2000)
        except (RuntimeError, ValueError) as exc:
            raise InputError("the power law could not be fitted to these points", source="learning curve") from exc
    return np.asarray(params)


def fit_learning_curve(
    n_labels: Sequence[float],
    accuracy: Sequence[float],
    *,
    n_eval: Sequence[float] | float | None = None,
    n_boot: int = 200,
    level: float = 0.9,
    random_state: int | None = 0,
) -> LearningCurve:
    """Fit $a - b n^{-c}$ to ``accuracy`` measured at ``n_labels`` and bootstrap it ``n_boot`` times.

    ``n_eval``: the number of items each accuracy was measured on (one number for all points), to
    weight the fit and resample per-item correctness; without it, the points are resampled.

    >>> n = np.array([250, 500, 1000, 2000, 4000])
    >>> curve = fit_learning_curve(n, power_law(n, 0.92, 2.0, 0.5), n_eval=5000, n_boot=50)
    >>> round(curve.a, 2), round(curve.labels_for(0.88).estimate, -2)
    (0.92, 2500.0)
    """
    n, acc = _check_points(n_labels, accuracy)
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot!r}")
    rng = np.random.default_rng(random_state)
    if n_eval is not None:
        m = np.broadcast_to(np.asarray(n_eval, dtype=np.float64), n.shape).astype(np.int64)
        if (m < 1).any():
            raise InputError("evaluation-set size must be >= 1", source="learning curve", field="n_eval")
        p = np.clip(acc, 0.5 / m, 1 - 0.5 / m)
        sigma = np.sqrt(p * (1 - p) / m)
    else:
        sigma = None
    params = _fit(n, acc, sigma)
    scale = 1.0
    if sigma is not None and len(n) > 3:
        resid = (power_law(n, *params) - acc) / sigma
        scale = max(1.0, float(np.sqrt(resid @ resid / (len(n) - 3))))
    replicates = []
    for _ in range(n_boot):
        if n_eval is not None:
            boot_acc = np.clip(acc + scale * (rng.binomial(m, acc) / m - acc), 0.0, 1.0)
            boot = (n, boot_acc, sigma)
        else:
            pick = rng.integers(0, len(n), len(n))
            if len(np.unique(n[pick])) < MIN_POINTS:
                continue
            boot = (n[pick], acc[pick], None)
        try:
            replicates.append(_fit(*boot))
        except InputError:
            continue
    if not replicates:
        replicates = [params]
    return LearningCurve(
        *map(float, params), n_labels=n, accuracy=acc, replicates=np.asarray(replicates), level=level, noise_scale=scale
    )
