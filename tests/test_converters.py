"""The dataset converters (ml-1m, ml-10m, goodreads, amazon, steam) on small fixtures in each source's real format.

One synthetic "world" (10 users, 14 items, known timestamps) is written out in every raw format, converted with
`data/prepare.py` in-process, and the output is checked: chronology, no target in its own history, a catalog that
loads, the stats, determinism, and malformed lines (error with file and line number, or skipped and counted).
"""
import gzip
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from data.prepare import main
from utils.data import load_category
from utils.prompt import record_history, record_target

DAY = 86400
BASE = 1_300_000_000  # 2011-03-13
GENRES = ["Action", "Comedy", "Drama", "Horror"]
CAFE = "Café Noir (1999)"  # the cleaned name of item 3 in every source


# ------------------------------------------------------------------------------------------------------- world
def world():
    """Items (key -> title, genres) and events (user index, item key, unix time), in a shuffled file order.

    Items 1-10: 7 users each. 11: same title as 2 (merged). 12: untitled. 13: one user (gone with k-core 5).
    14: nobody. User 0 re-reads "Title 2" through item 11 and user 1 repeats item 5 (both dropped as repeats).
    """
    titles = {str(k): f"Title {k}" for k in range(1, 11)}
    titles.update({"3": CAFE, "11": "Title 2", "12": "", "13": "Rare Thing", "14": "Never Seen"})
    items = {k: (t, [GENRES[int(k) % 4], GENRES[(int(k) + 1) % 4]]) for k, t in titles.items()}
    events = [(u, str((u + j) % 10 + 1), BASE + DAY * (10 * j + u)) for u in range(10) for j in range(7)]
    events += [(0, "11", BASE + DAY * 200), (1, "5", BASE + DAY * 201), (1, "12", BASE + DAY * 202),
               (2, "12", BASE + DAY * 203), (3, "13", BASE + DAY * 75)]
    random.Random(1).shuffle(events)
    return items, events


def expected_sequences(kcore=5):
    """Per user index: the chronological names the protocol must keep."""
    items, events = world()
    seqs = {}
    for u, k, _t in sorted(events, key=lambda e: (e[0], e[2])):
        name = items[k][0] if items[k][0] else None
        if name is None or (k == "13" and kcore > 1):
            continue
        seqs.setdefault(u, [])
        if name not in seqs[u]:
            seqs[u].append(name)
    return seqs


def gz_lines(path: Path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


# -------------------------------------------------------------------------------------------- raw writers
# Each writer puts one source's files into `raw` and returns {user key: user index}; `garbage` inserts one
# malformed line as line 3 of the interactions file.
def write_ml(raw: Path, variant: str, garbage=False):
    items, events = world()
    enc = "latin-1" if variant == "ml-1m" else "utf-8"
    movies = [f"{k}::{t}::{'|'.join(g)}" for k, (t, g) in items.items()]
    if variant == "ml-10m":
        movies[0] = movies[0].rsplit("::", 1)[0] + "::Children|IMAX"
        movies[1] = movies[1].rsplit("::", 1)[0] + "::(no genres listed)"
    (raw / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode(enc))
    lines = [f"{u + 1}::{k}::4::{t}" for u, k, t in events]
    if garbage:
        lines.insert(2, "1::2::oops")
    (raw / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="ascii")
    return {str(u + 1): u for u in range(10)}


def _gr_date(ts):
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=-7))).strftime("%a %b %d %H:%M:%S %z %Y")


def write_goodreads(raw: Path, garbage=False):
    items, events = world()
    inter = [json.dumps({"user_id": f"{u:02d}ab{u}cd", "book_id": k, "review_id": f"r{i}", "is_read": i % 2 == 0,
                         "rating": 4, "date_added": _gr_date(t), "read_at": "" if i % 5 == 0 else _gr_date(t),
                         "started_at": ""}) for i, (u, k, t) in enumerate(events)]
    if garbage:
        inter.insert(2, '{"user_id": "x", "book_id": ')
    gz_lines(raw / "goodreads_interactions_poetry.json.gz", inter)
    titles = {k: t.replace("Café ", "Caf&eacute;  ") for k, (t, _) in items.items()}
    gz_lines(raw / "goodreads_books_poetry.json.gz",
             [json.dumps({"book_id": k, "title": t, "authors": []}) for k, t in titles.items()])
    gz_lines(raw / "goodreads_book_genres_initial.json.gz",
             [json.dumps({"book_id": k, "genres": {g[0]: 9, g[1]: 3}}) for k, (_, g) in items.items()])
    return {f"{u:02d}ab{u}cd": u for u in range(10)}


