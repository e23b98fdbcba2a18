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
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

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


def vote_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    r"""The exponent $\tau$ a model's probabilities vote with ($p^\tau$, renormalised), fitted by
    maximum likelihood on gold: $\arg\max_\tau \sum_i \big[\tau \log p_{i z_i} - \log \sum_k
    p_{ik}^\tau\big]$, temperature scaling of the log-probabilities (Guo et al., ICML 2017), the
    form in which the online posterior weighs a model (``service.online``); $\tau \in [e^{-6}, e]$."""
    log_p = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-12))
    truth = np.asarray(truth, dtype=np.int64).ravel()
    if log_p.ndim != 2 or len(log_p) != len(truth) or not len(truth):
        raise InputError(f"{len(truth)} gold labels for probabilities of shape {log_p.shape}")
    own = log_p[np.arange(len(truth)), truth]

    def loss(log_tau: float) -> float:
        tau = np.exp(log_tau)
        return float(-(tau * own - logsumexp(tau * log_p, axis=1)).mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-6.0, 1.0), method="bounded").x))


def apply_calibrator(calibrator: TopLabelCalibrator, probs: np.ndarray) -> np.ndarray:
    """``probs`` with each row's top probability replaced by the calibrated one (the argmax is kept)."""
    probs = np.asarray(probs, dtype=np.float64)
    ordered = np.sort(probs, axis=1)
    second = ordered[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    calibrated = calibrator.predict(ordered[:, -1], margin=ordered[:, -1] - second)
    return np.asarray(recalibrate(Posterior(probs), calibrated).probs)
