import inspect

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.cli.truth import decide
from crowdloop.consensus import ConsensusPolicy, Prices

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


def write_probs(path, rows):
    pd.DataFrame(rows, columns=["task", "cat", "dog"]).to_csv(path, index=False)
    return path


def test_decide_writes_one_row_per_task(tmp_path, answers_csv):
    out = tmp_path / "decisions.csv"
    result = runner.invoke(app, ["decide", str(answers_csv), "--max-overlap", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["task", "status", "label", "confidence", "answers", "next", "expected", "expert"]
    assert sorted(table["task"]) == ["t1", "t2", "t3"] and set(table["status"]) <= {"accepted", "escalated"}


def test_decide_defaults_are_the_policys():
    defaults = {name: p.default for name, p in inspect.signature(decide).parameters.items()}
    policy = ConsensusPolicy()
    for name in ("target", "min_overlap", "max_overlap", "escalate_early", "label_value", "prior_accuracy"):
        assert defaults[name] == getattr(policy, name), name
    assert (defaults["price"], defaults["expert_cost"] * defaults["price"]) == (Prices().crowd, Prices().expert)


def test_decide_refuses_a_setting_out_of_its_bounds_in_one_line(tmp_path, answers_csv):
    result = runner.invoke(app, ["decide", str(answers_csv), "--prior-accuracy", "1", "-o", str(tmp_path / "d.csv")])
    assert result.exit_code != 0 and "prior_accuracy must be in (0, 1), got 1.0" in result.output
    assert not (tmp_path / "d.csv").exists()


def test_decide_model_agrees_preset(tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text("task,worker,label\nt1,a,cat\nt2,a,dog\nt3,a,dog\nt3,b,dog\n")
    probs = write_probs(tmp_path / "probs.csv", [("t1", 0.9, 0.1), ("t2", 0.9, 0.1), ("t3", 0.5, 0.5)])
    out = tmp_path / "decisions.csv"
    args = ["decide", str(answers), "--model-probs", str(probs), "--policy", "model-agrees", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out).set_index("task")
    assert table.loc["t1", ["status", "label"]].tolist() == ["accepted", "cat"]  # human + confident model
    assert table.loc["t2", ["status", "next"]].tolist() == ["more", 1]  # they disagree: one more human
    assert table.loc["t3", ["status", "label"]].tolist() == ["accepted", "dog"]  # two humans agree
    higher = runner.invoke(app, [*args, "--model-threshold", "0.95"])
    assert higher.exit_code == 0 and pd.read_csv(out).set_index("task").loc["t1", "status"] == "more"


@pytest.mark.parametrize(
    ("probs", "gold", "policy", "expected"),
    [
        ([("t1", 0.5, 0.5), ("t9", 0.5, 0.5)], None, "probabilistic", "item 't9' has no answers"),
        ([("t1", 0.5, 0.4)], None, "probabilistic", "probabilities of task 't1' sum to 0.9000, not 1"),
        (None, "task,label\nt1,cat\nt7,dog\n", "probabilistic", "gold item 't7' is not among the answered items"),
        (None, "task,label\nt1,cow\n", "probabilistic", "label 'cow'"),
        (None, None, "vote", "unknown policy 'vote'"),
    ],
)
def test_decide_bad_input_is_one_clear_line(tmp_path, answers_csv, probs, gold, policy, expected):
    out = tmp_path / "decisions.csv"
    args = ["decide", str(answers_csv), "-o", str(out), "--policy", policy]
    if probs is not None:
        args += ["--model-probs", str(write_probs(tmp_path / "probs.csv", probs))]
    if gold is not None:
        (tmp_path / "gold.csv").write_text(gold)
        args += ["--gold", str(tmp_path / "gold.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_demo_prints_the_comparison_and_writes_the_plot(tmp_path):
    plot = tmp_path / "demo.png"
    result = runner.invoke(app, ["demo", "--products", "300", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    for policy in ("humans, overlap 3", "humans, dynamic", "model only", "1 human + model >= 0.80", "dynamic + model"):
        assert policy in result.output
    assert "CC BY-SA 4.0" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_says_so(tmp_path, monkeypatch):
    import crowdloop.simulation.plot as plotting

    monkeypatch.setattr(plotting, "plot_available", lambda: False)
    plot = tmp_path / "demo.png"
    result = runner.invoke(app, ["demo", "--products", "150", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "crowdloop[plot]" in result.output and not plot.exists()
    bad = runner.invoke(app, ["demo", "--products", "5"])
    assert bad.exit_code == 1 and "--products must be between 100" in bad.output


def test_demo_through_the_service_prints_the_loops_table():
    result = runner.invoke(app, ["demo", "--service", "--products", "120"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "The loop through the HTTP API" in text and "CC BY-SA 4.0" in text
    row = next(line for line in result.output.splitlines() if line.strip().startswith("│ 0") or " 0 │" in line[:8])
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert float(cells[1]) > 0.8 and float(cells[2]) >= 1.0  # accuracy, paid answers per item


def test_decide_a_model_sure_of_a_wrong_label_cannot_outvote_annotators_who_agree(tmp_path):
    """A model unsure (.5) of most gold items and right on 70% of those, sure (1 - 9e-10) of the
    rest and wrong on one in ten of them: no single temperature fits both, and at the one that fits
    the unsure rows a sure row outweighed three annotators who agree. The floor its gold rows call
    for lets them win."""
    rng = np.random.default_rng(0)
    labels = [f"l{k}" for k in range(10)]
    answers, gold, rows = [], [], []
    for g in range(300):
        truth = int(rng.integers(10))
        gold.append((f"g{g}", labels[truth]))
        for worker in ("w1", "w2", "w3"):
            wrong = rng.random() < 0.15
            answers.append((f"g{g}", worker, labels[(truth + 1 + int(rng.integers(9))) % 10 if wrong else truth]))
        sure = rng.random() < 0.3
        top = (truth + 1) % 10 if rng.random() < (0.1 if sure else 0.3) else truth
        rows.append((f"g{g}", top, sure))
    answers += [("x", worker, "l0") for worker in ("w1", "w2", "w3")]
    rows.append(("x", 1, True))
    pd.DataFrame(answers, columns=["task", "worker", "label"]).to_csv(tmp_path / "answers.csv", index=False)
    pd.DataFrame(gold, columns=["task", "label"]).to_csv(tmp_path / "gold.csv", index=False)
    sure = np.array([s for _, _, s in rows])[:, None]
    probs = np.where(sure, 1e-10, 0.5 / 9) * np.ones((1, 10))
    probs[np.arange(len(rows)), [top for _, top, _ in rows]] = np.where(sure[:, 0], 1 - 9e-10, 0.5)
    frame = pd.DataFrame(probs, columns=labels)
    frame.insert(0, "task", [task for task, _, _ in rows])
    frame.to_csv(tmp_path / "probs.csv", index=False, float_format="%.12g")
    out = tmp_path / "decided.csv"
    args = ["decide", str(tmp_path / "answers.csv"), "--gold", str(tmp_path / "gold.csv"), "--model-probs",
            str(tmp_path / "probs.csv"), "--max-overlap", "3", "-o", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    decided = pd.read_csv(out).set_index("task")
    assert decided.loc["x", "status"] == "accepted" and decided.loc["x", "label"] == "l0", decided.loc["x"]
    assert "mixed with the uniform" in result.output
