"""Reading raw dumps: gzip or plain text line by line, JSON or Python-literal records, dates, malformed lines.

Every reader streams its input one line at a time and reports a malformed line through `BadLines`: by default a
`UserError` naming the file and the line number; with --skip_bad the line is skipped and counted (the counts go into
stats.json).
"""
import ast
import gzip
import json
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from utils.io import UserError

_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"], 1)}
_FULL_MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                            "september", "october", "november", "december"], 1)}


class BadLines:
    """Malformed input lines: fail on the first one (default), or skip and count them per file (`skip=True`)."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.counts: Counter = Counter()

    def __call__(self, path, lineno: int, why: str) -> None:
        if not self.skip:
            raise UserError(f"{path} line {lineno}: {why} (pass --skip_bad to skip and count such lines)")
        self.counts[Path(path).name] += 1

    def stats(self) -> dict:
        return {"bad_lines_skipped": sum(self.counts.values()), "bad_lines_per_file": dict(sorted(self.counts.items()))}


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise UserError(f"{path}: not found ({what})")
    return path


def first_existing(folder: Path, names: list[str], what: str) -> Path:
    """The first of `names` that exists in `folder`, else a UserError listing them all."""
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise UserError(f"{folder}: none of {', '.join(names)} found ({what})")


def decode(raw: bytes) -> str:
    """UTF-8, else latin-1 (ML-1M and older dumps are latin-1; a latin-1 line is almost never valid UTF-8)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def iter_lines(path):
    """(line number, text) of every non-blank line, streamed; gzip is detected by its magic bytes, not the name."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    lineno = 0
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            for lineno, raw in enumerate(f, 1):
                text = decode(raw).rstrip("\r\n")
                if text.strip():
                    yield lineno, text
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path}: unreadable after line {lineno} ({e}); the download may be truncated") from None


def parse_record(text: str, literal: bool) -> dict:
    """A dict from one line: JSON, or a Python literal (the Steam dumps; `ast.literal_eval`, never eval).

    With `literal`, JSON is tried first (it is much faster and some mirrors re-encode the dumps as JSON).
    Raises ValueError with a short reason.
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if not literal:
            raise ValueError(f"malformed JSON ({e.msg}, column {e.colno})") from None
        try:
            obj = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e2:
            raise ValueError(f"not a Python literal ({type(e2).__name__})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    return obj


def records(path, bad: BadLines, literal: bool = False):
    """(line number, dict) of every well-formed record of a JSON-lines (or Python-literal lines) file."""
    for lineno, text in iter_lines(path):
        try:
            yield lineno, parse_record(text, literal)
        except ValueError as e:
            bad(path, lineno, str(e))


def key_str(value) -> str | None:
    """An id field as a string (ids are sometimes ints in the dumps); None when missing or empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


# ------------------------------------------------------------------------------------------------------ dates
def parse_goodreads_date(text: str) -> float:
    """'Fri Aug 25 13:55:02 -0700 2017' -> unix seconds (the offset is honoured). Locale-independent."""
    try:
        _dow, mon, day, hms, off, year = text.split()
        h, m, s = (int(x) for x in hms.split(":"))
        sign = -1 if off[0] == "-" else 1
        if off[0] not in "+-" or len(off) != 5:
            raise ValueError
        tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[3:5])))
        return datetime(int(year), _MONTHS[mon.lower()], int(day), h, m, s, tzinfo=tz).timestamp()
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"bad date {text!r} (expected like 'Fri Aug 25 13:55:02 -0700 2017')") from None


def parse_iso_date(text: str) -> float:
    """'2017-12-17' (or any ISO date/time; naive means UTC) -> unix seconds."""
    try:
        d = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD)") from None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def parse_steam_posted(text: str, default_year: int | None = None) -> float | None:
    """'Posted November 5, 2011.' -> unix seconds (UTC midnight). Reviews of the crawl year carry no year
    ('Posted March 14.'): None, unless `default_year` is given. ValueError when it is not a date at all."""
    t = text.strip().removeprefix("Posted").strip().rstrip(".").replace(",", " ").split()
    try:
        month, day = _FULL_MONTHS[t[0].lower()], int(t[1])
        if len(t) == 2:
            if default_year is None:
                return None
            year = default_year
        elif len(t) == 3:
            year = int(t[2])
        else:
            raise ValueError
        return datetime(year, month, day, tzinfo=UTC).timestamp()
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"bad date {text!r} (expected like 'Posted November 5, 2011.')") from None


def cli_date(text: str | None) -> float | None:
    """--start/--end: YYYY-MM-DD (UTC) -> unix seconds."""
    if not text:
        return None
    try:
        return parse_iso_date(text)
    except ValueError:
        raise UserError(f"bad date {text!r}: use YYYY-MM-DD") from None
