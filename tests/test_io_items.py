import json

import pytest

from crowdloop.errors import InputError
from crowdloop.io.items import (
    LABEL_STUDIO_USER,
    Annotation,
    ImportedItem,
    Prediction,
    detect_item_format,
    items_from_records,
    parse_items,
    read_items,
)


def test_csv_items_with_gold_and_hint(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,title,gold,hint\n007,Red shoe,Shoes,look at the sole\n008,Blue hat,,\n")
    items = read_items(path)
    assert items == [
        ImportedItem("007", {"title": "Red shoe"}, gold="Shoes", hint="look at the sole"),
        ImportedItem("008", {"title": "Blue hat"}),
    ]


def test_tsv_and_jsonl_items(tmp_path):
    tsv = parse_items("item\ttitle\nA\tx\n", "tsv")
    assert tsv == [ImportedItem("A", {"title": "x"})]
    lines = [
        {"id": 1, "data": {"title": "kettle"}, "gold": "Kitchen", "predictions": [{"label": "Kitchen", "score": 0.8}]},
        {"id": "2", "title": "lamp", "predictions": {"Home": 0.6, "Kitchen": 0.4}},
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    items = read_items(path)
    assert items[0] == ImportedItem("1", {"title": "kettle"}, gold="Kitchen", predictions=(Prediction("Kitchen", 0.8),))
    assert items[1].payload == {"title": "lamp"}
    assert [p.label for p in items[1].predictions] == ["Home", "Kitchen"]


LABEL_STUDIO = [
    {
        "id": 11,
        "data": {"text": "great phone"},
        "predictions": [
            {"model_version": "v2", "score": 0.7, "result": [{"type": "choices", "value": {"choices": ["Positive"]}}]}
        ],
        "annotations": [
            {"completed_by": 3, "result": [{"value": {"choices": ["Positive"]}}]},
            {"completed_by": {"email": "a@x.org"}, "result": [{"value": {"choices": ["Negative"]}, "type": "choices"}]},
            {"completed_by": 4, "was_cancelled": True, "result": [{"value": {"choices": ["Negative"]}}]},
        ],
    },
    {
        "id": 12,
        "data": {"text": "meh"},
        "predictions": [{"result": [{"value": {"choices": ["Neutral"]}, "score": 0.4}]}],
    },
]


def test_label_studio_tasks(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(LABEL_STUDIO))
    first, second = read_items(path)
    assert first.external_id == "11" and first.payload == {"text": "great phone"}
    assert first.predictions == (Prediction("Positive", 0.7, "v2"),)
    assert first.annotations == (Annotation("3", "Positive"), Annotation("a@x.org", "Negative"))
    assert second.predictions == (Prediction("Neutral", 0.4),)  # the result's own score wins


def test_label_studio_ids_reviews_taxonomy_and_anonymous_annotators():
    tasks = [
        {
            "id": 901,  # Label Studio's own number: the item id is data.id
            "data": {"id": "sku-1", "title": "kettle"},
            "annotations": [
                {"result": [{"type": "taxonomy", "value": {"taxonomy": [["Home", "Kitchen"]]}}]},
                {"completed_by": {"id": 7}, "ground_truth": True, "result": [{"value": {"choices": ["Home"]}}]},
            ],
        }
    ]
    (item,) = parse_items(json.dumps(tasks), "label-studio")
    assert item.external_id == "sku-1" and item.payload == {"title": "kettle"}
    assert item.annotations == (Annotation(LABEL_STUDIO_USER, "Home > Kitchen"), Annotation("7", "Home", review=True))
    bad = [{"id": 1, "data": {}, "annotations": [{"result": [{"value": {"taxonomy": [["A", ""]]}}]}]}]
    with pytest.raises(InputError, match=r"annotations\[0\]\.result\[0\]\.value\.taxonomy'"):
        parse_items(json.dumps(bad), "label-studio")


def test_label_studio_plain_data_tasks():
    items = parse_items(json.dumps([{"id": "a", "text": "t"}]), "label-studio")
    assert items == [ImportedItem("a", {"text": "t"})]


def test_toloka_tasks(tmp_path):
    path = tmp_path / "tasks.tsv"
    path.write_text("INPUT:id\tINPUT:title\tGOLDEN:category\tHINT:text\nT1\tmug\tKitchen\tit holds tea\nT2\tsofa\t\t\n")
    assert detect_item_format(str(path), path.read_bytes()) == "toloka"
    items = read_items(path)
    assert items[0] == ImportedItem("T1", {"title": "mug"}, gold="Kitchen", hint="it holds tea")
    assert items[1] == ImportedItem("T2", {"title": "sofa"})


def test_records_from_a_body():
    assert items_from_records([{"id": "x", "title": "y"}]) == [ImportedItem("x", {"title": "y"})]
    with pytest.raises(InputError, match="body, row 2: item id 'x' appears twice"):
        items_from_records([{"id": "x"}, {"id": "x"}])


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("csv", "", "items: the file is empty"),
        ("csv", "id,title\n", "items: the file has no items"),
        ("csv", "title\nx\n", "items, line 1: no item id column"),
        ("csv", "id,title\n1,a\n,b\n", "items, line 3, field 'id': empty item id"),
        ("csv", "id,title\n1,a\n1,b\n", "items, line 3: item id '1' appears twice"),
        ("csv", "id,title\n1,a,extra\n", "items, line 2: 3 fields where the header has 2"),
        ("csv", "id,id\n1,2\n", "items, line 1, field 'id': column 'id' appears twice"),
        ("toloka", "INPUT:title\nmug\n", "items, line 1: no task id column in a Toloka TSV"),
        ("toloka", "INPUT:id\tGOLDEN:a\tGOLDEN:b\nT\tx\ty\n", "several GOLDEN fields"),
        ("jsonl", '{"id": 1}\n{"id": 2\n', "items, line 2: not JSON"),
        ("jsonl", "[1]\n", "items, line 1: expected a JSON object"),
        ("jsonl", '{"title": "x"}\n', "items, line 1: no item id"),
        ("jsonl", '{"id": 1, "data": 3}\n', "items, line 1, field 'data': expected an object"),
        ("jsonl", '{"id": 1, "gold": ["a"]}\n', "field 'gold': expected a label"),
        ("jsonl", '{"id": 1, "predictions": [{"label": "a", "score": 2}]}\n', "field 'predictions[0].score'"),
        ("jsonl", '{"id": 1, "predictions": [{"score": 0.5}]}\n', "field 'predictions[0]': expected {label, score}"),
        ("label-studio", "{", "items: not JSON"),
        ("label-studio", "3", "expected a list of Label Studio tasks"),
        ("label-studio", '[{"data": {"text": "x"}}]', "items, task 0, field 'id': empty item id"),
        ("label-studio", '[{"id": 1, "data": []}]', "items, task 0, field 'data': expected an object"),
        (
            "label-studio",
            '[{"id": 1, "data": {}}, {"id": 2, "data": {}, "predictions": [{"result": [{"value": {"choices": []}}]}]}]',
            "items, task 1, field 'predictions[0].result[0].value.choices': expected a list of labels",
        ),
        (
            "label-studio",
            '[{"id": 1, "data": {}, "predictions": [{"score": "high", "result": [{"value": {"choices": ["a"]}}]}]}]',
            "field 'predictions[0].result[0].score': score 'high' is not a number",
        ),
        ("label-studio", '[{"id": 1, "data": {}, "annotations": {}}]', "field 'annotations': expected a list"),
        ("xml", "<a/>", "unknown item format 'xml'"),
        ("csv", "id,t\n1,a\n2,b\x00\n", "items, line 3: a NUL character"),
    ],
)
def test_bad_input_names_source_row_and_field(fmt, content, message):
    with pytest.raises(InputError) as info:
        parse_items(content, fmt)
    assert message in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_items(tmp_path / "missing.csv")
    with pytest.raises(InputError, match=r"unknown file type \.xlsx"):
        read_items(tmp_path / "items.xlsx")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,title\n1,caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_items(path)


