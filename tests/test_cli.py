import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app

runner = CliRunner()


@pytest.fixture
def answers_csv(tmp_path):
    rows = [
        ("t1", "a", "cat"), ("t1", "b", "cat"), ("t1", "c", "dog"),
        ("t2", "a", "dog"), ("t2", "b", "dog"), ("t2", "c", "dog"),
        ("t3", "a", "cat"), ("t3", "b", "dog"), ("t3", "c", "cat"),
    ]  # fmt: skip
    path = tmp_path / "answers.csv"
    pd.DataFrame(rows, columns=["task", "worker", "label"]).to_csv(path, index=False)
    return path


def test_aggregate_writes_labels_and_skills(tmp_path, answers_csv):
    out, skills = tmp_path / "labels.csv", tmp_path / "skills.csv"
    result = runner.invoke(app, ["aggregate", str(answers_csv), "--method", "mv", "--out", str(out),
                                 "--skills-out", str(skills)])  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(out)
    assert list(labels.columns) == ["task", "label", "confidence"]
    assert labels.set_index("task")["label"].to_dict() == {"t1": "cat", "t2": "dog", "t3": "cat"}
    assert labels["confidence"].round(3).tolist() == [0.667, 1.0, 0.667]
    assert set(pd.read_csv(skills).columns) == {"worker", "skill", "answers"}


def test_auto_says_what_it_picked(tmp_path, answers_csv):
    result = runner.invoke(app, ["aggregate", str(answers_csv), "--out", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert "method" in result.output


def test_gold_clamps(tmp_path, answers_csv):
    gold = tmp_path / "gold.csv"
    gold.write_text("task,label\nt3,dog\n")
    out = tmp_path / "labels.csv"
    result = runner.invoke(app, ["aggregate", str(answers_csv), "-m", "ds", "--gold", str(gold), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out).set_index("task").loc["t3", "label"] == "dog"


def test_renamed_columns(tmp_path):
    path = tmp_path / "answers.tsv"
    path.write_text("item\tannotator\tanswer\n1\ta\tx\n1\tb\tx\n")
    out = tmp_path / "labels.csv"
    args = ["aggregate", str(path), "-m", "mv", "-o", str(out), "--task-column", "item",
            "--worker-column", "annotator", "--label-column", "answer"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["label"].tolist() == ["x"]


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("task,worker\n1,a\n", [], "missing column 'label'"),
        ("task,worker,label\n1,a,cat\n2,,dog\n", [], "line 3, field 'worker': empty value"),
        ("task,worker,label\n1,a,cat\n2,b,cow\n", ["--labels", "LABELS"], "line 3, field 'label': label 'cow'"),
        ("", [], "the file is empty"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, content, extra, expected):
    path = tmp_path / "answers.csv"
    path.write_text(content)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    extra = [str(labels) if a == "LABELS" else a for a in extra]
    args = ["aggregate", str(path), "-o", str(tmp_path / "out.csv"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_unknown_method_and_missing_file(tmp_path, answers_csv):
    result = runner.invoke(app, ["aggregate", str(answers_csv), "-m", "nope"])
    assert result.exit_code == 1 and "unknown method 'nope'" in result.output
    result = runner.invoke(app, ["aggregate", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_methods_lists_the_registry():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0 and "ds" in result.output and "auto" in result.output