def _asin(k):
    return f"B{int(k):09d}"


def write_amazon(raw: Path, garbage=False):
    items, events = world()
    reviews = [json.dumps({"overall": 5.0, "reviewerID": f"A{u:02d}X", "asin": _asin(k), "unixReviewTime": t,
                           "reviewTime": "01 1, 2011"}) for u, k, t in events]
    if garbage:
        reviews.insert(2, '{"reviewerID": "A1", "asin": "B1"}')  # no unixReviewTime
    gz_lines(raw / "CDs_and_Vinyl.json.gz", reviews)
    meta = []
    for k, (t, g) in items.items():
        t = {"3": "Caf&eacute;  Noir (1999)", "4": "<span>Title 4</span>"}.get(k, t)
        meta.append(json.dumps({"asin": _asin(k), "title": t, "category": ["CDs & Vinyl", g[0], g[1]]}))
    meta.append(json.dumps({"asin": _asin("1"), "title": "A later duplicate record", "category": []}))
    gz_lines(raw / "meta_CDs_and_Vinyl.json.gz", meta)
    return {f"A{u:02d}X": u for u in range(10)}


def _steam_games(raw: Path):
    items, _ = world()
    games = [repr({"publisher": "P", "genres": g, "app_name": t.replace("Café ", "Caf&eacute;  "), "title": t,
                   "id": k, "tags": ["x"], "early_access": False}) for k, (t, g) in items.items()]
    games.append(repr({"title": "No id", "genres": ["Action"]}))
    gz_lines(raw / "steam_games.json.gz", games)


def write_steam_reviews(raw: Path, garbage=False):
    _, events = world()
    lines = [repr({"username": f"Player '{u}'", "hours": 1.5, "product_id": k, "page_order": 0,
                   "date": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d"), "text": 'He said "hi"',
                   "early_access": False}) for u, k, t in events]
    if garbage:
        lines.insert(2, "{'username': 'x', 'product_id': '1', 'date': ")
    gz_lines(raw / "steam_reviews.json.gz", lines)
    _steam_games(raw)
    return {f"Player '{u}'": u for u in range(10)}


def _posted(ts):
    d = datetime.fromtimestamp(ts, UTC)
    return f"Posted {d.strftime('%B')} {d.day}, {d.year}."


def write_australian(raw: Path, garbage=False):
    _, events = world()
    per_user = {}
    for u, k, t in events:
        per_user.setdefault(u, []).append({"funny": "", "posted": _posted(t), "last_edited": "", "item_id": k,
                                           "helpful": "No ratings yet", "recommend": True, "review": "fun"})
    lines = [repr({"user_id": f"steamer{u}", "user_url": "http://x", "reviews": revs}) for u, revs in per_user.items()]
    if garbage:
        lines.insert(2, "{'user_id': 'x', 'reviews': [{'item_id': '1', 'posted': 'Posted Smarch 3, 2011.'}]}")
    gz_lines(raw / "australian_user_reviews.json.gz", lines)
    _steam_games(raw)
    return {f"steamer{u}": u for u in range(10)}


SOURCES = {  # name: (writer, extra CLI args, interactions file, expected items_dropped_no_interactions)
    "ml-1m": (lambda raw, g=False: write_ml(raw, "ml-1m", g), [], "ratings.dat", 2),
    "ml-10m": (lambda raw, g=False: write_ml(raw, "ml-10m", g), [], "ratings.dat", 2),
    "goodreads": (write_goodreads, [], "goodreads_interactions_poetry.json.gz", 1),
    "amazon": (write_amazon, [], "CDs_and_Vinyl.json.gz", 1),
    "steam": (write_steam_reviews, [], "steam_reviews.json.gz", 1),
    "steam-australian": (write_australian, ["--reviews", "australian_user_reviews"],
                         "australian_user_reviews.json.gz", 1),
}


def convert(tmp_path, source, *extra, garbage=False, out="out", name="Cat"):
    writer, args, _, _ = SOURCES[source]
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    users = writer(raw, garbage)
    main([source.split("-australian")[0], "--raw", str(raw), "--name", name, "--out_root", str(tmp_path / out),
          *args, *extra])
    return tmp_path / out / name, users


def times_by_user():
    """Per user index: name -> time of its first interaction."""
    items, events = world()
    out = {}
    for u, k, t in sorted(events, key=lambda e: e[2]):
        out.setdefault(u, {}).setdefault(items[k][0], t)
    return out


