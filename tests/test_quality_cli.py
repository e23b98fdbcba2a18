import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.cli.common import example_path

runner = CliRunner()


@pytest.fixture
def labelled(tmp_path):
    """60 items over 3 labels, a confident model, and item t5 labelled 'b' where the model is sure of 'a'."""
    rng = np.random.default_rng(0)
    truth = np.repeat(list("abc"), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), np.searchsorted(list("abc"), truth)] = 0.9
    probs += rng.uniform(0, 0.02, probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[5] = [0.96, 0.02, 0.02]
    labels = truth.copy()
    labels[5] = "b"
    tasks = [f"t{i}" for i in range(60)]
    pd.DataFrame({"task": tasks, "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
    wide = pd.DataFrame(probs, columns=list("abc"))
    wide.insert(0, "task", tasks)
    wide.to_csv(tmp_path / "probs.csv", index=False)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_errors_with_probabilities_finds_the_planted_error(labelled):
    out = labelled / "review.csv"
    result = invoke("errors", labelled / "labels.csv", "--probs", labelled / "probs.csv", "--out", out)
    assert result.exit_code == 0, result.output
    review = pd.read_csv(out)
    assert review["item"].tolist() == ["t5"]
    assert review.loc[0, "suggested_label"] == "a" and review.loc[0, "flagged"]
    result = invoke("errors", labelled / "labels.csv", "--probs", labelled / "probs.csv", "--out", out, "--budget", 4)
    assert result.exit_code == 0 and len(pd.read_csv(out)) == 4


def test_errors_trains_the_default_model_on_texts(tmp_path):
    out = tmp_path / "review.csv"
    result = invoke("errors", example_path("quality_items.csv"), "--out", out, "--n-folds", 3)
    assert result.exit_code == 0, result.output
    review = pd.read_csv(out)
    assert 10 <= len(review) <= 40 and review["flagged"].mean() >= 0.8


def test_errors_with_answers_flags_the_planted_annotators(tmp_path):
    out = tmp_path / "annotators.csv"
    result = invoke("errors", "--answers", example_path("quality_answers.csv"), "--annotators-out", out)
    assert result.exit_code == 0, result.output
    report = pd.read_csv(out, keep_default_na=False).set_index("worker")
    assert report.loc["w10", "flag"] == "spammer" and report.loc["w11", "flag"] == "biased"
    assert (report.drop(["w10", "w11"])["flag"] == "").all()


def test_errors_with_answers_and_probabilities_lists_disagreements(tmp_path, labelled):
    answers = pd.DataFrame(
        [(f"t{i}", f"w{w}", lab) for i, lab in enumerate(np.repeat(list("abc"), 20)) for w in range(3)],
        columns=["task", "worker", "label"],
    )
    answers.loc[answers["task"] == "t7", "label"] = "c"  # the crowd agrees on c, the model is sure of a
    answers.to_csv(tmp_path / "answers.csv", index=False)
    out = tmp_path / "disagree.csv"
    result = invoke("errors", "--answers", tmp_path / "answers.csv", "--probs", labelled / "probs.csv", "--out", out,
                    "--annotators-out", tmp_path / "ann.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["item"].tolist() == ["t7"]


def one_line_error(result):
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 2 and "error" in result.output  # rich may wrap the one line
    return " ".join(result.output.split())


def test_errors_rejects_bad_input(labelled):
    pd.DataFrame({"task": ["t1"], "lab": ["a"]}).to_csv(labelled / "nolabel.csv", index=False)
    message = one_line_error(invoke("errors", labelled / "nolabel.csv", "--probs", labelled / "probs.csv"))
    assert "missing column 'label'" in message
    probs = pd.read_csv(labelled / "probs.csv")
    probs.loc[3, "a"] = 0.5
    probs.to_csv(labelled / "bad_probs.csv", index=False)
    message = one_line_error(invoke("errors", labelled / "labels.csv", "--probs", labelled / "bad_probs.csv"))
    assert "sum to" in message and "line 5" in message
    (labelled / "space.txt").write_text("a\nb\n")
    message = one_line_error(
        invoke("errors", labelled / "labels.csv", "--probs", labelled / "probs.csv", "--labels", labelled / "space.txt")
    )
    assert "'c'" in message and "not in the label space" in message
    message = one_line_error(invoke("errors", labelled / "labels.csv"))
    assert "no --probs" in message
    pd.DataFrame({"task": ["t1", "zz"], "label": ["a", "b"]}).to_csv(labelled / "other.csv", index=False)
    message = one_line_error(invoke("errors", labelled / "other.csv", "--probs", labelled / "probs.csv"))
    assert "'zz' has no probabilities" in message
    assert "needs a labelled file" in one_line_error(invoke("errors", "--probs", labelled / "probs.csv"))


def test_errors_without_files_runs_the_examples(tmp_path):
    result = invoke("errors", "--out", tmp_path / "e.csv", "--annotators-out", tmp_path / "a.csv", "--n-folds", 3)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e.csv").exists() and (tmp_path / "a.csv").exists()


def test_plan_on_the_example_curve_writes_the_plot(tmp_path):
    plot = tmp_path / "curve.png"
    result = invoke("plan", "--target", 0.9, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "add data" in result.output and "labels for 0.900" in result.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
    result = invoke("plan", example_path("quality_curve.csv"), "--target", 0.999, "--plot", plot)
    assert result.exit_code == 0 and "change the model" in result.output


def test_plan_measures_a_curve_on_items(tmp_path):
    curve = tmp_path / "curve.csv"
    result = invoke("plan", "--items", example_path("quality_items.csv"), "--curve-out", curve, "--plot",
                    tmp_path / "c.png", "--target", 0.8)  # fmt: skip
    assert result.exit_code == 0, result.output
    measured = pd.read_csv(curve)
    assert list(measured.columns) == ["labels", "accuracy", "n_eval"] and len(measured) >= 3


def test_plan_rejects_bad_curves(tmp_path):
    pd.DataFrame({"labels": [100, 200, 400], "acc": [0.5, 0.6, 0.7]}).to_csv(tmp_path / "a.csv", index=False)
    assert "missing column 'accuracy'" in one_line_error(invoke("plan", tmp_path / "a.csv"))
    pd.DataFrame({"labels": [100, 200, 400], "accuracy": ["0.5", "x", "0.7"]}).to_csv(tmp_path / "b.csv", index=False)
    message = one_line_error(invoke("plan", tmp_path / "b.csv"))
    assert "line 3" in message and "expected a number" in message
    pd.DataFrame({"labels": [100, 200, 400], "accuracy": [0.5, 1.2, 0.7]}).to_csv(tmp_path / "c.csv", index=False)
    assert "[0, 1]" in one_line_error(invoke("plan", tmp_path / "c.csv"))
    pd.DataFrame({"labels": [100, 200], "accuracy": [0.5, 0.6]}).to_csv(tmp_path / "d.csv", index=False)
    assert "3 or more" in one_line_error(invoke("plan", tmp_path / "d.csv"))


def test_plan_without_matplotlib_still_forecasts(tmp_path, monkeypatch):
    import crowdloop.cli.quality as quality_cli

    monkeypatch.setattr(quality_cli, "find_spec", lambda name: None)
    plot = tmp_path / "curve.png"
    result = invoke("plan", "--target", 0.9, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "crowdloop[plot]" in result.output and "recommendation" in result.output
    assert not plot.exists()
