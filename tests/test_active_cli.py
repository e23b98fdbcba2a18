"""``crowdloop select`` on generated files: the batch it writes, and the errors it gives."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app

runner = CliRunner()
WORDS = {"shoe": ["sneaker", "boot", "sandal"], "phone": ["mobile", "smartphone", "android"],
         "lamp": ["bulb", "light", "led"]}  # fmt: skip


def make_items(n=90, seed=0):
    rng = np.random.default_rng(seed)
    cats = np.array(list(WORDS))[np.arange(n) % 3]
    texts = [f"{rng.choice(WORDS[c])} {rng.choice(['red', 'blue', 'pro', 'mini'])} {i}" for i, c in enumerate(cats)]
    return pd.DataFrame({"item": [f"i{i:03d}" for i in range(n)], "text": texts}), cats


@pytest.fixture
def files(tmp_path):
    items, cats = make_items()
    items.to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame({"task": items["item"][:30], "label": cats[:30]}).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path, items, cats


def invoke(*args):
    return runner.invoke(app, ["select", *map(str, args)])


def test_select_writes_the_next_batch_of_unlabelled_items(files):
    path, items, _ = files
    out = path / "next.csv"
    result = invoke(path / "items.csv", "--labels", path / "labels.csv", "--batch", 7, "--out", out)
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out)
    assert list(batch.columns) == ["item", "text", "score", "rank"]
    assert len(batch) == 7 and batch["rank"].tolist() == list(range(1, 8))
    assert not set(batch["item"]) & set(items["item"][:30])  # never an item already labelled
    assert batch["score"].is_monotonic_decreasing


def test_select_with_probabilities_ranks_by_the_strategy(files):
    path, items, _ = files
    pool = items["item"][30:].to_numpy()
    probs = np.tile([0.9, 0.05, 0.05], (len(pool), 1))
    probs[5], probs[17] = [0.4, 0.35, 0.25], [0.5, 0.5, 0.0]  # least confident, smallest margin
    frame = pd.DataFrame(probs, columns=list(WORDS)).assign(task=pool)
    frame.to_csv(path / "probs.csv", index=False)
    for strategy, first in (("least_confidence", pool[5]), ("margin", pool[17])):
        out = path / f"{strategy}.csv"
        result = invoke(path / "items.csv", "--labels", path / "labels.csv", "--probs", path / "probs.csv",
                        "--strategy", strategy, "--batch", 2, "--out", out)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert pd.read_csv(out)["item"].iloc[0] == first


def test_a_cold_start_needs_no_labels(files):
    path, _, _ = files
    out = path / "first.csv"
    result = invoke(path / "items.csv", "--batch", 6, "--out", out)
    assert result.exit_code == 0, result.output
    assert "cold start" in result.output
    assert len(pd.read_csv(out)) == 6


def test_relabel_puts_a_disputed_item_beside_new_ones(files):
    path, items, cats = files
    rows = [(t, w, c) for t, c in zip(items["item"][:30], cats[:30], strict=True) for w in ("a", "b", "c")]
    disputed = items["item"][3]
    rows = [(t, w, "lamp" if (t == disputed and w != "a") else c) for t, w, c in rows]
    rows[9:12] = [(disputed, "a", "shoe"), (disputed, "b", "phone"), (disputed, "c", "lamp")]  # a 1-1-1 split
    pd.DataFrame(rows, columns=["task", "worker", "label"]).to_csv(path / "answers.csv", index=False)
    out = path / "relabel.csv"
    result = invoke(path / "items.csv", "--labels", path / "answers.csv", "--strategy", "relabel",
                    "--batch", 10, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out)
    assert {"kind", "answers", "consensus"} <= set(batch.columns)
    assert batch["item"].iloc[0] == disputed and batch["kind"].iloc[0] == "relabel"
    assert (batch["kind"] == "new").any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "best"], "unknown strategy 'best'"),
        (["--batch", "0"], "batch size must be a positive integer"),
        (["--cold-start", "magic"], "unknown cold start"),
        (["--strategy", "relabel"], "needs crowd answers"),
    ],
)
def test_bad_options_fail_in_one_line(files, args, message):
    path, _, _ = files
    result = invoke(path / "items.csv", "--labels", path / "labels.csv", *args, "--out", path / "x.csv")
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (path / "x.csv").exists()


def test_bad_files_name_the_file_and_line(files):
    path, items, cats = files
    pd.DataFrame({"task": ["i001", "nope"], "label": ["shoe", "lamp"]}).to_csv(path / "bad.csv", index=False)
    result = invoke(path / "items.csv", "--labels", path / "bad.csv", "--out", path / "x.csv")
    assert result.exit_code == 1 and "bad.csv" in result.output and "line 3" in result.output
    items.rename(columns={"text": "title"}).to_csv(path / "notext.csv", index=False)
    result = invoke(path / "notext.csv", "--out", path / "x.csv")
    assert result.exit_code == 1 and "missing column 'text'" in result.output
    pd.DataFrame({"task": items["item"], "label": cats}).to_csv(path / "all.csv", index=False)
    result = invoke(path / "items.csv", "--labels", path / "all.csv", "--out", path / "x.csv")
    assert result.exit_code == 1 and "every item is labelled" in result.output
    pd.DataFrame({"task": ["i040"], "shoe": [0.7], "lamp": [0.1]}).to_csv(path / "p.csv", index=False)
    result = invoke(path / "items.csv", "--labels", path / "labels.csv", "--probs", path / "p.csv",
                    "--out", path / "x.csv")  # fmt: skip
    assert result.exit_code == 1 and "p.csv, line 2" in result.output and "sum to 0.8" in result.output


def test_select_runs_on_the_shipped_example(tmp_path):
    out = tmp_path / "next.csv"
    result = invoke("--batch", 5, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 5
