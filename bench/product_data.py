"""The product-title datasets beside the project (``../shared/data/products``), as (titles, paths).

Each loader returns a frame with ``title`` and ``path`` (``A > B > C``). The data directory is the
one ``crowd_data.DATA`` resolves (``$CROWDLOOP_DATA`` overrides it); ``available()`` lists the
datasets present, so a benchmark can skip cleanly when they are absent.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd_data import DATA

PRODUCTS = DATA / "products"
FILES = {
    "flipkart": PRODUCTS / "flipkart" / "flipkart_clean.tsv",
    "myntra": PRODUCTS / "myntra_fashion" / "styles.csv.zip",
}
MYNTRA_FIELDS = 10  # id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName


def available() -> list[str]:
    return [name for name, path in FILES.items() if path.is_file()]


def load(name: str) -> pd.DataFrame:
    if name == "flipkart":
        return load_flipkart()
    if name == "myntra":
        return load_myntra()
    raise KeyError(f"unknown product dataset {name!r}; known: {', '.join(FILES)}")


def load_flipkart(path: Path = FILES["flipkart"]) -> pd.DataFrame:
    """``uniq_id, title, category_path`` (tab-separated, path separator `` > ``)."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame = frame.rename(columns={"category_path": "path"})[["title", "path"]]
    return frame[frame["title"].str.strip().ne("") & frame["path"].str.strip().ne("")].reset_index(drop=True)


def load_myntra(path: Path = FILES["myntra"]) -> pd.DataFrame:
    """``styles.csv``: the title is the last field and may contain commas, so each line is split on its
    first 9 commas; the path is masterCategory > subCategory > articleType."""
    with zipfile.ZipFile(path) as archive:
        text = archive.read("styles.csv").decode("utf-8")
    lines = [line for line in io.StringIO(text).read().splitlines() if line.strip()]
    header = lines[0].split(",")
    rows = [line.split(",", MYNTRA_FIELDS - 1) for line in lines[1:]]
    frame = pd.DataFrame([r for r in rows if len(r) == MYNTRA_FIELDS], columns=header)
    parts = frame[["masterCategory", "subCategory", "articleType"]].apply(lambda c: c.str.strip())
    frame = frame.assign(title=frame["productDisplayName"].str.strip(), path=parts.agg(" > ".join, axis=1))
    keep = frame["title"].ne("") & parts.ne("").all(axis=1)
    return frame.loc[keep, ["title", "path"]].reset_index(drop=True)
