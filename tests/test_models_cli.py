"""``crowdloop train``, ``suggest`` and ``autolabel`` on files, and their errors on bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app

runner = CliRunner()
WORDS = {"Home > Lamps": ["lamp", "lantern"], "Home > Rugs": ["rug", "carpet"], "Wear > Shoes": ["boots", "sneakers"]}
NOISE = ["blue", "red", "new", "pro", "mini", "large", "set", "acme", "zeta", "classic"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    labels = rng.choice(list(WORDS), n)
    texts = [
        f"{rng.choice(WORDS[c])} {' '.join(rng.choice(NOISE, 2, replace=False))} {k}" for k, c in enumerate(labels)
    ]
    items = [f"p{k}" for k in range(n)]
    known = np.where(np.arange(n) < 120, labels, "")  # 120 labeled, 80 gold, 40 open
    pd.DataFrame({"item": items, "text": texts, "label": known}).to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame({"task": items[120:200], "label": labels[120:200]}).to_csv(tmp_path / "gold.csv", index=False)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_suggest_autolabel_round_trip(files):
    registry = files / "models"
    result = invoke("train", files / "items.csv", "--registry", registry)
    assert result.exit_code == 0, result.output
    assert "v0001" in result.output
    manifest = json.loads((registry / "v0001" / "manifest.json").read_text())
    assert manifest["training"]["n_items"] == 120 and manifest["metrics"]["oof_accuracy"] > 0.9
    assert invoke("train", files / "items.csv", "--registry", registry, "--hierarchical").exit_code == 0
    assert (registry / "v0002").is_dir()

    out = files / "suggestions.csv"
    result = invoke("suggest", files / "items.csv", "--registry", registry, "--version", "v0001", "--top-k", "2",
                    "--hide-rate", "0.25", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    suggestions = pd.read_csv(out)
    assert list(suggestions.columns) == ["item", "rank", "label", "probability", "shown"]
    assert len(suggestions) == 480 and (~suggestions["shown"]).sum() == 2 * 60
    assert suggestions.groupby("item")["shown"].nunique().eq(1).all()  # hidden per item, not per row

    auto, ask = files / "auto.csv", files / "ask.csv"
    result = invoke("autolabel", files / "items.csv", "--gold", files / "gold.csv", "--registry", registry,
                    "--version", "v0001", "--target", "0.9", "--out", auto, "--ask-out", ask)  # fmt: skip
    assert result.exit_code == 0, result.output
    done, rest = pd.read_csv(auto), pd.read_csv(ask)
    assert len(done) + len(rest) == 40 and len(done) > 20  # only the open items; most are easy
    assert set(done["item"]).isdisjoint(rest["item"])


def test_autolabel_refuses_gold_the_model_trained_on(files):
    registry = files / "models"
    assert invoke("train", files / "items.csv", "--gold", files / "gold.csv", "--registry", registry).exit_code == 0
    result = invoke("autolabel", files / "items.csv", "--gold", files / "gold.csv", "--registry", registry)
    assert result.exit_code == 1 and "every gold item was in the model's training set" in result.output


def test_train_with_pseudo_labels_and_synthetic_items(files):
    frame = pd.read_csv(files / "items.csv", keep_default_na=False)
    frame["synthetic"] = ["true" if k % 10 == 0 else "false" for k in range(len(frame))]
    frame.to_csv(files / "items2.csv", index=False)
    pseudo = pd.DataFrame({"task": ["p200", "p201", "p202"], "label": ["Home > Lamps"] * 3,
                           "confidence": [0.99, 0.5, 0.95]})  # fmt: skip
    pseudo.to_csv(files / "pseudo.csv", index=False)
    result = invoke("train", files / "items2.csv", "--pseudo", files / "pseudo.csv", "--registry", files / "m")
    assert result.exit_code == 0, result.output
    manifest = json.loads((files / "m" / "v0001" / "manifest.json").read_text())
    assert manifest["training"]["sources"] == {"accepted": 120, "pseudo": 2}
    assert manifest["training"]["n_synthetic"] == 13  # 12 labeled and the pseudo-labeled p200
    assert manifest["metrics"]["oof_n_real"] == 108  # graded on real human-labeled items only


def test_example_runs_without_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("train").exit_code == 0
    result = invoke("autolabel", "--target", "0.9")
    assert result.exit_code == 0, result.output
    assert "automated" in result.output and (tmp_path / "autolabeled.csv").is_file()
    assert invoke("suggest").exit_code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("item,label\np1,a\n", "missing column 'text'"),
        ("item,text\np1,lamp\np1,rug\n", "line 3, field 'item': item 'p1' listed twice"),
        ("item,text\np1,lamp\np2,\n", "line 3, field 'text': empty text"),
        ("item,text,synthetic\np1,lamp,maybe\n", "field 'synthetic': expected true or false"),
    ],
)
def test_bad_items_are_rejected_clearly(tmp_path, content, message):
    path = tmp_path / "items.csv"
    path.write_text(content)
    result = invoke("train", path, "--registry", tmp_path / "m")
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m").exists()  # nothing written


def test_bad_label_files_and_options_are_rejected(files):
    (files / "g.csv").write_text("task,label\nnope,Home > Lamps\n")
    result = invoke("train", files / "items.csv", "--gold", files / "g.csv", "--registry", files / "m")
    assert result.exit_code == 1 and "item 'nope' is not in the items file" in result.output
    (files / "p.csv").write_text("task,label,confidence\np200,Home > Lamps,1.7\n")
    result = invoke("train", files / "items.csv", "--pseudo", files / "p.csv", "--registry", files / "m")
    assert result.exit_code == 1 and "field 'confidence': expected a probability" in result.output
    result = invoke("suggest", files / "items.csv", "--registry", files / "none")
    assert result.exit_code == 1 and "no model has been trained here" in result.output
    assert invoke("train", files / "items.csv", "--registry", files / "m").exit_code == 0
    result = invoke("suggest", files / "items.csv", "--registry", files / "m", "--top-k", "0")
    assert result.exit_code == 1 and "k must be a positive integer" in result.output
    result = invoke("suggest", files / "items.csv", "--registry", files / "m", "--version", "v0042")
    assert result.exit_code == 1 and "no model version 'v0042'" in result.output


def test_every_ml_command_reads_item_or_task_and_writes_item(files):
    """One vocabulary: the item ids in an ``item`` or a ``task`` column (or the one --item-column
    names) in every file, written as ``item``; the long jobs show their progress."""
    items = pd.read_csv(files / "items.csv", keep_default_na=False)
    items.rename(columns={"item": "task"}).to_csv(files / "tasks.csv", index=False)
    items.rename(columns={"item": "sku"}).to_csv(files / "skus.csv", index=False)
    gold = pd.read_csv(files / "gold.csv").rename(columns={"task": "item"})
    gold.to_csv(files / "gold_items.csv", index=False)
    registry = files / "models"
    result = invoke("train", files / "tasks.csv", "--registry", registry)
    assert result.exit_code == 0, result.output
    assert "training on" in result.output and "4/4" in result.output  # 3 folds, then the final fit
    for name, truth, extra in (("tasks.csv", "gold.csv", []), ("skus.csv", "gold_items.csv", ["--item-column", "sku"])):
        out = files / f"suggested-{name}"
        result = invoke("suggest", files / name, "--registry", registry, "--out", out, *extra)
        assert result.exit_code == 0, result.output
        assert "predicting 240 items" in result.output
        assert pd.read_csv(out)["item"].iloc[0] == "p0"
        result = invoke("autolabel", files / name, "--registry", registry, "--gold", files / truth,
                        "--out", files / "auto.csv", "--ask-out", files / "ask.csv", *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "item" in pd.read_csv(files / "ask.csv").columns
    labelled = items[items["label"] != ""].rename(columns={"item": "task"})[["task", "label"]]
    labelled.to_csv(files / "labels.csv", index=False)
    out = files / "next.csv"
    result = invoke("select", files / "skus.csv", "--item-column", "sku", "--labels", files / "labels.csv",
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out).columns[0] == "item"
    result = invoke("errors", files / "tasks.csv", "--out", files / "errors.csv", "--n-folds", 3)
    assert result.exit_code == 1 and "empty" in result.output  # open items have no label to check
    labelled.assign(text=items["text"][items["label"] != ""].to_numpy()).rename(columns={"task": "sku"}).to_csv(
        files / "labelled_skus.csv", index=False
    )
    result = invoke("errors", files / "labelled_skus.csv", "--item-column", "sku", "--out", files / "errors.csv",
                    "--n-folds", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    review = pd.read_csv(files / "errors.csv")
    assert "item" in review.columns
    assert f"{int(review['flagged'].sum())} of them flagged" in result.output.replace("\n", " ").replace("│", " ")
    result = invoke("train", files / "skus.csv", "--registry", registry)
    assert result.exit_code == 1 and "missing column 'item' or 'task'" in result.output


@pytest.mark.parametrize("flat", [False, True])
def test_autolabel_leaves_to_humans_the_labels_no_gold_proved(files, flat):
    """The gold is reweighted to the open items by their predicted label (its top-level branch in a
    taxonomy), as the service does: with no gold of Wear > Shoes, the open items the model is sure
    are shoes go to humans, however sure it is; those of the labels the gold proved are automated."""
    items = pd.read_csv(files / "items.csv", keep_default_na=False)
    gold = pd.read_csv(files / "gold.csv")
    if flat:  # labels Lamps, Rugs, Shoes: a stratum per label
        items["label"] = items["label"].str.split(" > ").str[-1]
        gold["label"] = gold["label"].str.split(" > ").str[-1]
    items.to_csv(files / "items.csv", index=False)
    gold[~gold["label"].str.contains("Shoes")].to_csv(files / "gold.csv", index=False)
    registry = files / "models"
    assert invoke("train", files / "items.csv", "--registry", registry).exit_code == 0
    auto, ask = files / "auto.csv", files / "ask.csv"
    result = invoke("autolabel", files / "items.csv", "--gold", files / "gold.csv", "--registry", registry,
                    "--target", "0.9", "--out", auto, "--ask-out", ask)  # fmt: skip
    assert result.exit_code == 0, result.output
    done, rest = pd.read_csv(auto), pd.read_csv(ask)
    shoes = rest["suggestion"].str.contains("Shoes")
    assert len(done) > 5 and not done["label"].str.contains("Shoes").any()
    assert shoes.any() and (rest["confidence"][shoes] >= done["confidence"].min()).any()  # sure, yet asked
    output = " ".join(result.output.replace("│", " ").split())
    assert "go to humans: no gold proved their label" in output
    assert ("reweighted to the open items" in output) == flat  # one branch of the gold: weights all equal
