"""A fitted text model as plain data (JSON and NumPy arrays), and back: never a pickle.

``to_arrays`` reads off what a ``TextClassifier`` (temperature calibration) or a
``HierarchicalClassifier`` of them learned (a ``FoldRouted`` pair: each of its models, prefixed):
each vectorizer's vocabulary (its terms in column order) and IDF weights, the linear SVM's
coefficients and intercepts, the temperature, the classes and the heads' depths. ``from_arrays``
rebuilds a model that predicts the same probabilities (the coefficients kept as float32: to about
1e-6).
``pack`` stores both in one ``.npz`` (``allow_pickle=False`` on the way back) and ``unpack``
checks its SHA-256 before reading a byte of it.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
from sklearn.svm import LinearSVC

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import Taxonomy
from crowdloop.models.hierarchical import HierarchicalClassifier
from crowdloop.models.routed import FoldRouted
from crowdloop.models.text import TextClassifier

FORMAT = "crowdloop-text-model/1"
_PARAMS = ("C", "cv", "char_min_df", "max_features", "random_state", "sublinear_tf", "class_weight")


def _text_arrays(model: TextClassifier, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if model.calibration != "temperature" or not isinstance(model.estimator_, LinearSVC | type(None)):
        raise ConfigError("only a TextClassifier with calibration='temperature' is stored as data")
    for name, vectorizer in model.vectorizer_.transformer_list:
        vocabulary = vectorizer.vocabulary_
        terms = np.empty(len(vocabulary), dtype=object)
        terms[list(vocabulary.values())] = list(vocabulary.keys())
        arrays[f"{prefix}{name}_terms"] = terms.astype(str)
        arrays[f"{prefix}{name}_idf"] = np.asarray(vectorizer.idf_, dtype=np.float64)
    if model.estimator_ is not None:
        arrays[f"{prefix}coef"] = np.asarray(model.estimator_.coef_, dtype=np.float32)
        arrays[f"{prefix}intercept"] = np.asarray(model.estimator_.intercept_, dtype=np.float64)
        arrays[f"{prefix}svm_classes"] = np.asarray(model.estimator_.classes_, dtype=np.int64)
    return {
        "params": {p: getattr(model, p) for p in _PARAMS}
        | {"word_ngrams": list(model.word_ngrams), "char_ngrams": list(model.char_ngrams)},
        "temperature": model.temperature_,
        "fitted_svm": model.estimator_ is not None,
    }


def _text_model(meta: dict[str, Any], classes: np.ndarray, prefix: str, arrays: Any) -> TextClassifier:
    params = dict(meta["params"])
    params["word_ngrams"], params["char_ngrams"] = tuple(params["word_ngrams"]), tuple(params["char_ngrams"])
    model = TextClassifier(**params)
    model.classes_ = classes
    model.temperature_ = float(meta["temperature"])
    union = model.make_vectorizer(2 * model.char_min_df)
    for name, vectorizer in union.transformer_list:
        terms = arrays[f"{prefix}{name}_terms"]
        vectorizer.vocabulary_ = {str(t): i for i, t in enumerate(terms.tolist())}
        vectorizer.idf_ = arrays[f"{prefix}{name}_idf"]
    model.vectorizer_ = union
    model.estimator_ = None
    if meta["fitted_svm"]:
        svm = model.make_svm()
        svm.coef_ = arrays[f"{prefix}coef"].astype(np.float64)
        svm.intercept_ = arrays[f"{prefix}intercept"]
        svm.classes_ = arrays[f"{prefix}svm_classes"]
        model.estimator_ = svm
    return model


Model = TextClassifier | HierarchicalClassifier | FoldRouted


def to_arrays(model: Model) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The model's JSON description and its arrays (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    if isinstance(model, FoldRouted):  # each fold model's arrays under its own prefix
        folds = []
        for f, part in enumerate(model.models):
            meta, part_arrays = to_arrays(part)
            folds.append(meta)
            arrays |= {f"f{f}_{name}": value for name, value in part_arrays.items()}
        return {"format": FORMAT, "kind": "routed", "folds": folds}, arrays
    if isinstance(model, HierarchicalClassifier):
        heads = []
        for h, head in enumerate(model.heads_):
            arrays[f"h{h}_classes"] = np.asarray(head.classes_).astype(str)
            heads.append(_text_arrays(head, f"h{h}_", arrays))
        arrays["classes"] = np.asarray(model.classes_).astype(str)
        meta = {"kind": "hierarchical", "depths": list(model.depths_), "separator": model.separator, "heads": heads}
    elif isinstance(model, TextClassifier):
        arrays["classes"] = np.asarray(model.classes_, dtype=np.int64)
        meta = {"kind": "flat", **_text_arrays(model, "", arrays)}
    else:
        raise ConfigError(f"cannot store a {type(model).__name__} as data")
    return {"format": FORMAT, **meta}, arrays


def from_arrays(meta: dict[str, Any], arrays: Any) -> Model:
    """The model ``to_arrays`` described (flat models' classes are integer label codes,
    hierarchical models' the taxonomy paths)."""
    if meta.get("format") != FORMAT:
        raise InputError(f"not a stored text model (format {meta.get('format')!r})")
    if meta["kind"] == "routed":
        return FoldRouted([
            from_arrays(part, {name[len(f"f{f}_"):]: value for name, value in arrays.items()
                               if name.startswith(f"f{f}_")})
            for f, part in enumerate(meta["folds"])
        ])  # fmt: skip
    if meta["kind"] == "flat":
        return _text_model(meta, arrays["classes"].astype(np.int64), "", arrays)
    model = HierarchicalClassifier(depths=meta["depths"], separator=meta["separator"])
    model.classes_ = arrays["classes"].astype(object)
    model.taxonomy_ = Taxonomy.from_paths(model.classes_.tolist(), separator=model.separator)
    model.depths_ = list(meta["depths"])
    model.heads_ = [
        _text_model(head, arrays[f"h{h}_classes"].astype(object), f"h{h}_", arrays)
        for h, head in enumerate(meta["heads"])
    ]
    model._leaf_codes = model.taxonomy_.encode(model.classes_)
    return model


def pack(model: Model) -> tuple[bytes, str]:
    """The model as ``.npz`` bytes (its JSON under ``meta``) and their SHA-256 hex digest."""
    meta, arrays = to_arrays(model)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def unpack(data: bytes, sha256: str) -> Model:
    """The model ``pack`` stored, once ``data`` matches ``sha256`` (else ``InputError``)."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError("the stored model does not match its SHA-256: refusing to load it")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        loaded = {name: arrays[name] for name in arrays.files}
    return from_arrays(json.loads(str(loaded.pop("meta"))), loaded)
