"""Reading and writing the files people already have: CSV/TSV/JSONL/Parquet tables, Toloka TSV."""

from crowdloop.io.probabilities import read_probabilities
from crowdloop.io.tables import read_answers, read_gold, read_table, write_table
from crowdloop.io.toloka import read_toloka

__all__ = ["read_answers", "read_gold", "read_probabilities", "read_table", "read_toloka", "write_table"]
