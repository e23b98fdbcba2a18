"""Reading and writing the files people already have: tables, Toloka TSV, items to label, exports."""

from crowdloop.io.exports import export_answers, export_items, export_label_studio, export_labels
from crowdloop.io.items import ImportedItem, parse_items, read_items
from crowdloop.io.probabilities import read_probabilities
from crowdloop.io.tables import read_answers, read_gold, read_table, write_table
from crowdloop.io.toloka import read_toloka

__all__ = [
    "ImportedItem",
    "export_answers",
    "export_items",
    "export_label_studio",
    "export_labels",
    "parse_items",
    "read_answers",
    "read_gold",
    "read_items",
    "read_probabilities",
    "read_table",
    "read_toloka",
    "write_table",
]
