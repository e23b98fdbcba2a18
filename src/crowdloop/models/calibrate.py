"""A model's calibration measured on gold and fixed on gold, with the aggregators' own tools.

The model's top-label confidence is treated like a posterior's: ``expected_calibration_error``
and ``reliability_table`` measure it, a ``TopLabelCalibrator`` (smoothed isotonic on the Platt
score, with the margin to the second label as a feature) maps it to the probability of being
right, and ``recalibrate`` rewrites the rows (see ``crowdloop.aggregation.calibration``). Fit on
gold items the model did not train on (out-of-fold probabilities), or the fix learns the
model's training-set optimism.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from crowdloop.aggregation.calibration import (
    TopLabelCalibrator,
    expected_calibration_error,
    recalibrate,
    reliability_table,
)
from crowdloop.aggregation.posterior import Posterior
from crowdloop.errors import InputError


@dataclass(frozen=True)
class Reliability:
    """ECE (15 uniform bins) and the reliability table of a model's top label on gold."""

    ece: float
    accuracy: float
    table: pd.DataFrame


def _top(probs: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth).ravel()
    if probs.ndim != 2 or len(probs) != len(truth):
        raise InputError(f"{len(truth)} gold labels for probabilities of shape {probs.shape}")
    ordered = np.sort(probs, axis=1)
    second = ordered[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    return ordered[:, -1], ordered[:, -1] - second, probs.argmax(axis=1) == truth


def model_reliability(probs: np.ndarray, truth: np.ndarray, n_bins: int = 15) -> Reliability:
    """How honest the model's confidence is on gold: ``probs`` (n, K) on label codes, ``truth`` the codes."""
    confidence, _, correct = _top(probs, truth)
    return Reliability(
        ece=expected_calibration_error(confidence, correct, n_bins=n_bins),
        accuracy=float(correct.mean()),
        table=reliability_table(confidence, correct, n_bins=n_bins),
    )


def fit_gold_calibrator(probs: np.ndarray, truth: np.ndarray, method: str = "smooth") -> TopLabelCalibrator:
    """A ``TopLabelCalibrator`` of the model's top label (confidence and margin) fitted on gold."""
    confidence, margin, correct = _top(probs, truth)
    return TopLabelCalibrator(method=method, features=("confidence", "margin")).fit(confidence, correct, margin=margin)


@dataclass(frozen=True)
class VoteCalibration:
    r"""How a model's probability rows vote (``vote_calibration``): each row mixed with the uniform,
    $\tilde p = (1 - \epsilon)\,p + \epsilon / K$ (``floored``), then tempered by the consensus,
    $\tilde p^\tau$ renormalised (``temperature``)."""

    temperature: float
    floor: float

    def floored(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` (n, K) as they vote (``floored``)."""
        return floored(probs, self.floor)


def floored(probs: np.ndarray | sp.spmatrix, floor: float) -> np.ndarray | sp.csr_matrix:
    r"""``probs`` (n, K) mixed with the uniform: $(1 - \epsilon)\,p + \epsilon / K$ (``floor`` $\epsilon$).
    Sparse rows (a model's top labels, the rest of the mass shared equally by the others, as the
    consensus reads them) stay sparse: their stored values are mixed, which mixes the rest too."""
    if sp.issparse(probs):
        out = sp.csr_matrix(probs, dtype=np.float64, copy=True)
        out.data = (1 - floor) * out.data + floor / out.shape[1]
        return out
    probs = np.asarray(probs, dtype=np.float64)
    return (1 - floor) * probs + floor / probs.shape[1]


FLOOR_BOUNDS = (1e-6, 0.5)
r"""The floor $\epsilon$ a fit may choose (``vote_calibration``)."""


def vote_calibration(probs: np.ndarray, truth: np.ndarray) -> VoteCalibration:
    r"""The floor $\epsilon$ and exponent $\tau$ a model's probabilities vote with, fitted together
    by maximum likelihood on gold (rows the model did not train on): $\arg\max_{\tau, \epsilon}
    \sum_i \big[\tau \log \tilde p_{i z_i} - \log \sum_k \tilde p_{ik}^\tau\big]$ with
    $\tilde p = (1 - \epsilon)\,p + \epsilon / K$: temperature scaling (Guo et al., ICML 2017), the
    form in which the consensus weighs a model, of a row contaminated with the uniform
    ($\epsilon$-contamination, Huber 1964). A text classifier's errors are not all mild: on the
    Flipkart sample through the API its early versions were wrong on a tenth of the gold items they
    gave .99 or more (7-12 items each). A temperature alone must either let such a row
    veto three agreeing annotators (it did, through the API: items escalated that an expert and two
    others had answered alike) or flatten every right row as much; the floor bounds what one row
    can say against a label at $\tau \log\big(((1 - \epsilon) + \epsilon / K)\,K / \epsilon\big)$ and
    leaves the rest of the row's evidence as it is. $\tau \in [e^{-6}, e]$, $\epsilon$ in
    ``FLOOR_BOUNDS``."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64).ravel()
    if probs.ndim != 2 or len(probs) != len(truth) or not len(truth):
        raise InputError(f"{len(truth)} gold labels for probabilities of shape {probs.shape}")
    rows = np.arange(len(truth))
    low, high = (float(np.log(b / (1 - b))) for b in FLOOR_BOUNDS)

    def loss(x: np.ndarray) -> float:
        tau = np.exp(x[0])
        log_p = np.log(floored(probs, expit(x[1])))
        return float(-(tau * log_p[rows, truth] - logsumexp(tau * log_p, axis=1)).mean())

    fit = minimize(loss, x0=np.array([0.0, np.log(0.01 / 0.99)]), method="L-BFGS-B", bounds=[(-6.0, 1.0), (low, high)])
    return VoteCalibration(temperature=float(np.exp(fit.x[0])), floor=float(expit(fit.x[1])))


def apply_calibrator(calibrator: TopLabelCalibrator, probs: np.ndarray) -> np.ndarray:
    """``probs`` with each row's top probability replaced by the calibrated one (the argmax is kept)."""
    probs = np.asarray(probs, dtype=np.float64)
    ordered = np.sort(probs, axis=1)
    second = ordered[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    calibrated = calibrator.predict(ordered[:, -1], margin=ordered[:, -1] - second)
    return np.asarray(recalibrate(Posterior(probs), calibrated).probs)
