import pandas as pd
import pytest

from crowdloop import InputError
from crowdloop.io import read_answers, read_gold, read_table, write_table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_round_trip_every_format(tmp_path, suffix):
    data = pd.DataFrame({"task": ["007", "008"], "worker": ["w1", "w2"], "label": ["a", "b"]})
    path = tmp_path / f"answers{suffix}"
    write_table(data, path)
    answers, gold = read_answers(path)
    assert gold is None
    assert answers.items.tolist() == ["007", "008"]  # ids keep their leading zeros


def test_csv_errors_cite_file_lines(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("task,worker,label\n1,a,x\n2,,x\n")
    with pytest.raises(InputError) as info:
        read_answers(path)
    assert str(info.value).startswith(f"{path}, line 3, field 'worker': empty value")


def test_empty_and_unknown_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("task,worker,label\n")
    with pytest.raises(InputError, match="no rows"):
        read_table(header_only)
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="unknown file type"):
        read_table(tmp_path / "answers.xlsx")


TOLOKA = (
    "INPUT:url\tOUTPUT:category\tGOLDEN:category\tASSIGNMENT:task_id\tASSIGNMENT:worker_id\tASSIGNMENT:status\n"
    "u1\tcat\t\tT1\tW1\tACCEPTED\n"
    "u1\tdog\t\tT1\tW2\tACCEPTED\n"
    "u2\tdog\tdog\tT2\tW1\tACCEPTED\n"
    "u2\tcat\tdog\tT2\tW3\tREJECTED\n"
)


def test_toloka_export(tmp_path):
    path = tmp_path / "assignments.tsv"
    path.write_text(TOLOKA)
    answers, gold = read_answers(path)
    assert answers.n_answers == 3  # the rejected assignment is dropped
    assert gold.to_dict() == {"T2": "dog"}


def test_gold_file_checks(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text("task,label\n1,a\n1,b\n")
    with pytest.raises(InputError, match="task listed twice"):
        read_gold(path)
    path.write_text("task,true_label\n1,a\n2,b\n")
    assert read_gold(path).to_dict() == {"1": "a", "2": "b"}
    path.write_text("item,answer\n1,a\n")
    with pytest.raises(InputError, match="expected columns"):
        read_gold(path)