def test_a_label_studio_task_without_data_keeps_only_its_data():
    task = {
        "id": 7,
        "text": "a phone",
        "annotations": [{"completed_by": {"email": "ann@x.org"}, "result": [{"value": {"choices": ["Pos"]}}]}],
        "predictions": [{"model_version": "m", "result": [{"value": {"choices": ["Neg"]}}]}],
        "meta": {"label": "Pos"},
        "drafts": [{"result": []}],
        "total_annotations": 1,
        "is_labeled": True,
        "created_at": "2024-01-01",
    }
    (item,) = parse_items(json.dumps([task]), "label-studio")
    assert item.payload == {"text": "a phone"}
    assert [a.label for a in item.annotations] == ["Pos"] and [p.label for p in item.predictions] == ["Neg"]


def test_every_answer_column_leaves_the_payload():
    items = parse_items("id,title,gold,true_label,hint\n1,shoe,Shoes,Shoes,sole\n2,hat,,,\n", "csv")
    assert [i.payload for i in items] == [{"title": "shoe"}, {"title": "hat"}]
    assert items[0].gold == "Shoes" and items[1].gold is None
    items = parse_items("id,title,gold,true_label\n1,shoe,,Shoes\n", "csv")
    assert items[0].gold == "Shoes" and items[0].payload == {"title": "shoe"}
    with pytest.raises(InputError, match="disagree") as error:
        parse_items("id,title,gold,true_label\n1,shoe,Hats,Shoes\n", "csv", source="x.csv")
    assert error.value.rows == [2] and error.value.field == "true_label"
    (record,) = parse_items(json.dumps({"id": 1, "t": "x", "gold": "A", "true_label": "A", "annotations": []}), "jsonl")
    assert record.payload == {"t": "x"} and record.gold == "A"
