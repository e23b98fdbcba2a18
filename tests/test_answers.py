import numpy as np
import pandas as pd
import pytest

from crowdloop import Answers, InputError, LabelSpace, UnknownLabelError


def frame(**columns):
    base = {"task": ["t1", "t1", "t2"], "worker": ["a", "b", "a"], "label": ["x", "y", "x"]}
    base.update(columns)
    return pd.DataFrame(base)


def test_codes_and_tables():
    answers = Answers.from_frame(frame())
    assert answers.n_items == 2 and answers.n_workers == 2 and answers.n_labels == 2
    assert answers.item.dtype == np.int32
    assert answers.items[answers.item].tolist() == ["t1", "t1", "t2"]
    assert answers.labels.decode(answers.label).tolist() == ["x", "y", "x"]
    pd.testing.assert_frame_equal(answers.to_frame(), frame())


def test_missing_column_lists_the_columns():
    with pytest.raises(InputError) as info:
        Answers.from_frame(frame().rename(columns={"worker": "annotator"}))
    assert "missing column 'worker'" in str(info.value) and "annotator" in str(info.value)


def test_empty_ids_are_named_by_row():
    with pytest.raises(InputError) as info:
        Answers.from_frame(frame(worker=["a", " ", None]), source="answers.csv")
    assert "lines 3, 4" in str(info.value) and "field 'worker'" in str(info.value)


def test_unknown_label_against_a_given_space():
    with pytest.raises(UnknownLabelError) as info:
        Answers.from_frame(frame(), labels=LabelSpace(["x"]))
    assert "row 2" in str(info.value) and "'y'" in str(info.value)


def test_no_answers():
    with pytest.raises(InputError, match="no answers"):
        Answers.from_frame(frame().iloc[:0])


@pytest.mark.parametrize(("policy", "kept"), [("first", "x"), ("last", "y")])
def test_duplicate_policy_keeps_one_answer(policy, kept):
    data = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "a", "b"], "label": ["x", "y", "x"]})
    answers = Answers.from_frame(data, duplicates=policy)
    assert answers.n_answers == 2
    mine = answers.worker == answers.workers.get_loc("a")
    assert answers.labels.decode(answers.label[mine]).tolist() == [kept]


def test_duplicate_policy_all_and_error():
    data = pd.DataFrame({"task": [1, 1], "worker": ["a", "a"], "label": ["x", "y"]})
    assert Answers.from_frame(data, duplicates="all").n_answers == 2
    with pytest.raises(InputError, match="answered this task before"):
        Answers.from_frame(data, duplicates="error")


def test_weights_must_be_numbers():
    with pytest.raises(InputError, match="non-negative number"):
        Answers.from_frame(frame(w=["1", "x", "2"]), weight="w")


def test_soft_answers_validated_and_added():
    answers = Answers.from_frame(frame())
    soft = answers.with_soft("model", ["t2", "t3"], np.array([[0.2, 0.8], [1.0, 0.0]]), unknown_items="add")
    assert soft.n_items == 3 and soft.n_workers == 3 and len(soft.soft) == 2
    assert soft.items[soft.soft.item].tolist() == ["t2", "t3"]
    with pytest.raises(InputError, match="sum to 1"):
        answers.with_soft("model", ["t1"], np.array([[0.2, 0.5]]))
    with pytest.raises(InputError, match="no answers"):
        answers.with_soft("model", ["t9"], np.array([[0.5, 0.5]]))
    with pytest.raises(InputError, match="negative"):
        answers.with_soft("model", ["t1"], np.array([[1.5, -0.5]]))


def test_gold_encoding_errors():
    answers = Answers.from_frame(frame())
    items, labels = answers.encode_gold({"t2": "y"})
    assert items.tolist() == [1] and labels.tolist() == [1]
    with pytest.raises(InputError, match="not among the answered items"):
        answers.encode_gold({"nope": "x"})
    with pytest.raises(UnknownLabelError):
        answers.encode_gold({"t1": "z"})


def test_large_frame_codes_checks_and_errors_match_a_direct_encoding():
    rng = np.random.default_rng(0)
    n = 5000
    data = pd.DataFrame(
        {
            "task": rng.integers(0, 900, n),
            "worker": [f"w{i}" for i in rng.integers(0, 40, n)],
            "label": rng.choice(["cat", "dog", "fox"], n),
        }
    ).drop_duplicates(["task", "worker"], ignore_index=True)
    answers = Answers.from_frame(data)
    assert answers.items.tolist() == sorted(data["task"].unique())
    assert answers.workers.tolist() == sorted(data["worker"].unique())
    assert answers.labels.labels == ["cat", "dog", "fox"]
    pd.testing.assert_frame_equal(answers.to_frame(), data, check_dtype=False)
    blank = data.copy()
    blank.loc[[10, 4000], "worker"] = ["", "  "]
    with pytest.raises(InputError) as info:
        Answers.from_frame(blank)
    assert "rows 11, 4001" in str(info.value) and "field 'worker'" in str(info.value)
    with pytest.raises(UnknownLabelError) as info:
        Answers.from_frame(data, labels=LabelSpace(["cat", "dog"]))
    fox = np.flatnonzero(data["label"].to_numpy() == "fox")[:3] + 1
    assert f"rows {fox[0]}, {fox[1]}, {fox[2]}" in str(info.value) and "'fox'" in str(info.value)
