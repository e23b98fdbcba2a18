import time

import numpy as np
import pytest

from crowdloop import InputError, LabelSpace, Taxonomy, TaxonomyError, UnknownLabelError
from crowdloop.labels import MAX_TAXONOMY_DEPTH, PATH_SEPARATOR


def test_label_space_codes_are_stable_and_round_trip():
    space = LabelSpace(["cat", "dog", "bird"])
    codes = space.encode(["bird", "cat", "bird"])
    assert codes.tolist() == [2, 0, 2]
    assert space.decode(codes).tolist() == ["bird", "cat", "bird"]
    assert "dog" in space and "fish" not in space


def test_from_values_sorts_like_crowd_kit_and_numbers_numerically():
    assert LabelSpace.from_values(["b", "a", "b"]).labels == ["a", "b"]
    assert LabelSpace.from_values(["10", "2", "1"]).labels == ["1", "2", "10"]
    assert LabelSpace.from_values([3, 1, 2, 1]).labels == [1, 2, 3]


def test_unknown_label_error_names_every_row():
    space = LabelSpace(["yes", "no"])
    with pytest.raises(UnknownLabelError) as info:
        space.encode(["yes", "maybe", "no", "maybe"], source="a.csv", field="label", first_row=2)
    message = str(info.value)
    assert "a.csv" in message and "lines 3, 5" in message and "'maybe'" in message and "label" in message


def test_numbers_match_text_labels():
    space = LabelSpace(["0", "1"])
    assert space.encode([1, 0]).tolist() == [1, 0]


def test_duplicate_and_empty_labels_are_rejected():
    with pytest.raises(InputError, match="duplicate"):
        LabelSpace(["a", "b", "a"])
    with pytest.raises(InputError, match="empty"):
        LabelSpace(["a", " "])
    with pytest.raises(InputError, match="empty"):
        LabelSpace([])


@pytest.fixture
def shop():
    return Taxonomy.from_paths(
        [
            "Electronics > Audio > Headphones",
            "Electronics > Audio > Speakers",
            "Electronics > Computers > Laptops",
            "Apparel > Shoes",
        ]
    )


def test_taxonomy_adds_inner_nodes_with_parents_and_depths(shop):
    assert len(shop) == 8
    headphones = shop.code("Electronics > Audio > Headphones")
    audio = shop.code("Electronics > Audio")
    electronics = shop.code("Electronics")
    assert shop.parent[headphones] == audio and shop.parent[electronics] == -1
    assert shop.depth[headphones] == 3
    assert shop.ancestors(headphones) == [audio, electronics]
    assert shop.ancestor_at(np.array([headphones]), 1).tolist() == [electronics]
    assert not shop.is_leaf[audio] and shop.is_leaf[headphones]


def test_tree_distance_siblings_cousins_strangers(shop):
    hp, sp, lap, shoes = (
        shop.code(x)
        for x in (
            "Electronics > Audio > Headphones",
            "Electronics > Audio > Speakers",
            "Electronics > Computers > Laptops",
            "Apparel > Shoes",
        )
    )
    a = np.array([hp, hp, hp, hp])
    b = np.array([hp, sp, lap, shoes])
    assert shop.distance(a, b).tolist() == [0, 2, 4, 5]
    assert shop.lca_depth(a, b).tolist() == [3, 2, 1, 0]


GOOGLE = """# Google_Product_Taxonomy_Version: 2021-09-21
1 - Animals & Pet Supplies
3237 - Animals & Pet Supplies > Live Animals
2 - Animals & Pet Supplies > Pet Supplies
3 - Animals & Pet Supplies > Pet Supplies > Bird Supplies
"""


