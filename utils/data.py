"""The one catalog and dataset loader: `data/<Category>/` in the official SPRec format.

A category directory holds train/valid/test splits (a JSON array or JSON Lines of {instruction, input, output}
records, optionally with structured `history` and `target`) and four catalog files: id2name.json, name2id.json,
name2genre.json, genre_dict.json. Everything is validated on load; a bad file fails with its path and the index of
the first bad record.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.io import UserError, parse_jsonl, read_json, read_text
from utils.prompt import record_history, record_target

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT / "data"
SPLITS = ("train", "valid", "test")
REQUIRED_FIELDS = ("instruction", "input", "output")
CATALOG_FILES = ("id2name.json", "name2id.json", "name2genre.json", "genre_dict.json")
_CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_category_name(name: str) -> str:
    """Category names are plain directory names: no '/', no '..', nothing hidden."""
    if not isinstance(name, str) or not _CATEGORY_NAME.fullmatch(name) or ".." in name:
        raise UserError(f"bad category name {name!r}: use letters, digits, '_', '-', '.' (no '/', no '..')")
    return name


def category_dir(category: str, data_root=None) -> Path:
    """The directory of a category under `data/` (or `data_root`), which must exist."""
    check_category_name(category)
    d = Path(data_root or DATA_ROOT) / category
    if not d.is_dir():
        hint = " (build it with: python -m data.prepare ml-100k)" if category == "ML100K" else ""
        raise UserError(f"unknown category {category!r}: no directory {d}{hint}")
    return d


# ------------------------------------------------------------------------------------------------ records
def _parse_records(path: Path) -> list:
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    return [value for _, value in parse_jsonl(text, path)]


def validate_records(records, path) -> list[dict]:
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON array (or JSON Lines) of records, got {type(records).__name__}")
    if not records:
        raise UserError(f"{path}: the split is empty")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise UserError(f"{path}: record {i} is a {type(r).__name__}, expected an object")
        for key in REQUIRED_FIELDS:
            if key not in r:
                raise UserError(f"{path}: record {i} has no {key!r} field")
            if not isinstance(r[key], str):
                raise UserError(f"{path}: record {i} field {key!r} is a {type(r[key]).__name__}, expected a string")
        if "history" in r and not (isinstance(r["history"], list) and all(isinstance(h, str) for h in r["history"])):
            raise UserError(f"{path}: record {i} field 'history' must be a list of strings")
        if "target" in r and not isinstance(r["target"], str):
            raise UserError(f"{path}: record {i} field 'target' must be a string")
    return records


def split_path(directory, split: str) -> Path:
    """`<split>.json`, else `<split>.jsonl`."""
    directory = Path(directory)
    for ext in (".json", ".jsonl"):
        p = directory / f"{split}{ext}"
        if p.is_file():
            return p
    raise UserError(f"{directory}: no {split}.json or {split}.jsonl")


def read_records(path) -> list[dict]:
    """Read and validate one split file (JSON array or JSON Lines)."""
    path = Path(path)
    return validate_records(_parse_records(path), path)


def load_split(directory, split: str) -> list[dict]:
    return read_records(split_path(directory, split))


# ------------------------------------------------------------------------------------------------ catalog
@dataclass
class Catalog:
    """Items of a category. `names[i]` is the name of item id `ids[i]`; ids are the official integer ids."""

    ids: np.ndarray
    names: list[str]
    name2genre: dict[str, list[str]]
    genres: list[str]
    directory: Path | None = None
    name_to_index: dict[str, int] = field(init=False)
    _genre_weights: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.name_to_index = {n: i for i, n in enumerate(self.names)}

    def __len__(self):
        return len(self.names)

    def index(self, name: str) -> int | None:
        """Row of an item name in `names` (None when it is not a catalog name)."""
        return self.name_to_index.get(name)

    def genre_weights(self) -> np.ndarray:
        """(items, genres) matrix: an item spreads weight 1 evenly over its genres in the vocabulary (computed once)."""
        if self._genre_weights is None:
            col = {g: j for j, g in enumerate(self.genres)}
            w = np.zeros((len(self.names), len(self.genres)), dtype=np.float64)
            for i, name in enumerate(self.names):
                js = sorted({col[g] for g in self.name2genre.get(name, []) if g in col})
                if js:
                    w[i, js] = 1.0 / len(js)
            w.flags.writeable = False  # shared by every caller
            self._genre_weights = w
        return self._genre_weights


def load_catalog(directory) -> Catalog:
    """Load and cross-check the four catalog files of a category directory."""
    directory = Path(directory)
    paths = {f: directory / f for f in CATALOG_FILES}
    for p in paths.values():
        if not p.is_file():
            raise UserError(f"{p}: catalog file not found (a category needs {', '.join(CATALOG_FILES)})")
    id2name, name2id, name2genre, genre_dict = (read_json(paths[f]) for f in CATALOG_FILES)
    for f, obj in zip(CATALOG_FILES, (id2name, name2id, name2genre, genre_dict)):
        if not isinstance(obj, dict) or not obj:
            raise UserError(f"{paths[f]}: expected a non-empty JSON object")

    items = []
    for k, name in id2name.items():
        try:
            item_id = int(k)
        except ValueError:
            raise UserError(f"{paths['id2name.json']}: key {k!r} is not an integer item id") from None
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{paths['id2name.json']}: item {k} has no name")
        items.append((item_id, name))
    items.sort()
    names = [n for _, n in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{paths['id2name.json']}: item names must be unique; {dup!r} appears more than once")
    for name, item_id in name2id.items():
        try:
            ok = dict(items).get(int(item_id)) == name
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{paths['name2id.json']} and id2name.json disagree: {name!r} -> {item_id!r}")
    if len(name2id) != len(items):
        missing = next(n for n in names if n not in name2id)
        raise UserError(f"{paths['name2id.json']} and id2name.json disagree: {missing!r} is missing from name2id")
    for name, gs in name2genre.items():
        if not (isinstance(gs, list) and all(isinstance(g, str) for g in gs)):
            raise UserError(f"{paths['name2genre.json']}: genres of {name!r} must be a list of strings")
    return Catalog(ids=np.array([i for i, _ in items], dtype=np.int64), names=names,
                   name2genre=name2genre, genres=list(genre_dict), directory=directory)


# ------------------------------------------------------------------------------------------------ category
def load_category(directory, splits=SPLITS):
    """Catalog and validated splits of a category directory, plus the share of each split's targets in the catalog."""
    directory = Path(directory)
    catalog = load_catalog(directory)
    data, coverage = {}, {}
    for split in splits:
        records = load_split(directory, split)
        data[split] = records
        coverage[split] = sum(catalog.index(record_target(r)) is not None for r in records) / len(records)
    return catalog, data, coverage


