"""Regenerate the product sample shipped with crowdloop (``src/crowdloop/examples/products.csv.gz``)
that ``crowdloop demo`` categorises: distinct Flipkart product titles with their category paths cut
to at most three levels, from the categories with at least ``MIN_TITLES`` distinct titles, at most
``PER_CATEGORY`` per category. The source is the PromptCloud "Flipkart Products" dataset (2016,
via Kaggle, CC BY-SA 4.0), cleaned in ``../shared/data/products/flipkart``; the sample keeps that
licence (see ``PRODUCTS_NOTICE.txt`` beside it). Run from the repository root:
``python scripts/make_product_sample.py``."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import product_data  # noqa: E402

EXAMPLES = ROOT / "src" / "crowdloop" / "examples"
DEPTH = 3
MIN_TITLES = 30
PER_CATEGORY = 45
SEED = 0


def main() -> None:
    frame = product_data.load_flipkart().drop_duplicates("title").reset_index(drop=True)
    frame["path"] = frame["path"].str.split(" > ").str[:DEPTH].str.join(" > ")
    counts = frame["path"].value_counts()
    frame = frame[frame["path"].map(counts) >= MIN_TITLES]
    shuffled = frame.sample(frac=1.0, random_state=SEED)
    sample = shuffled.groupby("path", sort=True).head(PER_CATEGORY).sort_values(["path", "title"])
    sample = sample.rename(columns={"path": "category"})[["title", "category"]]
    sample.to_csv(EXAMPLES / "products.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print(f"{len(sample):,} titles in {sample['category'].nunique()} categories -> {EXAMPLES / 'products.csv.gz'}")


if __name__ == "__main__":
    main()