# -------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("source", list(SOURCES))
def test_converter_output(tmp_path, source, capsys):
    directory, users = convert(tmp_path, source)
    catalog, data, coverage = load_category(directory)
    stats = json.loads((directory / "stats.json").read_text())
    seqs = expected_sequences()
    times = times_by_user()

    assert len(catalog) == stats["items"] == 10  # 1-10 (11 merged into 2; 12 untitled; 13 k-core; 14 unused)
    assert CAFE in catalog.names and "Title 4" in catalog.names
    assert "Rare Thing" not in catalog.names and "Never Seen" not in catalog.names
    assert all(c == 1.0 for c in coverage.values())
    assert stats["users"] == 10 and stats["records"] == {"train": 40, "valid": 10, "test": 10}
    assert stats["interactions"] == 70 and stats["train_windows_total"] == 40
    assert stats["interactions_removed_by_kcore"] == 1 and stats["interactions_repeated_item"] == 2
    assert stats["items_dropped_no_interactions"] == SOURCES[source][3]
    assert stats["interactions_unknown_item"] == 2  # the untitled item's two interactions
    assert stats["genres"] >= 1 and stats["items_with_genres"] == (9 if source == "ml-10m" else 10)

    for split, records in data.items():
        for r in records:
            u = users[r["user"]]
            hist, target = record_history(r), record_target(r)
            assert target not in hist and 1 <= len(hist) <= 10
            ts = [times[u][h] for h in hist] + [times[u][target]]
            assert ts == sorted(ts) and len(set(ts)) == len(ts), (split, r)
            assert hist + [target] == seqs[u][seqs[u].index(hist[0]):seqs[u].index(target) + 1]
        if split == "test":
            assert {users[r["user"]]: r["target"] for r in records} == {u: s[-1] for u, s in seqs.items()}
        if split == "valid":
            assert {users[r["user"]]: r["target"] for r in records} == {u: s[-2] for u, s in seqs.items()}
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("source", list(SOURCES))
def test_converter_deterministic_and_bad_lines(tmp_path, source, capsys):
    first, _ = convert(tmp_path, source, "--train_size", "15", out="a")
    again, _ = convert(tmp_path, source, "--train_size", "15", out="b")
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in again.iterdir())
    for f in files:
        assert (first / f).read_bytes() == (again / f).read_bytes(), f
    assert len(json.loads((first / "train.json").read_text())) == 15

    inter_file = SOURCES[source][2]
    with pytest.raises(SystemExit) as e:
        convert(tmp_path, source, garbage=True, out="c")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert inter_file in err and "line 3" in err and "--skip_bad" in err

    skipped, _ = convert(tmp_path, source, "--train_size", "15", "--skip_bad", garbage=True, out="d")
    stats = json.loads((skipped / "stats.json").read_text())
    assert stats["bad_lines_skipped"] == 1 and stats["bad_lines_per_file"] == {inter_file: 1}
    for f in ("train.json", "valid.json", "test.json", "id2name.json", "name2genre.json"):
        assert (skipped / f).read_bytes() == (first / f).read_bytes(), f


def test_kcore_off_and_time_window(tmp_path):
    directory, users = convert(tmp_path, "goodreads", "--kcore", "0", out="nok")
    stats = json.loads((directory / "stats.json").read_text())
    assert stats["items"] == 11 and "kcore" in stats and stats["interactions_removed_by_kcore"] == 0
    test = {users[r["user"]]: r["target"] for r in json.loads((directory / "test.json").read_text())}
    assert test[3] == "Rare Thing"

    # keep days 0..49 only: every user keeps j = 0..4 (5 items), so k-core 5 still holds
    end = datetime.fromtimestamp(BASE + DAY * 50, UTC).strftime("%Y-%m-%d")
    directory, users = convert(tmp_path, "goodreads", "--end", end, out="win")
    stats = json.loads((directory / "stats.json").read_text())
    assert stats["interactions"] == 50 and stats["window"]["end"].startswith(end)
    assert stats["interactions_outside_window"] == 23  # j = 5, 6 of every user and 3 late known ones
    for r in json.loads((directory / "test.json").read_text()):
        assert r["target"] == expected_sequences()[users[r["user"]]][4]