def describe(directory) -> dict:
    """Stats of a category as `prepare.py check` prints them."""
    catalog, data, coverage = load_category(directory)
    hist = [len(record_history(r)) for r in data["test"]]
    return {
        "directory": str(directory),
        "items": len(catalog),
        "genres": len(catalog.genres),
        "items_with_genres": int((catalog.genre_weights().sum(1) > 0).sum()),
        **{f"{s}_records": len(data[s]) for s in data},
        **{f"{s}_targets_in_catalog": round(coverage[s], 4) for s in data},
        "test_history_length_mean": round(float(np.mean(hist)), 2),
    }


def sample_records(records: list, n: int | None, seed: int) -> list:
    """A seeded subset of `n` records in their original order (all of them when n is empty or too large)."""
    import random

    if not n or n >= len(records):
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in keep]


def user_items(data_dir) -> dict[str, set[str]]:
    """{user: every item the splits show them interacting with}: the history and target of each of their records in
    train, valid and test (a record names its user in `user`; the official format without it gets nothing here)."""
    items = {}
    for split in ("train", "valid", "test"):
        for r in load_split(data_dir, split):
            if "user" in r:
                items.setdefault(str(r["user"]), set()).update([record_target(r), *record_history(r)])
    return items


def interacted(record, by_user: dict) -> set[str]:
    """The items a negative must not be: the record's own history and target and everything else its user did."""
    return {record_target(record), *record_history(record)} | by_user.get(str(record.get("user")), set())


def records_fingerprint(records) -> str:
    """A short hash of which records were evaluated (their inputs and targets, not predictions): eval files carry it,
    so models evaluated on the same test users can be told from those evaluated on a subset."""
    import hashlib

    rows = [{k: v for k, v in r.items() if k not in ("predict", "logprobs")} for r in records]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
