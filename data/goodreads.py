"""Goodreads: the UCSD Book Graph dumps (Wan & McAuley, RecSys 2018), gzip JSON lines.

Files expected in the --raw folder (names as published):
- interactions: `goodreads_interactions_<genre>.json.gz` (one of the eight genre subsets, e.g. `..._poetry`) or the
  full `goodreads_interactions_dedup.json.gz`; records {"user_id", "book_id", "is_read", "date_added", "read_at",
  "date_updated", "started_at", ...}. `--genre` picks the file; without it the folder must hold exactly one.
- books: `goodreads_books_<genre>.json.gz` when present, else `goodreads_books.json.gz`; records {"book_id", "title"}.
- genres: `goodreads_book_genres_initial.json.gz`; records {"book_id", "genres": {"fiction": 12, ...}}, a book's
  genres ordered by their shelf count.
The timestamp is `--time_field` (default `date_added`, which every record has), parsed from Goodreads' format
'Fri Aug 25 13:55:02 -0700 2017'; interactions whose field is empty are dropped and counted.
"""
import re
from pathlib import Path

from data.protocol import Domain, Interactions
from data.rawio import BadLines, key_str, parse_goodreads_date, records, require_file
from utils.io import UserError

DOMAIN = Domain("book", "books", "read")
TIME_FIELDS = ("date_added", "date_updated", "read_at", "started_at")
_INTER = re.compile(r"goodreads_interactions_(.+)\.json(\.gz)?")


def interactions_file(raw: Path, genre: str | None) -> tuple[Path, str]:
    """The interactions dump to read, and its subset name ('dedup' for the full file)."""
    if not raw.is_dir():
        raise UserError(f"{raw}: not a folder (--raw must be the folder holding the Goodreads .json.gz dumps)")
    found = {m.group(1): raw / m.group(0) for p in sorted(raw.iterdir()) if (m := _INTER.fullmatch(p.name))}
    if genre:
        if genre not in found:
            raise UserError(f"{raw}: no goodreads_interactions_{genre}.json.gz (found: {', '.join(found) or 'none'})")
        return found[genre], genre
    if len(found) != 1:
        raise UserError(f"{raw}: expected exactly one goodreads_interactions_<genre>.json.gz, found "
                        f"{', '.join(found) or 'none'}; pick one with --genre")
    genre = next(iter(found))
    return found[genre], genre


def read_goodreads(raw: Path, genre: str | None = None, time_field: str = "date_added", only_read: bool = False,
                   bad: BadLines | None = None):
    """(items, interactions, source description, extra stats) from a folder of Goodreads dumps."""
    bad = bad or BadLines()
    if time_field not in TIME_FIELDS:
        raise UserError(f"bad --time_field {time_field!r}: one of {', '.join(TIME_FIELDS)}")
    inter_path, genre = interactions_file(raw, genre)
    books_path = raw / f"goodreads_books_{genre}.json.gz"
    if not books_path.is_file():
        books_path = require_file(raw / "goodreads_books.json.gz",
                                  f"book titles: goodreads_books_{genre}.json.gz or goodreads_books.json.gz")
    genres_path = require_file(raw / "goodreads_book_genres_initial.json.gz", "the book genres")

    log, no_time, not_read = Interactions(), 0, 0
    for lineno, r in records(inter_path, bad):
        user, book, when = key_str(r.get("user_id")), key_str(r.get("book_id")), r.get(time_field)
        if user is None or book is None or not isinstance(when, str | type(None)):
            bad(inter_path, lineno, f"needs string user_id, book_id and {time_field}")
            continue
        if only_read and r.get("is_read") is not True:
            not_read += 1
            continue
        if not when:
            no_time += 1
            continue
        try:
            log.add(user, book, parse_goodreads_date(when))
        except ValueError as e:
            bad(inter_path, lineno, f"{time_field}: {e}")

    titles = {}
    for lineno, r in records(books_path, bad):
        book = key_str(r.get("book_id"))
        if book is None:
            bad(books_path, lineno, "needs a book_id")
        elif log.has_item(book) and book not in titles:
            titles[book] = r.get("title") if isinstance(r.get("title"), str) else ""
    genres = {}
    for lineno, r in records(genres_path, bad):
        book, g = key_str(r.get("book_id")), r.get("genres")
        if book is None or not isinstance(g, dict):
            bad(genres_path, lineno, "needs a book_id and a genres object")
        elif book in titles and book not in genres:
            genres[book] = [k for k, _ in sorted(g.items(), key=lambda kv: (-_count(kv[1]), kv[0]))]
    items = {b: (t, genres.get(b, [])) for b, t in titles.items()}
    extra = {"time_field": time_field, "interactions_no_time": no_time,
             "books_missing_from_books_file": len(log.item_keys) - len(titles)}
    if only_read:
        extra["interactions_not_read"] = not_read
    return items, log, f"Goodreads {inter_path.name} + {books_path.name} + {genres_path.name}", extra


def _count(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0
