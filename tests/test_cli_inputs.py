"""Where a user meets the truth commands: input files as people have them, and readable output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.cli.truth import summary
from crowdloop.errors import InputError
from crowdloop.io import read_answers, read_probabilities
from crowdloop.labels import LabelSpace
from crowdloop.simulation.crowds import synthetic_crowd, synthetic_model_probs

runner = CliRunner()


def _line(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def crowd(tmp_path):
    frame, truth = synthetic_crowd(400, 1, 8, 4, random_state=3)
    frame["task"] = "t" + frame["task"].astype(str)
    path = tmp_path / "answers.csv"
    frame.to_csv(path, index=False)
    probs = synthetic_model_probs(truth.to_numpy(), 4, overconfidence=1.3, random_state=4)
    wide = pd.DataFrame(np.round(probs, 3), columns=[str(k) for k in range(4)])
    wide.insert(0, "task", "t" + truth.index.astype(str))
    probs_path = tmp_path / "probs.csv"
    wide.to_csv(probs_path, index=False)
    return path, probs_path, truth


def test_rounded_probabilities_are_renormalised_with_a_note(tmp_path, crowd):
    answers, probs, _ = crowd
    # before: "probabilities of task 't0' sum to 0.9990, not 1"
    result = runner.invoke(app, ["decide", str(answers), "--model-probs", str(probs), "-o", str(tmp_path / "d.csv")])
    assert result.exit_code == 0, result.output
    assert "renormalised" in _line(result)
    labels = LabelSpace(["0", "1", "2", "3"])
    notes: list[str] = []
    _, matrix = read_probabilities(probs, labels, notes=notes)
    assert np.allclose(matrix.sum(axis=1), 1.0) and "renormalised" in notes[0]


def test_what_is_not_a_distribution_is_refused_naming_file_row_field(tmp_path):
    labels = LabelSpace(["cat", "dog"])
    path = tmp_path / "p.csv"
    path.write_text("task,cat,dog\nt1,0.5,0.5\nt2,0.3,0.5\n")
    with pytest.raises(InputError, match=r"p\.csv, line 3.*sum to 0\.8000"):
        read_probabilities(path, labels)
    path.write_text("task,cat,dog\nt1,0.5,0.5\nt2,-0.1,1.1\n")
    with pytest.raises(InputError, match=r"p\.csv, line 3, field 'cat'"):
        read_probabilities(path, labels)
    path.write_text("task,cat,dog\nt1,nan,0.5\n")
    with pytest.raises(InputError, match=r"line 2, field 'cat'"):
        read_probabilities(path, labels)


def test_aggregate_takes_model_probabilities(tmp_path, crowd):
    answers, probs, truth = crowd
    out = tmp_path / "labels.csv"
    plain = runner.invoke(app, ["aggregate", str(answers), "-o", str(tmp_path / "plain.csv")])
    assert plain.exit_code == 0, plain.output
    result = runner.invoke(app, ["aggregate", str(answers), "--model-probs", str(probs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "model temperature" in _line(result) and "learned from the crowd" in _line(result)

    def accuracy(path) -> float:
        labels = pd.read_csv(path, dtype=str).set_index("task")["label"]
        return float((labels.reindex("t" + truth.index.astype(str)).to_numpy() == truth.astype(str).to_numpy()).mean())

    assert accuracy(out) > accuracy(tmp_path / "plain.csv") + 0.05
    stated = runner.invoke(
        app, ["aggregate", str(answers), "--model-probs", str(probs), "--model-temperature", "1", "-o", str(out)]
    )
    assert stated.exit_code == 0, stated.output
    assert "1 (stated)" in _line(stated)
    bad = runner.invoke(app, ["aggregate", str(answers), "--model-probs", str(probs), "--model-temperature", "hot"])
    assert bad.exit_code == 1 and "LOW:HIGH" in _line(bad)


def test_a_class_only_the_model_proposes_joins_the_labels(tmp_path):
    answers = tmp_path / "a.csv"
    answers.write_text("task,worker,label\nt1,u,cat\nt1,v,cat\nt2,u,dog\nt2,v,dog\n")
    probs = tmp_path / "p.csv"
    probs.write_text("task,bird,cat,dog\nt1,0.8,0.1,0.1\nt2,0.1,0.1,0.8\n")
    out = tmp_path / "l.csv"
    result = runner.invoke(app, ["aggregate", str(answers), "--model-probs", str(probs), "-m", "ds", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 labels" in _line(result) or "/ 3" in _line(result)


def test_headerless_answers_say_so_and_no_header_reads_them(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("842,79185673,0,0.1\n842,79185674,1,0.2\n843,79185673,1,0.3\n843,79185674,1,0.1\n")
    result = runner.invoke(app, ["aggregate", str(path), "-o", str(tmp_path / "l.csv")])
    assert result.exit_code == 1
    assert "looks headerless" in _line(result) and "--no-header" in _line(result)
    result = runner.invoke(app, ["aggregate", str(path), "--no-header", "-m", "mv", "-o", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "l.csv")["task"].tolist() == [842, 843]
    swapped, _ = read_answers(path, header=False, task="2", worker="1", label="3")
    assert swapped.items.tolist() == ["79185673", "79185674"]
    with pytest.raises(InputError, match="position"):
        read_answers(path, header=False, task="9")
    semi = tmp_path / "answers.txt"
    semi.write_text("task;worker;label\nt1;a;x\nt1;b;y\n")
    answers, _ = read_answers(semi, sep=";")
    assert answers.n_answers == 2 and answers.labels.labels == ["x", "y"]


def test_gold_errors_name_the_gold_file(tmp_path):
    answers = tmp_path / "a.csv"
    answers.write_text("task,worker,label\nt1,u,cat\nt1,v,cat\nt2,u,dog\n")
    gold = tmp_path / "my_gold.csv"
    gold.write_text("task,label\nt1,cat\nt9,dog\n")
    result = runner.invoke(app, ["aggregate", str(answers), "--gold", str(gold), "-o", str(tmp_path / "l.csv")])
    assert result.exit_code == 1
    # before: "error: gold, row 2: gold item 't9' ..."
    assert "my_gold.csv, line 3" in _line(result)
    gold.write_text("task,label\nt1,cow\n")
    result = runner.invoke(app, ["decide", str(answers), "--gold", str(gold), "-o", str(tmp_path / "d.csv")])
    assert result.exit_code == 1 and "my_gold.csv, line 2, field 'label'" in _line(result)


def test_methods_are_one_readable_sentence_each() -> None:
    result = runner.invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "$" not in result.output and "\\" not in result.output
    assert "confusion matrix per worker" in _line(result)
    assert summary("Majority vote: $P(z_i = k) \\propto \\sum_{w} [y_{iw} = k]$ (one vote.\n\nMore.") == (
        "Majority vote: P(z_i = k) proportional to sum_w [y_iw = k] (one vote."
    )
    assert (
        summary("A ratio $\\frac{a + b}{n}$ of things: and more\n    text.")
        == "A ratio (a + b)/n of things: and more text."
    )
