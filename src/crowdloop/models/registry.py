"""Versioned models on disk: every retraining is kept with what it learned from and how well it did.

A registry is a local directory; each version a subdirectory ``v0001``, ``v0002``, ... holding
``model.joblib`` (the fitted estimator), ``train_keys.npy`` (64-bit hashes of the normalised
training texts, so that later scoring can tell which items the model has seen) and
``manifest.json``: version id, created-at (UTC, ISO 8601), the training set's size, its SHA-256
(over item, text, label, weight and source, in a canonical order: the same set gives the same hash)
and label counts, the model's class and parameters, the metrics, the model file's SHA-256, and the
crowdloop version.

joblib files are pickles, which can run code when loaded: ``load`` only opens a file inside the
registry directory (never a URL), and refuses one whose SHA-256 differs from its manifest's, so a
model file swapped or damaged after saving is not unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError, InputError
from crowdloop.models.text import normalize_text

VERSION = re.compile(r"^v(\d{4,})$")
MODEL_FILE, KEYS_FILE, MANIFEST_FILE = "model.joblib", "train_keys.npy", "manifest.json"


def text_keys(texts: np.ndarray | list[str] | pd.Series) -> np.ndarray:
    """64-bit hashes of the normalised texts (``normalize_text``): how a registry remembers training items."""
    return pd.util.hash_array(normalize_text(texts).astype(str)).astype(np.uint64)


def training_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a training set's rows (item, text, label, weight, source), independent of row order."""
    columns = [c for c in ("item", "text", "label", "weight", "source") if c in frame.columns]
    canonical = frame[columns].astype(str).sort_values(columns).to_csv(index=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


class ModelRegistry:
    """Save, list and load model versions under ``root`` (created on the first save)."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if "://" in text:
            raise ConfigError(f"a model registry is a local directory, not {text!r}")
        self.root = Path(root)

    def versions(self) -> list[str]:
        """Version ids, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION.match(p.name)]
        return sorted(found, key=lambda name: int(name[1:]))

    def save(self, model: Any, training: pd.DataFrame, metrics: dict[str, Any] | None = None) -> str:
        """Store a fitted model with its training set's fingerprint and ``metrics``; returns the new version id."""
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise ConfigError(f"only a fitted model with predict_proba can be saved, not {type(model).__name__}")
        if "text" not in training.columns or "label" not in training.columns:
            raise InputError("the training set needs columns text and label")
        self.root.mkdir(parents=True, exist_ok=True)
        existing = self.versions()
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        folder = self.root / version
        folder.mkdir()
        joblib.dump(model, folder / MODEL_FILE)
        np.save(folder / KEYS_FILE, np.unique(text_keys(training["text"])))
        sources = training["source"].value_counts().to_dict() if "source" in training else {}
        params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
        manifest = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "params": _jsonable(params),
            "n_classes": len(model.classes_),
            "training": {
                "n_items": len(training),
                "sha256": training_hash(training),
                "sources": _jsonable(sources),
                "n_synthetic": int(training["synthetic"].sum()) if "synthetic" in training else 0,
                "n_labels": int(training["label"].nunique()),
            },
            "metrics": _jsonable(metrics or {}),
            "model_sha256": _sha256(folder / MODEL_FILE),
            "crowdloop": _crowdloop_version(),
        }
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        return version

    def _folder(self, version: str | None) -> Path:
        versions = self.versions()
        if not versions:
            raise InputError("no model has been trained here", source=str(self.root),
                             hint="Run 'crowdloop train' first.")  # fmt: skip
        version = versions[-1] if version is None else version
        if version not in versions:
            raise InputError(f"no model version {version!r} (versions: {', '.join(versions)})", source=str(self.root))
        return self.root / version

    def manifest(self, version: str | None = None) -> dict[str, Any]:
        """The manifest of ``version`` (default: the latest)."""
        return json.loads((self._folder(version) / MANIFEST_FILE).read_text())

    def load(self, version: str | None = None) -> Any:
        """The fitted model of ``version`` (default: the latest), after checking its file's SHA-256."""
        folder = self._folder(version)
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        if _sha256(folder / MODEL_FILE) != manifest["model_sha256"]:
            raise InputError("the model file does not match its manifest (changed after saving): not loading it",
                             source=str(folder / MODEL_FILE))  # fmt: skip
        return joblib.load(folder / MODEL_FILE)

    def seen(self, texts: np.ndarray | list[str] | pd.Series, version: str | None = None) -> np.ndarray:
        """Whether each text (normalised) was in the training set of ``version``."""
        keys = np.load(self._folder(version) / KEYS_FILE)
        return np.isin(text_keys(texts), keys)

    def table(self) -> pd.DataFrame:
        """One row per version: created-at, training size and hash, and the metrics."""
        rows = []
        for version in self.versions():
            m = self.manifest(version)
            rows.append({"version": version, "created_at": m["created_at"], "model": m["model"].rsplit(".", 1)[-1],
                         "n_train": m["training"]["n_items"], "train_sha256": m["training"]["sha256"][:12],
                         **m["metrics"]})  # fmt: skip
        return pd.DataFrame(rows)


def _crowdloop_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crowdloop")
    except PackageNotFoundError:
        return "unknown"
