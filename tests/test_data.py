import json

import pytest

from utils.data import category_dir, check_category_name, describe, load_catalog, load_category, read_records
from utils.io import UserError

GOOD = {"instruction": "i", "input": 'The user has watched: "A (1990)"', "output": '"B (1991)"\n'}


def write_category(d, records=None, id2name=None, name2id=None):
    d.mkdir(parents=True, exist_ok=True)
    id2name = id2name or {"0": "A (1990)", "1": "B (1991)", "2": "C (1992)"}
    name2id = name2id or {n: int(i) for i, n in id2name.items()}
    files = {"id2name.json": id2name, "name2id.json": name2id,
             "name2genre.json": {"A (1990)": ["Drama"], "B (1991)": ["Drama", "Comedy"]},
             "genre_dict.json": {"Drama": 0, "Comedy": 0}}
    for name, obj in files.items():
        (d / name).write_text(json.dumps(obj))
    for split in ("train", "valid", "test"):
        (d / f"{split}.json").write_text(json.dumps(records or [GOOD, GOOD]))
    return d


def test_official_layout_loads_unchanged(tmp_path):
    catalog, data, coverage = load_category(write_category(tmp_path / "C"))
    assert catalog.names == ["A (1990)", "B (1991)", "C (1992)"]
    assert coverage == {"train": 1.0, "valid": 1.0, "test": 1.0}
    assert len(data["test"]) == 2
    assert catalog.genre_weights().tolist() == [[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]


def test_jsonl_splits(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n")
    assert len(read_records(p)) == 2


@pytest.mark.parametrize("content, message", [
    ('[{"instruction": "i", "input": "x", "output": "y"},', "malformed JSON at line 1"),
    ('{"instruction": "i", "input": "x", "output": "y"}\n{oops', "malformed JSON at line 2"),
    ('[{"instruction": "i", "input": "x"}]', "record 0 has no 'output' field"),
    ('[{"instruction": "i", "input": "x", "output": "y"}, {"instruction": "i", "input": 3, "output": "y"}]',
     "record 1 field 'input' is a int, expected a string"),
    ("[]", "the split is empty"),
    ('{"instruction": "i", "input": "x", "output": "y", "history": "A"}', "record 0 field 'history'"),
])
def test_bad_records_name_file_and_record(tmp_path, content, message):
    p = tmp_path / "test.json"
    p.write_text(content)
    with pytest.raises(UserError) as e:
        read_records(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_catalog_files_that_disagree(tmp_path):
    d = write_category(tmp_path / "C", name2id={"A (1990)": 0, "B (1991)": 2, "C (1992)": 1})
    with pytest.raises(UserError, match="name2id.json and id2name.json disagree: 'B \\(1991\\)' -> 2"):
        load_catalog(d)
    d = write_category(tmp_path / "D", id2name={"0": "A", "1": "A"}, name2id={"A": 0})
    with pytest.raises(UserError, match="names must be unique"):
        load_catalog(d)
    (d / "genre_dict.json").unlink()
    with pytest.raises(UserError, match="genre_dict.json: catalog file not found"):
        load_catalog(d)


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ".hidden", "", "x..y"])
def test_bad_category_names(name):
    with pytest.raises(UserError, match="bad category name"):
        check_category_name(name)


def test_unknown_category(tmp_path):
    with pytest.raises(UserError, match="unknown category 'Nope'"):
        category_dir("Nope", data_root=tmp_path)


def test_ml100k_stats(ml100k):
    stats = describe(ml100k)
    assert stats["items"] == 1664 and stats["test_records"] == 943 and stats["valid_records"] == 943
    assert stats["test_targets_in_catalog"] == 1.0 and stats["genres"] == 18