def test_sampled_users_top_genres_and_options(tmp_path):
    directory, _ = convert(tmp_path, "amazon", "--valid_size", "3", "--test_size", "4", "--top_genres", "2",
                           "--history_len", "2")
    _, data, _ = load_category(directory)
    assert len(data["valid"]) == 3 and len(data["test"]) == 4
    assert all(len(r["history"]) <= 2 for s in data.values() for r in s)
    genre_dict = json.loads((directory / "genre_dict.json").read_text())
    assert len(genre_dict) == 2
    assert all(set(g) <= set(genre_dict) for g in json.loads((directory / "name2genre.json").read_text()).values())
    assert data["test"][0]["instruction"].startswith("Given a list of CDs the user recently listened to")

    directory, _ = convert(tmp_path, "amazon", "--words", "disc,discs,played", name="Discs")
    assert "discs the user recently played" in json.loads((directory / "test.json").read_text())[0]["instruction"]


def test_goodreads_time_field_and_only_read(tmp_path):
    directory, _ = convert(tmp_path, "goodreads", "--time_field", "read_at", "--only_read", "--kcore", "0")
    stats = json.loads((directory / "stats.json").read_text())
    _, events = world()
    n_read = sum(i % 2 == 0 for i in range(len(events)))
    assert stats["interactions_not_read"] == len(events) - n_read
    assert stats["interactions_no_time"] == sum(i % 2 == 0 and i % 5 == 0 for i in range(len(events)))
    assert stats["time_field"] == "read_at"


def test_ml10m_genres_and_ml1m_latin1(tmp_path):
    directory, _ = convert(tmp_path, "ml-10m")
    genre_dict = json.loads((directory / "genre_dict.json").read_text())
    assert "IMAX" in genre_dict and "Children" in genre_dict and "(no genres listed)" not in genre_dict
    assert json.loads((directory / "name2genre.json").read_text())["Title 2"] == []
    assert list(genre_dict) == [g for g in ["Action", "Children", "Comedy", "Drama", "Horror", "IMAX"]]
    directory, _ = convert(tmp_path, "ml-1m", out="one")
    assert CAFE in json.loads((directory / "id2name.json").read_text()).values()


def test_steam_undated_reviews(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_australian(raw)
    _, events = world()
    # rewrite user 0's reviews with year-less dates, as in reviews of the crawl year
    lines = [line for line in gzip.open(raw / "australian_user_reviews.json.gz", "rt").read().splitlines()]
    lines = [line.replace(", 2011.", ".") if "'steamer0'" in line else line for line in lines]
    gz_lines(raw / "australian_user_reviews.json.gz", lines)
    out = tmp_path / "out"
    main(["steam", "--raw", str(raw), "--name", "S", "--out_root", str(out), "--kcore", "0"])
    stats = json.loads((out / "S" / "stats.json").read_text())
    n0 = sum(1 for u, _, t in events if u == 0 and datetime.fromtimestamp(t, UTC).year == 2011)
    assert stats["reviews_without_year"] == n0 > 0
    main(["steam", "--raw", str(raw), "--name", "S", "--out_root", str(out), "--kcore", "0", "--posted_year", "2011"])
    stats = json.loads((out / "S" / "stats.json").read_text())
    assert stats["reviews_without_year"] == 0 and stats["posted_year"] == 2011


def test_missing_files_and_bad_options(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for argv, needle in [
        (["goodreads", "--raw", str(raw)], "goodreads_interactions_<genre>"),
        (["amazon", "--raw", str(raw)], "meta_<Category>"),
        (["steam", "--raw", str(raw)], "steam_reviews.json.gz"),
        (["ml-1m", "--raw", str(raw)], "movies.dat"),
        (["ml-1m", "--raw", str(tmp_path / "nope")], "not a folder"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert needle in capsys.readouterr().err
    write_amazon(raw)
    for argv, needle in [
        (["amazon", "--raw", str(raw), "--start", "2020-01-01", "--end", "2019-01-01"], "is not before"),
        (["amazon", "--raw", str(raw), "--start", "yesterday"], "bad date"),
        (["amazon", "--raw", str(raw), "--words", "just-one"], "noun,plural,verb"),
        (["amazon", "--raw", str(raw), "--kcore", "50", "--out_root", str(tmp_path)], "no user is left"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert needle in capsys.readouterr().err
    # a truncated gzip is reported with the file, not a traceback
    data = (raw / "CDs_and_Vinyl.json.gz").read_bytes()
    (raw / "CDs_and_Vinyl.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit):
        main(["amazon", "--raw", str(raw), "--out_root", str(tmp_path)])
    assert "CDs_and_Vinyl.json.gz" in capsys.readouterr().err
