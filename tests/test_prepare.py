"""data/prepare.py on ML-100K: both raw formats (GroupLens folder, recbole wheel), merging, `check`, the CLI."""
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from data import movielens
from data import prepare as prepare_mod
from data.prepare import main
from data.protocol import Protocol, write_category
from utils.data import REPO_ROOT, load_category

# (id, title as GroupLens writes it, recbole title, year, genres)
MOVIES = [
    ("1", "Toy Story (1995)", "Toy Story", "1995", ["Animation", "Children's", "Comedy"]),
    ("2", "GoldenEye (1995)", "GoldenEye", "1995", ["Action", "Adventure", "Thriller"]),
    ("3", "Café au lait (1994)", "Café au lait", "1994", ["Comedy"]),
    ("4", "Chasing Amy (1997)", "Chasing Amy", "1997", ["Drama", "Romance"]),
    ("5", "Chasing Amy (1997)", "Chasing Amy", "1997", ["Comedy"]),  # same title: merged into 4
    ("6", "Heat (1995)", "Heat", "1995", ["Action", "Crime", "Thriller"]),
    ("7", "unknown", "unknown", "", []),
]
N_USERS = 5


def ratings():
    """(user, item, rating, time): user u rates items in a user-specific order, one second apart."""
    out = []
    for u in range(1, N_USERS + 1):
        order = [str((u + j) % 7 + 1) for j in range(7)]
        out += [(str(u), k, 3, 880000000 + 100 * j + u) for j, k in enumerate(order)]
    return out[::-1]  # file order is not chronological


def write_grouplens(folder: Path, bad_line=False):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, title, _, year, genres in MOVIES:
        flags = ["1" if g in genres else "0" for g in movielens.ML100K_ALL_COLUMNS]
        if not genres:
            flags[0] = "1"
        date = f"01-Jan-{year}" if year else ""
        lines.append("|".join([k, title, date, "", "http://us.imdb.com/x", *flags]))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    data = [f"{u}\t{k}\t{r}\t{t}" for u, k, r, t in ratings()]
    if bad_line:
        data.insert(1, "1\t2\tthree")
    (folder / "u.data").write_text("\n".join(data) + "\n")
    return folder


def write_wheel(path: Path):
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    item += [f"{k}\t{t}\t{y}\t{' '.join(g)}" for k, _, t, y, g in MOVIES]
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{k}\t{r}\t{t}" for u, k, r, t in ratings()]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(movielens.RECBOLE_PREFIX + ".item", "\n".join(item) + "\n")
        z.writestr(movielens.RECBOLE_PREFIX + ".inter", "\n".join(inter) + "\n")
    return path


def test_both_raw_formats_agree(tmp_path):
    items_g, inter_g = movielens.read_grouplens_100k(write_grouplens(tmp_path / "ml-100k"))
    items_r, inter_r = movielens.read_recbole(write_wheel(tmp_path / "recbole.whl"))
    assert {k: v[0] for k, v in items_g.items()} == {k: v[0] for k, v in items_r.items()}
    assert items_g["1"] == ("Toy Story (1995)", ["Animation", "Children's", "Comedy"])
    assert items_g["3"][0] == "Café au lait (1994)"  # latin-1 decoded
    assert inter_g == inter_r
    for d, (items, inter) in {"g": (items_g, inter_g), "r": (items_r, inter_r)}.items():
        write_category(tmp_path / d, items, inter, movielens.DOMAIN, movielens.ML_GENRES, Protocol(train_size=0))
    for f in ("train.json", "valid.json", "test.json", "id2name.json", "name2genre.json", "genre_dict.json"):
        assert (tmp_path / "g" / f).read_bytes() == (tmp_path / "r" / f).read_bytes(), f