def test_google_format_and_ids_as_aliases(tmp_path):
    path = tmp_path / "taxonomy.txt"
    path.write_text(GOOGLE)
    taxonomy = Taxonomy.read(path)
    assert len(taxonomy) == 4
    assert taxonomy.code("3") == taxonomy.code("Animals & Pet Supplies > Pet Supplies > Bird Supplies")
    assert isinstance(LabelSpace.read(path), Taxonomy)


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("1 - A\n2 - A > B > C\n", "unknown parent 'A > B'", "line 2"),
        ("1 - A\n1 - B\n", "duplicate id '1'", "line 2"),
        ("1 - A\n2 - A\n", "duplicate path 'A'", "line 2"),
        ("1 - A\nA > B\n", "expected 'ID - A > B > C'", "line 2"),
        ("1 - A\n2 - A >  > C\n", "empty path segment", "line 2"),
    ],
)
def test_malformed_taxonomy_lines_are_named(tmp_path, text, problem, line):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.read(path)
    assert problem in str(info.value) and line in str(info.value) and "bad.txt" in str(info.value)


def test_empty_label_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# only a comment\n\n")
    with pytest.raises(InputError, match="no labels"):
        LabelSpace.read(path)


def test_plain_label_file_is_a_flat_space(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("positive\nnegative\n")
    space = LabelSpace.read(path)
    assert type(space) is LabelSpace and space.labels == ["positive", "negative"]


def test_credit_counts_the_share_of_the_true_path_an_answer_names():
    taxonomy = Taxonomy.from_paths(["A", "A > B", "A > B > C", "A > D", "E"])
    code = taxonomy.code
    pairs = [("A", "A > B > C"), ("A > B", "A > B > C"), ("A > B > C", "A > B > C"), ("A > B > C", "A > B"),
             ("A > D", "A > B > C"), ("E", "A"), ("A > B", "A > D")]  # fmt: skip
    credit = taxonomy.credit([code(a) for a, _ in pairs], [code(t) for _, t in pairs])
    np.testing.assert_allclose(credit, [1 / 3, 2 / 3, 1, 1, 0, 0, 0])
    flat = LabelSpace(["x", "y", "z"])
    np.testing.assert_array_equal(flat.credit([0, 1, 2], [0, 0, 2]), [1.0, 0.0, 1.0])


def test_a_deep_taxonomy_line_is_refused_at_once():
    line = PATH_SEPARATOR.join(f"n{i}" for i in range(2000))
    started = time.process_time()
    with pytest.raises(TaxonomyError, match=f"at most {MAX_TAXONOMY_DEPTH}") as error:
        Taxonomy.from_paths(["a > b", line], source="deep.txt")
    assert time.process_time() - started < 1.0
    assert error.value.rows == [2] and error.value.source == "deep.txt"


def test_google_format_depth_is_capped_too(tmp_path):
    path = tmp_path / "google.txt"
    lines = [f"{d + 1} - " + PATH_SEPARATOR.join(f"n{i}" for i in range(d + 1)) for d in range(MAX_TAXONOMY_DEPTH + 1)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaxonomyError, match="levels deep") as error:
        LabelSpace.read(path)
    assert error.value.rows == [MAX_TAXONOMY_DEPTH + 1]


def test_taxonomy_arrays_of_a_large_deep_tree_are_built_quickly_and_right():
    rng = np.random.default_rng(0)
    paths = ["root"]
    for _ in range(30_000):  # each new node under a random existing one, up to the depth cap
        parent = paths[rng.integers(len(paths))]
        if parent.count(">") + 1 < MAX_TAXONOMY_DEPTH:
            paths.append(f"{parent}{PATH_SEPARATOR}x{len(paths)}")
    started = time.process_time()
    tree = Taxonomy.from_paths(paths)
    assert time.process_time() - started < 5.0
    names = tree.labels
    for code in rng.integers(len(names), size=200):
        parts = names[code].split(PATH_SEPARATOR)
        expected = [tree.code(PATH_SEPARATOR.join(parts[: d + 1])) for d in range(len(parts))]
        assert tree.path_codes[code, : len(parts)].tolist() == expected
        assert (tree.path_codes[code, len(parts) :] == -1).all() and tree.depth[code] == len(parts)
        assert tree.parent[code] == (expected[-2] if len(parts) > 1 else -1)
