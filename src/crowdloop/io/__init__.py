"""Reading and writing the files people already have: tables, answers, Toloka TSV, items to label, exports."""

from crowdloop.io.answer_tables import parse_answer_table, read_answer_table
from crowdloop.io.exports import (
    export_answers,
    export_items,
    export_label_studio,
    export_labels,
    label_studio_tasks,
    stream_label_studio,
)
from crowdloop.io.items import ImportedItem, parse_items, read_items
from crowdloop.io.probabilities import probability_labels, read_probabilities
from crowdloop.io.tables import read_answers, read_gold, read_table, write_table
from crowdloop.io.toloka import read_toloka

__all__ = [
    "ImportedItem",
    "export_answers",
    "export_items",
    "export_label_studio",
    "export_labels",
    "label_studio_tasks",
    "parse_answer_table",
    "parse_items",
    "probability_labels",
    "read_answer_table",
    "read_answers",
    "read_gold",
    "read_items",
    "read_probabilities",
    "read_table",
    "read_toloka",
    "stream_label_studio",
    "write_table",
]