def test_ml100k_from_both_sources_via_main(tmp_path, monkeypatch, capsys):
    wheel = write_wheel(tmp_path / "recbole.whl")
    monkeypatch.setattr(prepare_mod.movielens, "fetch_recbole_wheel", lambda cache_dir: wheel)
    main(["ml-100k", "--out_root", str(tmp_path / "out"), "--name", "W"])
    main(["ml-100k", "--raw", str(write_grouplens(tmp_path / "raw")), "--out_root", str(tmp_path / "out"),
          "--name", "G"])
    for d in ("W", "G"):
        catalog, data, coverage = load_category(tmp_path / "out" / d)
        stats = json.loads((tmp_path / "out" / d / "stats.json").read_text())
        # 7 movies: "Chasing Amy" twice (merged), so 6 names; "unknown" has a title and stays
        assert catalog.names == ["Toy Story (1995)", "GoldenEye (1995)", "Café au lait (1994)", "Chasing Amy (1997)",
                                 "Heat (1995)", "unknown"]
        assert stats["items_merged_same_name"] == 1 and stats["users"] == N_USERS
        assert catalog.name2genre["Chasing Amy (1997)"] == ["Drama", "Romance"]  # the first id's genres
        assert catalog.name2genre["unknown"] == [] and len(catalog.genres) == 18 and "unknown" not in catalog.genres
        assert all(v == 1.0 for v in coverage.values())
        # the default output has exactly the original stats keys (byte-identical to the pre-options protocol)
        assert "kcore" not in stats and "bad_lines_skipped" not in stats
        for r in data["train"] + data["valid"] + data["test"]:
            assert r["target"] not in r["history"]
    assert (tmp_path / "out" / "W" / "train.json").read_bytes() == (tmp_path / "out" / "G" / "train.json").read_bytes()
    assert "wrote" in capsys.readouterr().out


def test_check_prints_stats(tmp_path, capsys):
    main(["ml-100k", "--raw", str(write_grouplens(tmp_path / "raw")), "--out_root", str(tmp_path), "--name", "X"])
    capsys.readouterr()
    main(["check", str(tmp_path / "X")])
    stats = json.loads(capsys.readouterr().out)
    assert stats["items"] == 6 and stats["test_records"] == N_USERS and stats["genres"] == 18
    assert stats["test_targets_in_catalog"] == 1.0
    with pytest.raises(SystemExit) as e:
        main(["check", str(tmp_path / "missing")])
    assert e.value.code == 2 and "catalog file not found" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", ""])
def test_bad_category_name(tmp_path, name, capsys):
    with pytest.raises(SystemExit) as e:
        main(["ml-100k", "--raw", str(tmp_path), "--name", name, "--out_root", str(tmp_path)])
    assert e.value.code == 2 and "bad category name" in capsys.readouterr().err
    assert not (tmp_path.parent / "evil").exists()


def test_ml100k_bad_line(tmp_path, capsys):
    raw = write_grouplens(tmp_path / "raw", bad_line=True)
    with pytest.raises(SystemExit):
        main(["ml-100k", "--raw", str(raw), "--out_root", str(tmp_path), "--name", "B"])
    err = capsys.readouterr().err
    assert "u.data line 2" in err
    main(["ml-100k", "--raw", str(raw), "--out_root", str(tmp_path), "--name", "B", "--skip_bad"])
    stats = json.loads((tmp_path / "B" / "stats.json").read_text())
    assert stats["bad_lines_skipped"] == 1 and stats["bad_lines_per_file"] == {"u.data": 1}


# sha256 over (file name, bytes) of the default ML-100K output (DONE left out): the protocol's options must not change
# the default output by a single byte.
ML100K_DIGEST = "c2ca11037bdd0a42a0cd4d022019300cda399684755ff312f37ef8ede13e67a1"


def test_real_ml100k_unchanged(ml100k, tmp_path, capsys):  # the fixture downloads the recbole wheel if needed
    main(["ml-100k", "--out_root", str(tmp_path)])
    d = tmp_path / "ML100K"
    stats = json.loads((d / "stats.json").read_text())
    assert (stats["users"], stats["items"], stats["items_merged_same_name"], stats["interactions"]) == \
        (943, 1664, 18, 99693)
    assert stats["train_windows_total"] == 96864 and stats["records"] == {"train": 20000, "valid": 943, "test": 943}
    h = hashlib.sha256()
    for f in sorted(p.name for p in d.iterdir() if p.name != "DONE"):
        h.update(f.encode())
        h.update((d / f).read_bytes())
    assert h.hexdigest() == ML100K_DIGEST


def test_cli_smoke(tmp_path):
    """The one subprocess test: `python -m data.prepare` runs and fails with one line and exit code 2."""
    raw = write_grouplens(tmp_path / "raw")
    cli = [sys.executable, "-m", "data.prepare"]
    ok = subprocess.run([*cli, "ml-100k", "--raw", str(raw), "--out_root", str(tmp_path), "--name", "S"],
                        capture_output=True, text=True, cwd=REPO_ROOT)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.split("\n", 1)[1])["users"] == N_USERS
    bad = subprocess.run([*cli, "steam", "--raw", str(tmp_path / "nowhere")], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
